package ipmisrv_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"cmcd/board"
	"cmcd/board/ipmi/ipmitest"
)

// BenchmarkSELList times `ipmitool sel list` of 1,000 entries against
// cmcd's responder (the merged SEL of a real store: 4 nodes x 249 entries
// and 4 CMC events) and against an ipmi_sim holding the same events, in
// the same run, and prints the ratio. Both with cipher suite 3 (ipmi_sim
// has no 17); cmcd with 17 too. Medians of 5 runs each, interleaved.
func BenchmarkSELList(b *testing.B) {
	need(b, "ipmitool", "ipmi_sim")
	f := newFixture(b, 4, 249, nil, func(f *fixture) { f.maxAge = time.Second }) // the daemon's MaxAge
	want := expectedSEL(&testing.T{}, f.store, nil)
	if len(want) != 1000 {
		b.Fatalf("%d entries", len(want))
	}
	// The same events for ipmi_sim: the node entries as stored, the CMC's
	// as the System Event records cmcd encodes them as.
	var events []ipmitest.Event
	stored := map[int]map[uint64]board.SELEntry{}
	for slot := 1; slot <= 4; slot++ {
		sel, _ := f.store.SEL(slot)
		stored[slot] = map[uint64]board.SELEntry{}
		for _, e := range sel {
			stored[slot][e.Seq] = e.Entry
		}
	}
	for _, w := range want {
		if w.source == 0 {
			events = append(events, ipmitest.Event{SensorType: 0x12, SensorNumber: 0xf0, EventType: 0x6f,
				Data: [3]byte{0x03, 0xff, 0xff}})
			continue
		}
		e := stored[w.source][w.seq]
		et := e.EventType
		if e.Deassertion {
			et |= 0x80
		}
		events = append(events, ipmitest.Event{SensorType: e.SensorType, SensorNumber: e.SensorNumber,
			EventType: et, Data: e.EventData, Generator: uint16(0x80 + 2*w.source)})
	}
	sim := ipmitest.StartSim(b, ipmitest.Node{SEL: events, MaxSEL: 1000})
	count := func(out string) int { return strings.Count(out, "\n") }
	timeIt := func(fn func() (string, error)) time.Duration {
		t0 := time.Now()
		out, err := fn()
		d := time.Since(t0)
		if err != nil || count(out) != 1000 {
			b.Fatalf("sel list: %v, %d lines", err, count(out))
		}
		return d
	}
	var c3, c17, s3 []time.Duration
	for i := 0; i < 5; i++ {
		c3 = append(c3, timeIt(func() (string, error) { return f.ipmitoolAs("3", "admin", adminPW, "sel", "list") }))
		c17 = append(c17, timeIt(func() (string, error) { return f.ipmitoolAs("17", "admin", adminPW, "sel", "list") }))
		s3 = append(s3, timeIt(func() (string, error) { return sim.Ipmitool("sel", "list") }))
	}
	med := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	m3, m17, ms := med(c3), med(c17), med(s3)
	b.ReportMetric(float64(m3.Milliseconds()), "ms/cmcd-C3")
	b.ReportMetric(float64(ms.Milliseconds()), "ms/ipmi_sim-C3")
	fmt.Printf("ipmitool sel list, 1000 entries: cmcd %s (-C 3), %s (-C 17); ipmi_sim %s (-C 3); cmcd/ipmi_sim = %.2f\n",
		m3.Round(time.Millisecond), m17.Round(time.Millisecond), ms.Round(time.Millisecond), float64(m3)/float64(ms))
}
