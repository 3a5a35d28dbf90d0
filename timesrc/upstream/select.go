package upstream

import (
	"sort"
	"time"
)

// Candidate is one server's filtered measurement offered to selection.
type Candidate struct {
	Addr    string
	Offset  time.Duration // raw clock's offset from this server
	Dist    time.Duration // root distance λ: half-width of its correctness interval
	Stratum uint8
}

// Selection is the outcome of Select.
type Selection struct {
	OK           bool          // a majority agreed
	Truechimers  []int         // indexes into the candidates, best (lowest distance) first
	Falsetickers []int         // indexes outside the intersection
	Low, High    time.Duration // the intersection interval
}

// Select finds the largest intersection of the candidates' correctness
// intervals (Marzullo's algorithm). It succeeds when more than half of the
// candidates share it; candidates whose interval misses it are falsetickers.
func Select(c []Candidate) Selection {
	type edge struct {
		v    time.Duration
		kind int // +1 start, -1 end
	}
	var s Selection
	if len(c) == 0 {
		return s
	}
	edges := make([]edge, 0, 2*len(c))
	for _, x := range c {
		edges = append(edges, edge{x.Offset - x.Dist, +1}, edge{x.Offset + x.Dist, -1})
	}
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].v != edges[j].v {
			return edges[i].v < edges[j].v
		}
		return edges[i].kind > edges[j].kind // starts before ends: touching intervals overlap
	})
	best, n := 0, 0
	for i, e := range edges {
		n += e.kind
		if n > best {
			best = n
			s.Low = e.v
			// the intersection ends at the next end edge
			for _, f := range edges[i+1:] {
				if f.kind < 0 {
					s.High = f.v
					break
				}
			}
		}
	}
	if 2*best <= len(c) {
		for i := range c {
			s.Falsetickers = append(s.Falsetickers, i)
		}
		return s
	}
	s.OK = true
	for i, x := range c {
		if x.Offset+x.Dist < s.Low || x.Offset-x.Dist > s.High {
			s.Falsetickers = append(s.Falsetickers, i)
		} else {
			s.Truechimers = append(s.Truechimers, i)
		}
	}
	sort.SliceStable(s.Truechimers, func(i, j int) bool {
		a, b := c[s.Truechimers[i]], c[s.Truechimers[j]]
		if a.Dist != b.Dist {
			return a.Dist < b.Dist
		}
		return a.Stratum < b.Stratum
	})
	return s
}

// Combine returns the truechimers' offsets weighted by 1/distance.
func Combine(c []Candidate, idx []int) time.Duration {
	var sw, so float64
	for _, i := range idx {
		w := 1 / max(c[i].Dist.Seconds(), 1e-6)
		sw += w
		so += w * c[i].Offset.Seconds()
	}
	if sw == 0 {
		return 0
	}
	return time.Duration(so / sw * 1e9)
}

// point is one combined offset at a raw time.
type point struct {
	at     time.Time
	offset time.Duration
}

// fit is a least-squares line through the points: the offset at the last
// point's time and the slope (the raw clock's frequency error; positive
// slope = the offset grows = the raw clock loses, so Freq = -slope).
func fit(ps []point) (offset time.Duration, freq float64) {
	n := len(ps)
	if n == 0 {
		return 0, 0
	}
	last := ps[n-1]
	span := last.at.Sub(ps[0].at).Seconds()
	if n < 3 || span < 1 {
		return last.offset, 0
	}
	var sx, sy, sxx, sxy float64
	for _, p := range ps {
		x := p.at.Sub(last.at).Seconds()
		y := p.offset.Seconds()
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	fn := float64(n)
	den := fn*sxx - sx*sx
	if den == 0 {
		return last.offset, 0
	}
	slope := (fn*sxy - sx*sy) / den
	icpt := (sy - slope*sx) / fn
	return time.Duration(icpt * 1e9), -slope
}
