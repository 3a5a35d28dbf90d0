//go:build !linux

package server

import (
	"errors"
	"net"
	"time"

	"github.com/facebook/time/ntp/protocol"
)

// Elsewhere than Linux: Go's UDP socket, one datagram at a time, receive
// times read in user space (counted as NoKernelTS).

type socket struct{ c *net.UDPConn }

func listenSocket(ua *net.UDPAddr) (*socket, *net.UDPAddr, error) {
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, nil, err
	}
	return &socket{c: c}, c.LocalAddr().(*net.UDPAddr), nil
}

func (k *socket) shutdown() { k.c.Close() }
func (k *socket) close()    { k.c.Close() }

func (k *socket) serve(s *Server) {
	r := &reader{s: s}
	buf := make([]byte, 1500)
	var out [protocol.PacketSizeBytes]byte
	for !s.closed.Load() {
		n, from, err := k.c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		v := r.handle(buf[:n], n, from, time.Now(), false, &out)
		r.n.flush(&s.stats)
		if v != drop {
			if v == answer {
				stampTx(&out, s.cfg.Clock.Now())
			}
			if _, err := k.c.WriteToUDPAddrPort(out[:], from); err != nil {
				s.stats.SendErrors.Add(1)
			}
		}
	}
}
