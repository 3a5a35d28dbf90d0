package lab

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The client of the benchmark polls GET /cmcd/pair/status at the floating
// address every pollEvery, each poll a fresh TCP connection (no
// keep-alive) with the lab client's 300 ms timeout, and WITHOUT waiting
// for the previous poll to finish: a poll that hangs (a SYN sent to the
// old MAC after the fence removed the address there is dropped, not
// refused) does not delay the next one. So the client is never the
// bottleneck: it sees the new active within pollEvery of its first
// answer.
const pollEvery = 5 * time.Millisecond

type pollResult struct {
	got  time.Time
	id   string
	role string
	err  error
}

// poller polls the floating address until stop is closed.
type poller struct {
	l    *lab
	mu   sync.Mutex
	res  []pollResult
	stop chan struct{}
	wg   sync.WaitGroup
}

func (l *lab) startPoller() *poller {
	p := &poller{l: l, stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(pollEvery)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				s, err := l.status(vipAddr)
				r := pollResult{got: time.Now(), id: s.ID, role: s.Role, err: err}
				p.mu.Lock()
				p.res = append(p.res, r)
				p.mu.Unlock()
			}()
		}
	}()
	return p
}

// seen returns the earliest answer time of module id as active after t
// (zero if none yet).
func (p *poller) seen(id string, after time.Time) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first time.Time
	for _, r := range p.res {
		if r.err == nil && r.role == "active" && r.id == id && r.got.After(after) && (first.IsZero() || r.got.Before(first)) {
			first = r.got
		}
	}
	return first
}

func (p *poller) finish() []pollResult {
	close(p.stop)
	p.wg.Wait()
	return p.res
}

// takeovers kills the active module `kills` times with the given heartbeat
// and measures each takeover as the client sees it through the floating
// address: from the last answer of the old active to the first answer of
// the new one. It counts the polls that got no answer (or no active) in
// between, checks after every takeover that exactly one module holds the
// address and every acknowledged write is on the new active, and reads
// the phases of the takeover from the new active's log; the killed module
// is restarted and caught up before the next kill.
func takeovers(b *testing.B, hb string, noFast bool, kills int) (times []time.Duration, failed int, phases []map[string]time.Duration) {
	l := newLab(b)
	l.hb, l.noFast = hb, noFast
	defer l.dumpLogs()
	l.form()
	var acked []string
	for i := 0; i < kills; i++ {
		st, err := l.status(vipAddr)
		if err != nil || st.Role != "active" {
			b.Fatalf("kill %d: no active at the floating address: %+v %v", i, st, err)
		}
		cur := st.ID
		next := map[string]string{"A": "B", "B": "A"}[cur]
		acked = append(acked, l.writes(1000*i, 3)...)
		p := l.startPoller()
		for p.seen(cur, time.Time{}).IsZero() {
			time.Sleep(time.Millisecond)
		}
		killAt := time.Now()
		syscall.Kill(l.procs[cur].Process.Pid, syscall.SIGKILL)
		deadline := time.Now().Add(30 * time.Second)
		for p.seen(next, killAt).IsZero() {
			if time.Now().After(deadline) {
				p.finish()
				b.Fatalf("kill %d: %s not active after 30s", i, next)
			}
			time.Sleep(time.Millisecond)
		}
		res := p.finish()
		var lastOld, firstNew time.Time
		fails := 0
		for _, r := range res {
			switch {
			case r.err == nil && r.role == "active" && r.id == cur:
				if r.got.After(lastOld) {
					lastOld = r.got
				}
			case r.err == nil && r.role == "active" && r.id == next:
				if firstNew.IsZero() || r.got.Before(firstNew) {
					firstNew = r.got
				}
			case r.got.After(killAt):
				fails++
			}
		}
		times = append(times, firstNew.Sub(lastOld))
		failed += fails
		ph := l.phases(next, killAt)
		ph["client"] = firstNew.Sub(killAt)
		phases = append(phases, ph)
		if h := l.holders(); len(h) != 1 || h[0] != next {
			b.Fatalf("kill %d: holders %v, want [%s]", i, h, next)
		}
		l.checkWrites(acked)
		l.kill(cur)
		l.start(cur)
		l.agree(cur, next)
	}
	return times, failed, phases
}

// phaseOrder names the takeover's phases as offsets from the SIGKILL, in
// order: the standby proved the active's process gone and started the
// pre-fence (fast path only), raft made it candidate and leader, the
// takeover's Barrier, the pre-fence done (the takeover waited for it until
// then), the duplicate-address probe(s), the fence (when the takeover
// itself had to fence), the address added with its first gratuitous ARP,
// the role active, and the client's first answer from it.
var phaseOrder = []string{"proof", "prefence", "candidate", "leader", "barrier", "fenced", "probe", "fence", "probe2", "address", "active", "client"}

var (
	logTime = regexp.MustCompile(`^time=(\S+)`)
	logKV   = regexp.MustCompile(`(\w+)=("[^"]*"|\S+)`)
)

