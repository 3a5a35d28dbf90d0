package ipmisrv

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// pktConn is the responder's UDP socket. It answers every request from
// the address the request was sent to: on a socket bound to the wildcard
// address the kernel would otherwise pick the reply's source by route —
// the module's own address — and a client that sent to the pair's
// floating address (pair/vip) would drop the reply as coming from a
// stranger (ipmitool's socket is connected to the address it asked). The
// destination of each request comes from IP_PKTINFO (an AF_INET socket)
// or IPV6_PKTINFO (a dual-stack AF_INET6 socket: IPv4 requests arrive
// with v4-mapped addresses, and Linux takes a v4-mapped IPV6_PKTINFO
// source for the IPv4 reply), and goes back as the reply's source in the
// same control message.
//
// ReadFrom still returns the plain *net.UDPAddr of the client (go-ipmi
// reads it, e.g. for Get Session Info); the destination is remembered per
// client address and used by WriteTo.
type pktConn struct {
	c  *net.UDPConn
	v4 *ipv4.PacketConn // AF_INET socket
	v6 *ipv6.PacketConn // AF_INET6 socket

	mu  sync.Mutex
	dst map[string]dest // client address -> where its last request went
}

type dest struct {
	ip   net.IP
	seen time.Time
}

// maxDests bounds the table; beyond it, entries idle for destIdle go.
const (
	maxDests = 4096
	destIdle = 10 * time.Minute
)

func listenPktinfo(addr string) (*pktConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", addr, err)
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("listen udp %q: %w", addr, err)
	}
	domain, err := socketDomain(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	p := &pktConn{c: c, dst: map[string]dest{}}
	if domain == unix.AF_INET6 {
		p.v6 = ipv6.NewPacketConn(c)
		err = p.v6.SetControlMessage(ipv6.FlagDst, true)
	} else {
		p.v4 = ipv4.NewPacketConn(c)
		err = p.v4.SetControlMessage(ipv4.FlagDst, true)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("ipmisrv: asking the kernel for each request's destination (IP_PKTINFO): %w", err)
	}
	return p, nil
}

func socketDomain(c *net.UDPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var domain int
	var serr error
	if err := rc.Control(func(fd uintptr) { domain, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN) }); err != nil {
		return 0, err
	}
	return domain, serr
}

// ReadFrom returns the next datagram and remembers where it was sent.
func (p *pktConn) ReadFrom(buf []byte) (int, net.Addr, error) {
	var (
		n   int
		src net.Addr
		dst net.IP
		err error
	)
	if p.v6 != nil {
		var cm *ipv6.ControlMessage
		n, cm, src, err = p.v6.ReadFrom(buf)
		if cm != nil {
			dst = cm.Dst
		}
	} else {
		var cm *ipv4.ControlMessage
		n, cm, src, err = p.v4.ReadFrom(buf)
		if cm != nil {
			dst = cm.Dst
		}
	}
	if err != nil {
		return n, src, err
	}
	if _, ok := src.(*net.UDPAddr); ok && dst != nil && !dst.IsUnspecified() && !dst.IsMulticast() {
		p.remember(src.String(), dst)
	}
	return n, src, nil
}

func (p *pktConn) remember(client string, ip net.IP) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.dst[client]; !ok && len(p.dst) >= maxDests {
		for k, d := range p.dst {
			if now.Sub(d.seen) > destIdle {
				delete(p.dst, k)
			}
		}
		if len(p.dst) >= maxDests {
			clear(p.dst) // a flood of sources: replies fall back to the route's source
		}
	}
	p.dst[client] = dest{ip: ip, seen: now}
}

// WriteTo sends pkt to addr, from the address addr's last request was
// sent to.
func (p *pktConn) WriteTo(pkt []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, errors.New("ipmisrv: not a UDP address")
	}
	p.mu.Lock()
	d, ok := p.dst[ua.String()]
	p.mu.Unlock()
	if !ok {
		return p.c.WriteToUDP(pkt, ua)
	}
	// An IPv4 reply gets IP_PKTINFO, also on the dual-stack socket (Linux
	// sends to a v4-mapped address through its IPv4 path, which reads
	// IP_PKTINFO; x/net/ipv6 would not marshal a v4-mapped source).
	var oob []byte
	if v4 := d.ip.To4(); v4 != nil {
		oob = (&ipv4.ControlMessage{Src: v4}).Marshal()
	} else {
		oob = (&ipv6.ControlMessage{Src: d.ip}).Marshal()
	}
	n, _, err := p.c.WriteMsgUDP(pkt, oob, ua)
	return n, err
}

func (p *pktConn) Close() error { return p.c.Close() }

// LocalAddr is the bound address.
func (p *pktConn) LocalAddr() net.Addr { return p.c.LocalAddr() }
