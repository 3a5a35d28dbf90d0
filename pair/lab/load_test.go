package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"cmcd/accounts"
)

// readSpread (D1, D2) drives a load skew through the floating address:
// eight clients read pair-wide data concurrently, so the active x has
// Redfish requests in flight and CPU time while the standby y idles. The
// active then routes reads to y: both modules serve some
// (X-Cmcd-Served-By), every read succeeds, and x's Manager counts the
// routed reads under Oem.Cmcd.Pair.Reads. It stops as soon as each module
// served 20 reads (at most 20 s).
func (l *lab) readSpread(x, y string) {
	l.t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 8, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := l.inNS("C", func() (err error) {
			c, err = (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	var mu sync.Mutex
	served := map[string]int{}
	var failed []string
	done := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return served[x] >= 20 && served[y] >= 20 || len(failed) > 0
	}
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for !done() && time.Now().Before(deadline) {
				req, _ := http.NewRequest("GET", "http://"+vipAddr+":8080/redfish/v1/Chassis", nil)
				req.SetBasicAuth(accounts.InitialAdmin, l.pw)
				resp, err := hc.Do(req)
				if err != nil {
					mu.Lock()
					failed = append(failed, err.Error())
					mu.Unlock()
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				if resp.StatusCode != 200 {
					failed = append(failed, fmt.Sprintf("%d by %q", resp.StatusCode, resp.Header.Get("X-Cmcd-Served-By")))
				}
				served[resp.Header.Get("X-Cmcd-Served-By")]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	l.t.Logf("D2 under a load skew: reads served %v in %v", served, time.Since(start).Round(time.Millisecond))
	if len(failed) > 0 || served[x] == 0 || served[y] < 20 {
		l.t.Fatalf("reads through the floating address under load: served %v, failed %v", served, failed)
	}
	_, p := l.manager("/redfish/v1/Managers/CMC")
	l.t.Logf("Oem.Cmcd.Pair.Reads of %s: %v", x, p["Reads"])
	if rd, _ := p["Reads"].(map[string]any); rd == nil || rd["RoutedToPeer"].(float64) < 20 {
		l.t.Fatalf("Oem.Cmcd.Pair.Reads of %s: %v", x, p["Reads"])
	}
}
