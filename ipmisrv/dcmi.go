package ipmisrv

import (
	"context"
	"encoding/binary"
	"math"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/types"
)

const dcmiGroup = 0xdc

// powerStats keeps the chassis' total power over a rolling window for
// DCMI Get Power Reading's minimum, maximum and average.
type powerStats struct {
	window time.Duration

	mu      sync.Mutex
	samples []powerSample
}

type powerSample struct {
	at    time.Time
	watts float64
}

func newPowerStats(window time.Duration) *powerStats { return &powerStats{window: window} }

func (p *powerStats) add(at time.Time, w float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.samples); n > 0 && !at.After(p.samples[n-1].at) {
		return
	}
	p.samples = append(p.samples, powerSample{at, w})
	cut := 0
	for cut < len(p.samples) && at.Sub(p.samples[cut].at) > p.window {
		cut++
	}
	p.samples = p.samples[cut:]
}

// stats returns min, max, average and the period the samples cover.
func (p *powerStats) stats() (lo, hi, avg float64, period time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.samples) == 0 {
		return 0, 0, 0, 0
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	var sum float64
	for _, s := range p.samples {
		lo, hi, sum = math.Min(lo, s.watts), math.Max(hi, s.watts), sum+s.watts
	}
	return lo, hi, sum / float64(len(p.samples)), p.samples[len(p.samples)-1].at.Sub(p.samples[0].at)
}

// samplePower records the chassis total once a second (reading only the
// PSU records).
func (s *Server) samplePower(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if r := s.o.Data(); r != nil {
			if psus, err := r.PSUs(); err == nil {
				v := view{psus: psus}
				if w, ok := v.totalPower(); ok {
					s.power.add(s.o.Now(), w)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) getDCMICap(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 2 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	if req[0] != dcmiGroup {
		return nil, types.CodeInvalidCommand, nil
	}
	hdr := []byte{dcmiGroup, 0x01, 0x05, 0x02} // DCMI 1.5, parameter revision 2
	switch req[1] {
	case 0x01: // supported DCMI capabilities: power management; out-of-band primary LAN
		return append(hdr, 0x00, 0x01, 0x02), types.CodeOK, nil
	default:
		return nil, types.CodeParameterOutOfRange, nil
	}
}

// getDCMIPowerReading answers System Power Statistics (mode 01h) with the
// chassis total: the sum of the PSUs' output power.
func (s *Server) getDCMIPowerReading(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 2 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	if req[0] != dcmiGroup {
		return nil, types.CodeInvalidCommand, nil
	}
	if req[1] != 0x01 {
		return nil, types.CodeRequestDataFieldInvalid, nil // enhanced (rolling-average) statistics are not offered
	}
	v, cc := s.viewOrFail()
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	cur, ok := v.totalPower()
	s.power.add(v.at, cur)
	lo, hi, avg, period := s.power.stats()
	w := func(x float64) uint16 { return uint16(math.Max(0, math.Min(65535, math.Round(x)))) }
	out := make([]byte, 18)
	out[0] = dcmiGroup
	binary.LittleEndian.PutUint16(out[1:], w(cur))
	binary.LittleEndian.PutUint16(out[3:], w(lo))
	binary.LittleEndian.PutUint16(out[5:], w(hi))
	binary.LittleEndian.PutUint16(out[7:], w(avg))
	binary.LittleEndian.PutUint32(out[9:], unixOrZero(v.at.Unix()))
	binary.LittleEndian.PutUint32(out[13:], uint32(min(period.Milliseconds(), math.MaxUint32)))
	if ok {
		out[17] = 0x40 // power measurement active
	}
	return out, types.CodeOK, nil
}
