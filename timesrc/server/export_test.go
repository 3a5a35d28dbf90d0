package server

import (
	"net/netip"
	"time"

	"github.com/facebook/time/ntp/protocol"
)

// Handler exposes one reader's per-packet path to the tests and benchmarks.
type Handler struct{ r *reader }

func NewHandler(s *Server) *Handler { return &Handler{r: &reader{s: s}} }

// Handle runs the per-packet path as a reader does for one datagram:
// answer, count, stamp the transmit time.
func (h *Handler) Handle(b []byte, from netip.AddrPort, rawRx time.Time, out *[protocol.PacketSizeBytes]byte) bool {
	v := h.r.handle(b, len(b), from, rawRx, true, out)
	h.r.n.flush(&h.r.s.stats)
	if v == answer {
		stampTx(out, h.r.s.cfg.Clock.Now())
	}
	return v != drop
}

// PutHeader is putHeader.
func PutHeader(dst *[protocol.PacketSizeBytes]byte, p *protocol.Packet) { putHeader(dst, p) }