// phases reads module m's log after t and returns the offset from t of
// each phase of the takeover that followed.
func (l *lab) phases(m string, t time.Time) map[string]time.Duration {
	out := map[string]time.Duration{}
	f, err := os.Open(filepath.Join(l.dir, m+".log"))
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	set := func(k string, at time.Time) {
		if _, ok := out[k]; !ok {
			out[k] = at.Sub(t)
		}
	}
	for sc.Scan() {
		line := sc.Text()
		mt := logTime.FindStringSubmatch(line)
		if mt == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, mt[1])
		if err != nil || at.Before(t.Truncate(time.Millisecond)) {
			continue
		}
		switch {
		case strings.Contains(line, "process is gone"):
			set("proof", at)
		case strings.Contains(line, "address still answers; fencing it"):
			set("prefence", at)
		case strings.Contains(line, "entering candidate state"):
			set("candidate", at)
		case strings.Contains(line, "entering leader state"):
			set("leader", at)
		case strings.Contains(line, `msg="pair: takeover"`):
			if _, ok := out["active"]; ok {
				continue
			}
			// Durations of the steps, in order, from leaderAt.
			var leaderAt time.Time
			probes := 0
			for _, kv := range logKV.FindAllStringSubmatch(line, -1) {
				k, v := kv[1], strings.Trim(kv[2], `"`)
				if k == "leaderAt" {
					hm, err := time.Parse("15:04:05.000000", v)
					if err != nil {
						break
					}
					y, mo, d := at.Date()
					leaderAt = time.Date(y, mo, d, hm.Hour(), hm.Minute(), hm.Second(), hm.Nanosecond(), at.Location())
					continue
				}
				dur, err := time.ParseDuration(v)
				if err != nil || leaderAt.IsZero() || k == "total" {
					continue
				}
				leaderAt = leaderAt.Add(dur)
				if k == "prefence" {
					k = "fenced"
				}
				if k == "probe" {
					if probes++; probes == 2 {
						k = "probe2"
					}
				}
				set(k, leaderAt)
			}
		}
	}
	return out
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// phaseTable prints, for each phase, the median and max offset from the
// SIGKILL over the kills that had that phase.
func phaseTable(name string, phases []map[string]time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "SUMMARY takeover phases (%s), offset from the SIGKILL, median/max over the kills that had the phase:", name)
	for _, k := range phaseOrder {
		var v []time.Duration
		for _, p := range phases {
			if d, ok := p[k]; ok {
				v = append(v, d)
			}
		}
		if len(v) == 0 {
			continue
		}
		fmt.Fprintf(&b, " %s %v/%v (%d)", k, median(v).Round(time.Millisecond), slices.Max(v).Round(time.Millisecond), len(v))
	}
	fmt.Println(b.String())
}

// BenchmarkTakeover (make bench, root): 20 SIGKILLs of the active with the
// default settings (200 ms heartbeat, the fast path of pair/fast.go), then,
// as the comparison runs in the same invocation, 5 with a 1 s heartbeat
// and raft's timers alone (close to VRRP's 1 s advertisement), and 5 with
// the 200 ms heartbeat and raft's timers alone (what the fast path adds).
// CMCD_TAKEOVER_KILLS changes the 20.
func BenchmarkTakeover(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("the pair lab needs root")
	}
	kills := 20
	if v, err := strconv.Atoi(os.Getenv("CMCD_TAKEOVER_KILLS")); err == nil && v > 0 {
		kills = v
	}
	for range b.N {
		var fast, slow, timers []time.Duration
		var ffail, sfail, tfail int
		var fph, sph, tph []map[string]time.Duration
		// Sub-benchmarks: each lab is torn down before the next starts.
		b.Run("heartbeat=200ms", func(b *testing.B) { fast, ffail, fph = takeovers(b, "", false, kills) })
		b.Run("heartbeat=1s,timers-only", func(b *testing.B) { slow, sfail, sph = takeovers(b, "1s", true, 5) })
		b.Run("heartbeat=200ms,timers-only", func(b *testing.B) { timers, tfail, tph = takeovers(b, "", true, 5) })
		if len(fast) == 0 || len(slow) == 0 || len(timers) == 0 {
			b.Fatal("a series did not complete")
		}
		mf, ms := median(fast), median(slow)
		b.ReportMetric(float64(mf.Milliseconds()), "median-ms")
		b.ReportMetric(float64(slices.Max(fast).Milliseconds()), "max-ms")
		fmt.Printf("SUMMARY takeover (SIGKILL of the active -> first answer of the new one at the floating address, client polls every %v without waiting): "+
			"200ms heartbeat: median %v, max %v over %d kills, %d polls unanswered in total, 0 acknowledged writes lost; "+
			"1s heartbeat, raft timers only (comparison, close to VRRP's 1 s advertisement): median %v, max %v over %d kills, %d polls unanswered; ratio %.2fx; "+
			"200ms heartbeat, raft timers only (the fast path off): median %v, max %v over %d kills, %d polls unanswered\n", pollEvery,
			mf.Round(time.Millisecond), slices.Max(fast).Round(time.Millisecond), len(fast), ffail,
			ms.Round(time.Millisecond), slices.Max(slow).Round(time.Millisecond), len(slow), sfail, float64(ms)/float64(mf),
			median(timers).Round(time.Millisecond), slices.Max(timers).Round(time.Millisecond), len(timers), tfail)
		fmt.Printf("SUMMARY takeover times (200ms heartbeat): %v\n", fast)
		phaseTable("200ms heartbeat", fph)
		phaseTable("1s heartbeat, timers only", sph)
		phaseTable("200ms heartbeat, timers only", tph)
	}
}
