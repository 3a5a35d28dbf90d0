package lab

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// takeovers kills the active module `kills` times with the given heartbeat
// and measures each takeover as the client sees it through the floating
// address: from the last answer of the old active to the first answer of
// the new one (polling /cmcd/pair/status every 5 ms). It also counts the
// polls that got no answer in between, and checks after every takeover
// that exactly one module holds the address and every acknowledged write
// is on the new active; the killed module is restarted and caught up
// before the next kill.
func takeovers(b *testing.B, hb string, kills int) (times []time.Duration, failed int) {
	l := newLab(b)
	l.hb = hb
	defer l.dumpLogs()
	for _, m := range []string{"W", "A", "B"} {
		l.start(m)
	}
	l.waitActive("A", 60*time.Second)
	l.agree("A", "B")
	var acked []string
	for i := 0; i < kills; i++ {
		st, err := l.status(vipAddr)
		if err != nil || st.Role != "active" {
			b.Fatalf("kill %d: no active at the floating address: %+v %v", i, st, err)
		}
		cur := st.ID
		next := map[string]string{"A": "B", "B": "A"}[cur]
		acked = append(acked, l.writes(1000*i, 3)...)
		var lastOld, firstNew time.Time
		fails := 0
		killed := false
		deadline := time.Now().Add(30 * time.Second)
		for firstNew.IsZero() {
			if time.Now().After(deadline) {
				b.Fatalf("kill %d: %s not active after 30s", i, next)
			}
			if !killed && !lastOld.IsZero() {
				syscall.Kill(l.procs[cur].Process.Pid, syscall.SIGKILL)
				killed = true
			}
			s, err := l.status(vipAddr)
			now := time.Now()
			switch {
			case err == nil && s.Role == "active" && s.ID == cur && !killed:
				lastOld = now
			case err == nil && s.Role == "active" && s.ID == next:
				firstNew = now
			case killed:
				fails++
			}
			time.Sleep(5 * time.Millisecond)
		}
		times = append(times, firstNew.Sub(lastOld))
		failed += fails
		if h := l.holders(); len(h) != 1 || h[0] != next {
			b.Fatalf("kill %d: holders %v, want [%s]", i, h, next)
		}
		l.checkWrites(acked)
		l.kill(cur)
		l.start(cur)
		l.agree(cur, next)
	}
	return times, failed
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkTakeover (make bench, root): 20 SIGKILLs of the active with the
// default 200 ms heartbeat, then, as the comparison run in the same
// invocation, 5 with a 1 s heartbeat (close to VRRP's 1 s advertisement).
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
		var fast, slow []time.Duration
		var ffail, sfail int
		// Sub-benchmarks: each lab is torn down before the next starts.
		b.Run("heartbeat=200ms", func(b *testing.B) { fast, ffail = takeovers(b, "", kills) })
		b.Run("heartbeat=1s", func(b *testing.B) { slow, sfail = takeovers(b, "1s", 5) })
		if len(fast) == 0 || len(slow) == 0 {
			b.Fatal("a series did not complete")
		}
		mf, ms := median(fast), median(slow)
		b.ReportMetric(float64(mf.Milliseconds()), "median-ms")
		b.ReportMetric(float64(slices.Max(fast).Milliseconds()), "max-ms")
		fmt.Printf("SUMMARY takeover (SIGKILL of the active -> first answer of the new one at the floating address): "+
			"200ms heartbeat: median %v, max %v over %d kills, %d polls unanswered in total, 0 acknowledged writes lost; "+
			"1s heartbeat (comparison): median %v, max %v over %d kills, %d polls unanswered; ratio %.2fx\n",
			mf.Round(time.Millisecond), slices.Max(fast).Round(time.Millisecond), len(fast), ffail,
			ms.Round(time.Millisecond), slices.Max(slow).Round(time.Millisecond), len(slow), sfail, float64(ms)/float64(mf))
		fmt.Printf("SUMMARY takeover times (200ms heartbeat): %v\n", fast)
	}
}
