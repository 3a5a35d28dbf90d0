// Command ntpload is the closed-loop NTP load generator of `make bench`:
// it runs cmcd's NTP server (this binary re-executed with -serve, so the
// server has a process of its own like chronyd) and a chronyd (-x, local
// stratum 1, no rate limit) on loopback, and measures both in the same run
// at concurrency 1, 16 and 64: responses/s, p50/p99 round trip, loss, and
// the server's processing delay (its transmit minus receive timestamp).
// Every request carries a random transmit cookie that must come back in
// the origin field.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/facebook/time/ntp/protocol"

	"cmcd/timesrc"
)

func main() {
	serve := flag.String("serve", "", "internal: run cmcd's NTP server on this address")
	dur := flag.Duration("d", 2*time.Second, "measuring time per point and server")
	rounds := flag.Int("rounds", 8, "alternate the servers this many times per point")
	flag.Parse()
	if *serve != "" {
		s, err := timesrc.New(timesrc.Config{Role: "core", LocalStratum: 1, Listen: []string{*serve}})
		if err == nil {
			err = s.Start(context.Background())
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		select {}
	}
	cmcdAddr, chronyAddr := freePort(), freePort()
	self, _ := os.Executable()
	srv := exec.Command(self, "-serve", cmcdAddr)
	srv.Stderr = os.Stderr
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	must(srv.Start())
	defer syscall.Kill(-srv.Process.Pid, syscall.SIGKILL)
	dir, _ := os.MkdirTemp("", "ntpload-")
	defer os.RemoveAll(dir)
	_, port, _ := net.SplitHostPort(chronyAddr)
	conf := fmt.Sprintf("port %s\nbindaddress 127.0.0.1\nallow 127.0.0.1\nlocal stratum 1\ncmdport 0\npidfile %s\n", port, filepath.Join(dir, "pid"))
	must(os.WriteFile(filepath.Join(dir, "chrony.conf"), []byte(conf), 0o600))
	ch := exec.Command("chronyd", "-x", "-d", "-u", "root", "-f", filepath.Join(dir, "chrony.conf"))
	ch.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	must(ch.Start())
	defer syscall.Kill(-ch.Process.Pid, syscall.SIGKILL)
	for _, a := range []string{cmcdAddr, chronyAddr} {
		if !waitUp(a) {
			fmt.Fprintln(os.Stderr, "server did not answer:", a)
			os.Exit(1)
		}
	}
	fmt.Printf("%-7s %5s %10s %9s %9s %7s %9s %9s %9s\n", "server", "conc", "resp/s", "p50", "p99", "loss", "proc p50", "proc p99", "cpu/resp")
	pids := [2]int{srv.Process.Pid, ch.Process.Pid}
	for _, c := range []int{1, 16, 64} {
		// The two servers take turns in *rounds* slices of the measuring
		// time, so a change in the machine's other load hits both alike.
		var r [2]result
		for range *rounds {
			for i, a := range []string{cmcdAddr, chronyAddr} {
				cpu0 := cpuTime(pids[i])
				x := run(a, c, *dur/time.Duration(*rounds))
				x.cpu = cpuTime(pids[i]) - cpu0
				r[i].merge(x)
			}
		}
		for i := range r {
			r[i].finish()
			fmt.Printf("%-7s %5d %10.0f %9v %9v %6.2f%% %9v %9v %9v\n", []string{"cmcd", "chronyd"}[i], c, r[i].rate,
				r[i].p50, r[i].p99, 100*r[i].loss, r[i].proc50, r[i].proc99, r[i].cpuPer)
		}
		fmt.Printf("SUMMARY concurrency %d: cmcd/chronyd throughput ratio %.2f, processing delay p50 %v vs %v, server CPU per response %v vs %v, loss %.2f%% vs %.2f%%, cookie mismatches %d/%d\n",
			c, r[0].rate/r[1].rate, r[0].proc50, r[1].proc50, r[0].cpuPer, r[1].cpuPer, 100*r[0].loss, 100*r[1].loss, r[0].bad, r[1].bad)
	}
}

// cpuTime is a process's user+system CPU time so far (all its threads).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// the fields after the command name (which may hold spaces) in parentheses
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clkTck
}

const clkTck = 100 // USER_HZ on Linux

type result struct {
	rate                     float64
	p50, p99, proc50, proc99 time.Duration
	loss                     float64
	bad                      int
	cpuPer                   time.Duration // server CPU time per response

	// raw figures, merged over rounds
	lat, proc    []time.Duration
	sent, lost   int
	elapsed, cpu time.Duration
}

func (r *result) merge(x result) {
	r.lat, r.proc = append(r.lat, x.lat...), append(r.proc, x.proc...)
	r.sent, r.lost, r.bad = r.sent+x.sent, r.lost+x.lost, r.bad+x.bad
	r.elapsed, r.cpu = r.elapsed+x.elapsed, r.cpu+x.cpu
}

func (r *result) finish() {
	slices.Sort(r.lat)
	slices.Sort(r.proc)
	q := func(x []time.Duration, f float64) time.Duration {
		if len(x) == 0 {
			return 0
		}
		return x[int(f*float64(len(x)-1))].Round(time.Microsecond / 10)
	}
	r.rate = float64(len(r.lat)) / r.elapsed.Seconds()
	r.p50, r.p99, r.proc50, r.proc99 = q(r.lat, .5), q(r.lat, .99), q(r.proc, .5), q(r.proc, .99)
	r.loss = float64(r.lost) / float64(max(r.sent, 1))
	r.cpuPer = (r.cpu / time.Duration(max(len(r.lat), 1))).Round(time.Microsecond / 10)
}

func run(addr string, conc int, d time.Duration) result {
	var mu sync.Mutex
	var lat, proc []time.Duration
	sent, lost, bad := 0, 0, 0
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("udp", addr)
			must(err)
			defer c.Close()
			req := make([]byte, 48)
			rep := make([]byte, 128)
			var l, p []time.Duration
			s, lo, b := 0, 0, 0
			for time.Since(start) < d {
				req[0] = 4<<3 | 3
				cookie := rand.Uint64()
				binary.BigEndian.PutUint64(req[40:], cookie)
				t0 := time.Now()
				c.Write(req)
				s++
				c.SetReadDeadline(t0.Add(200 * time.Millisecond))
				for {
					n, err := c.Read(rep)
					if err != nil {
						lo++
						break
					}
					if n < 48 || binary.BigEndian.Uint64(rep[24:]) != cookie {
						b++ // a late reply to an earlier request, or a wrong one
						continue
					}
					l = append(l, time.Since(t0))
					var pk protocol.Packet
					pk.UnmarshalBinary(rep[:48])
					p = append(p, protocol.Unix(pk.TxTimeSec, pk.TxTimeFrac).Sub(protocol.Unix(pk.RxTimeSec, pk.RxTimeFrac)))
					break
				}
			}
			mu.Lock()
			lat, proc = append(lat, l...), append(proc, p...)
			sent, lost, bad = sent+s, lost+lo, bad+b
			mu.Unlock()
		}()
	}
	wg.Wait()
	return result{lat: lat, proc: proc, sent: sent, lost: lost, bad: bad, elapsed: time.Since(start)}
}

func waitUp(addr string) bool {
	for range 100 {
		c, err := net.Dial("udp", addr)
		if err == nil {
			req := make([]byte, 48)
			req[0] = 4<<3 | 3
			c.Write(req)
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			_, err = c.Read(make([]byte, 128))
			c.Close()
			if err == nil {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func freePort() string {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(err)
	defer c.Close()
	return c.LocalAddr().String()
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
