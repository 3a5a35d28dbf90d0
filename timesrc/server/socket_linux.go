package server

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/facebook/time/ntp/protocol"
	"golang.org/x/sys/unix"
)

// The Linux socket: a blocking UDP socket read by Config.Readers goroutines,
// each sitting in recvmmsg(2) on its own OS thread (the kernel wakes one
// of them per arriving batch, with no trip through Go's network poller),
// answering the whole batch and sending the replies with one sendmmsg(2).
// Receive timestamps come from SO_TIMESTAMPNS. (github.com/facebook/time/
// timestamp does the same with SO_TIMESTAMPING but does not build for
// 32-bit ARM, one of cmcd's targets.)

const (
	batch   = 32  // datagrams per recvmmsg
	bufSize = 256 // octets kept per datagram: the header is 48 (the full length is still counted)
	oobSize = 64  // room for one SCM_TIMESTAMPNS
)

type socket struct {
	fd int
}

func listenSocket(ua *net.UDPAddr) (*socket, *net.UDPAddr, error) {
	family := unix.AF_INET6
	ip4 := ua.IP.To4()
	if ip4 != nil && !ua.IP.Equal(net.IPv4zero) {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil && family == unix.AF_INET6 && ua.IP == nil {
		family = unix.AF_INET // no IPv6 on this machine
		fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	}
	if err != nil {
		return nil, nil, err
	}
	fail := func(what string, err error) (*socket, *net.UDPAddr, error) {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		s4 := &unix.SockaddrInet4{Port: ua.Port}
		if ip4 != nil {
			copy(s4.Addr[:], ip4)
		}
		sa = s4
	} else {
		s6 := &unix.SockaddrInet6{Port: ua.Port}
		copy(s6.Addr[:], ua.IP.To16()) // nil IP: the any address
		if ua.Zone != "" {
			ifi, err := net.InterfaceByName(ua.Zone)
			if err != nil {
				return fail("zone", err)
			}
			s6.ZoneId = uint32(ifi.Index)
		}
		if ua.IP == nil || ua.IP.IsUnspecified() {
			if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
				return fail("dual-stack socket", err)
			}
		}
		sa = s6
	}
	// Kernel receive timestamps. Where the kernel (or an emulator such as
	// qemu-user) lacks them, every packet is stamped in user space
	// instead and counted in Stats.NoKernelTS: serving slightly less
	// precise time beats serving none.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil &&
		!errors.Is(err, unix.ENOPROTOOPT) && !errors.Is(err, unix.EINVAL) {
		return fail("enabling kernel receive timestamps", err)
	}
	// a reader that misses the shutdown wake-up still sees Close within a second
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1}); err != nil {
		return fail("receive timeout", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("listen udp "+ua.String(), err)
	}
	local, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	var addr *net.UDPAddr
	switch a := local.(type) {
	case *unix.SockaddrInet4:
		addr = &net.UDPAddr{IP: net.IP(a.Addr[:]).To16(), Port: a.Port}
	case *unix.SockaddrInet6:
		addr = &net.UDPAddr{IP: net.IP(a.Addr[:]), Port: a.Port, Zone: ua.Zone}
	}
	return &socket{fd: fd}, addr, nil
}

// shutdown wakes every reader blocked in recvmmsg (Linux wakes the waiters
// of an unconnected UDP socket on shutdown, and reports ENOTCONN).
func (k *socket) shutdown() { unix.Shutdown(k.fd, unix.SHUT_RDWR) }

func (k *socket) close() { unix.Close(k.fd) }

// slot is one datagram of a batch: its buffers and the reply to it.
type slot struct {
	buf   [bufSize]byte
	oob   [oobSize]byte
	name  unix.RawSockaddrInet6 // large enough for either family
	reply [protocol.PacketSizeBytes]byte
}

// serve is one reader: recvmmsg, answer, sendmmsg, until the server closes.
func (k *socket) serve(s *Server) {
	r := &reader{s: s}
	// on the heap: the kernel writes into these while the goroutine sleeps
	bb := new(struct {
		slots [batch]slot
		iov   [batch]unix.Iovec
		rhdr  [batch]unix.Mmsghdr
		oiov  [batch]unix.Iovec
		shdr  [batch]unix.Mmsghdr
		stamp [batch]bool
	})
	slots, iov, rhdr, oiov, shdr, stamp := &bb.slots, &bb.iov, &bb.rhdr, &bb.oiov, &bb.shdr, &bb.stamp
	for i := range slots {
		iov[i].Base = &slots[i].buf[0]
		iov[i].SetLen(bufSize)
		rhdr[i].Hdr.Iov = &iov[i]
		rhdr[i].Hdr.Iovlen = 1
	}
	for loops := 0; !s.closed.Load(); loops++ {
		// A goroutine that only makes system calls never passes through
		// the scheduler, and after 10 ms sysmon takes its P away in the
		// middle of one (and polls every 20 µs for a while after). A
		// yield now and then tells it that this one is alive.
		if loops&15 == 15 {
			runtime.Gosched()
		}
		for i := range rhdr {
			h := &rhdr[i].Hdr
			h.Name = (*byte)(unsafe.Pointer(&slots[i].name))
			h.Namelen = unix.SizeofSockaddrInet6
			h.Control = &slots[i].oob[0]
			h.SetControllen(oobSize)
			h.Flags = 0
		}
		got, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(k.fd), uintptr(unsafe.Pointer(&rhdr[0])), batch,
			unix.MSG_WAITFORONE|unix.MSG_TRUNC, 0, 0)
		if errno != 0 || got == 0 || got > batch {
			if errno == syscall.EBADF {
				return
			}
			continue // EAGAIN (the receive timeout), EINTR, or woken by shutdown: check closed
		}
		n := 0
		for i := 0; i < int(got); i++ {
			h := &rhdr[i].Hdr
			from, ok := addrPort(&slots[i].name, h.Namelen)
			if !ok {
				continue
			}
			size := int(rhdr[i].Len)
			rawRx, tsOK := rxTimestamp(slots[i].oob[:h.Controllen])
			if !tsOK {
				rawRx = time.Now()
			}
			v := r.handle(slots[i].buf[:min(size, bufSize)], size, from, rawRx, tsOK, &slots[i].reply)
			if v == drop {
				continue
			}
			stamp[n] = v == answer
			o := &shdr[n].Hdr
			o.Name = h.Name
			o.Namelen = h.Namelen
			oiov[n].Base = &slots[i].reply[0]
			oiov[n].SetLen(protocol.PacketSizeBytes)
			o.Iov = &oiov[n]
			o.Iovlen = 1
			n++
		}
		r.n.flush(&s.stats)
		if n == 0 {
			continue
		}
		// one transmit timestamp for the batch, as late as possible
		now := s.cfg.Clock.Now()
		for i := 0; i < n; i++ {
			if stamp[i] {
				stampTx((*[protocol.PacketSizeBytes]byte)(unsafe.Pointer(oiov[i].Base)), now)
			}
		}
		for sent := 0; sent < n; {
			m, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(k.fd), uintptr(unsafe.Pointer(&shdr[sent])), uintptr(n-sent), 0, 0, 0)
			if errno == syscall.EINTR {
				continue
			}
			if errno != 0 || m == 0 {
				// the first unsent one failed: skip it, try the rest
				s.stats.SendErrors.Add(1)
				sent++
				continue
			}
			sent += int(m)
		}
	}
}

// addrPort reads a sender's address without allocating.
func addrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&s4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), uint16(p[0])<<8|uint16(p[1])), true
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(p[0])<<8|uint16(p[1])), true
	}
	return netip.AddrPort{}, false
}

// rxTimestamp finds the SCM_TIMESTAMPNS control message without allocating.
func rxTimestamp(oob []byte) (time.Time, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return time.Time{}, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= unix.CmsgLen(int(unsafe.Sizeof(unix.Timespec{}))) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
			return time.Unix(int64(ts.Sec), int64(ts.Nsec)), true
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return time.Time{}, false
}
