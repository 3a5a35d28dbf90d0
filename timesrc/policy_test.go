package timesrc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/beevik/ntp"
	"github.com/facebook/time/ntp/protocol"

	"cmcd/timesrc/chronytest"
	"cmcd/timesrc/events"
	"cmcd/timesrc/policy"
)

// kinds collects event kinds as they happen.
type kinds struct {
	mu sync.Mutex
	ev []events.Event
}

func (k *kinds) sink(e events.Event) { k.mu.Lock(); k.ev = append(k.ev, e); k.mu.Unlock() }
func (k *kinds) count(kind string) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := 0
	for _, e := range k.ev {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

func post(t *testing.T, url, token string, body, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, bytes.NewReader(b))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// TestT2T3CorePausesRegions: two regions sync from a chronyd core tier and
// report upward to a cmcd core (T2). The chronyd core dies; both regions
// find themselves in unplanned holdover and report it; the core sees more
// than half of its regions abnormal, raises an alarm per region and tells
// them to pause upstream sync; the regions pause and keep serving their
// holdover clock at stratum 2 to their clients (T3).
func TestT2T3CorePausesRegions(t *testing.T) {
	ntpCore := chronytest.Start(t, chronytest.Options{LocalStratum: 1})
	var coreEv kinds
	core, _ := startService(t, Config{Role: "core", Name: "core-1", LocalStratum: 1, TickEvery: 100 * time.Millisecond,
		ReportToken: "s3cret", Events: coreEv.sink, Policy: policy.Config{PauseFor: time.Minute}})
	api := httptest.NewServer(core.Handler())
	t.Cleanup(api.Close)
	// a report without the token is refused
	if code := post(t, api.URL+"/report", "", policy.Report{ID: "x", Kind: "region"}, nil); code != 401 {
		t.Fatalf("unauthenticated report: %d, want 401", code)
	}
	var regions []*Service
	var addrs []string
	var regEv [2]kinds
	for i := range 2 {
		r, a := startService(t, Config{Name: fmt.Sprintf("chassis-%d", i+1), Type: "hpc/site-a",
			Upstream: []string{ntpCore.Addr()}, CoreReportURL: api.URL + "/report", ReportToken: "s3cret",
			ReportEvery: 200 * time.Millisecond, Events: regEv[i].sink})
		regions, addrs = append(regions, r), append(addrs, a)
	}
	chronytest.Eventually(t, 20*time.Second, func() string {
		cs := core.Policy.Clients()
		if len(cs) != 2 {
			return fmt.Sprintf("core sees %d regions", len(cs))
		}
		for _, c := range cs {
			if c.Kind != "region" || !c.Synced || c.Abnormal || c.RegionType != "hpc/site-a" {
				return fmt.Sprintf("region row: %+v", c)
			}
		}
		return ""
	})
	ntpCore.Stop()
	chronytest.Eventually(t, 20*time.Second, func() string {
		// At least: under load a late report can make a region flap
		// (alarm, clear, alarm) before the core goes quiet.
		if coreEv.count("policy.regions.pause-upstream") < 1 || coreEv.count("alarm.region") < 2 {
			return fmt.Sprintf("core: %d pause decisions, %d region alarms", coreEv.count("policy.regions.pause-upstream"), coreEv.count("alarm.region"))
		}
		for i, r := range regions {
			st := r.Poller.Status()
			if !st.Paused || !st.Holdover || !st.Synced || regEv[i].count("upstream.paused") != 1 {
				return fmt.Sprintf("region %d: %+v", i, st)
			}
		}
		return ""
	})
	// the regions' clients get the holdover clock, still stratum 2, valid
	for _, a := range addrs {
		r, err := ntp.Query(a)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Validate(); err != nil || r.Stratum != 2 || r.ClockOffset.Abs() > 5*time.Millisecond {
			t.Fatalf("holdover service: stratum %d offset %v validate %v", r.Stratum, r.ClockOffset, err)
		}
	}
	if st := core.Policy.State(); !st.UpstreamPause || st.AbnormalRegions != 0 && st.Regions != 2 {
		t.Fatalf("core state: %+v", st)
	}
}

// TestT4T5T6Clients drives the client policies end to end on loopback:
// node agents reporting through the API walk the repair sequence (one is
// repaired by "step", one exhausts it and raises an alarm: T4); three NTP
// clients with clocks 5 s off make more than half of the region's clients
// abnormal, so the region answers everyone with leap 3 and a chronyd client
// sees its server unsynchronised (T5); the client count changes and an
// operator command each draw a random factor that spreads the polls (T6).
func TestT4T5T6Clients(t *testing.T) {
	ntpCore := chronytest.Start(t, chronytest.Options{LocalStratum: 1})
	var ev kinds
	region, addr := startService(t, Config{Name: "chassis-9", Type: "web/site-b", Upstream: []string{ntpCore.Addr()},
		TickEvery: 100 * time.Millisecond, Events: ev.sink,
		Policy: policy.Config{AbnormalAfter: 2, RepairTries: 2, MinClients: 3, PauseFor: time.Minute, Seed: 7}})
	api := httptest.NewServer(region.Handler())
	t.Cleanup(api.Close)
	chronytest.Eventually(t, 20*time.Second, func() string {
		if !region.Poller.Status().Synced {
			return "region not synced"
		}
		return ""
	})

	// T4: node agents
	agent := func(id string, fixedBy string) (alarm bool, seen []string) {
		off := 500 * time.Millisecond
		for i := 0; i < 20; i++ {
			var d policy.Directive
			if code := post(t, api.URL+"/report", "", policy.Report{ID: id, Kind: "node", Synced: true, Offset: off}, &d); code != 200 {
				t.Fatalf("report: %d", code)
			}
			if d.Action != "" && (len(seen) == 0 || seen[len(seen)-1] != d.Action) {
				seen = append(seen, d.Action)
			}
			if d.Action == fixedBy {
				off = time.Millisecond // this repair works for this node
			}
			c, _ := region.Policy.Client("node:" + id)
			if c.Alarm {
				return true, seen
			}
		}
		return false, seen
	}
	if alarm, seen := agent("node-1", "step"); alarm || !slices.Equal(seen, []string{"poll-fast", "step"}) {
		t.Fatalf("node-1: alarm %v, repairs %v; want repaired by step", alarm, seen)
	}
	if alarm, seen := agent("node-2", "never"); !alarm || !slices.Equal(seen, []string{"poll-fast", "step", "restart-client"}) {
		t.Fatalf("node-2: alarm %v, repairs %v; want the whole sequence, then an alarm", alarm, seen)
	}
	if ev.count("policy.client.repaired") != 1 || ev.count("alarm.client") != 1 {
		t.Fatalf("events: repaired %d alarms %d", ev.count("policy.client.repaired"), ev.count("alarm.client"))
	}
	// the two nodes go quiet: forget them for the share by reporting them normal
	post(t, api.URL+"/report", "", policy.Report{ID: "node-2", Kind: "node", Synced: true}, nil)

	// T5: a chronyd client (hides its clock, normal) and three clients 5 s off
	client := chronytest.Start(t, chronytest.Options{NoServe: true, Servers: []string{addr}})
	chronytest.Eventually(t, 30*time.Second, func() string {
		ss, _ := client.Sources()
		if len(ss) != 1 || ss[0].State != "*" {
			return fmt.Sprintf("chronyd client not synced to cmcd: %+v", ss)
		}
		return ""
	})
	spreadsBefore := ev.count("policy.spread")
	// (beevik/ntp and chrony randomise their transmit timestamps; these
	// clients send their real, wrong clock, as ntpd and SNTP clients do)
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		for range 3 {
			wrongClientQuery(t, ip, addr, 5*time.Second)
		}
	}
	chronytest.Eventually(t, 10*time.Second, func() string {
		if ev.count("policy.clients.paused") != 1 {
			return fmt.Sprintf("no client pause yet: %+v", region.Policy.State())
		}
		return ""
	})
	r, err := ntp.Query(addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.Leap != ntp.LeapNotInSync {
		t.Fatalf("paused region answers leap %d, want 3", r.Leap)
	}
	chronytest.Eventually(t, 20*time.Second, func() string {
		d, err := client.NTPData()
		if err != nil {
			return err.Error()
		}
		ss, _ := client.Sources()
		if d.Leap != "Not synchronised" || len(ss) != 1 || ss[0].State == "*" {
			return fmt.Sprintf("chronyd still follows cmcd: %+v %+v", d, ss)
		}
		return ""
	})
	// T6: the count went from 0 to 1 (chronyd) to 4 (the three others): spreads
	if ev.count("policy.spread") <= spreadsBefore {
		t.Fatal("no spread after the client count changed")
	}
	var st Status
	if code := post(t, api.URL+"/command", "", Command{Action: "spread", Reason: "test"}, &st); code != 200 {
		t.Fatalf("spread command: %d", code)
	}
	var offs []time.Duration
	for _, c := range region.Policy.Clients() {
		if c.Kind == "ntp" {
			offs = append(offs, c.PollOffset)
		}
	}
	slices.Sort(offs)
	if len(offs) != 5 {
		t.Fatalf("%d NTP clients in the table", len(offs))
	}
	step := offs[1] - offs[0]
	for i := 1; i < len(offs); i++ {
		if d := offs[i] - offs[i-1]; (d-step).Abs() > time.Millisecond || d < time.Second {
			t.Fatalf("poll phases not spread evenly over the window: %v", offs)
		}
	}
	if code := post(t, api.URL+"/command", "", Command{Action: "reboot"}, nil); code != 400 {
		t.Fatalf("unknown command: %d, want 400", code)
	}
}

// wrongClientQuery sends one mode 3 request from ip whose transmit
// timestamp is the machine's time plus skew, and waits for the answer.
func wrongClientQuery(t *testing.T, ip, server string, skew time.Duration) {
	t.Helper()
	raddr, _ := net.ResolveUDPAddr("udp", server)
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)}, raddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := protocol.Packet{Settings: 4<<3 | 3, Poll: 6}
	p.TxTimeSec, p.TxTimeFrac = protocol.Time(time.Now().Add(skew))
	b, _ := p.Bytes()
	c.Write(b)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 128)); err != nil {
		t.Fatalf("no answer to %s: %v", ip, err)
	}
}

// TestT7DualActive: one region with two listeners serving the same
// disciplined clock; a chronyd client uses both; when one listener stops,
// the other carries the client on (it is still synchronised, to the other
// address) and the shared client table keeps its history.
func TestT7DualActive(t *testing.T) {
	ntpCore := chronytest.Start(t, chronytest.Options{LocalStratum: 1})
	region, _ := startService(t, Config{Listen: []string{"127.0.0.1:0", "127.0.0.2:0"}, Upstream: []string{ntpCore.Addr()}})
	srvs := region.Servers()
	a, b := srvs[0].Addr().String(), srvs[1].Addr().String()
	client := chronytest.Start(t, chronytest.Options{NoServe: true, Servers: []string{a, b}})
	chronytest.Eventually(t, 30*time.Second, func() string {
		ss, _ := client.Sources()
		if len(ss) != 2 || ss[0].Reach == 0 || ss[1].Reach == 0 || (ss[0].State != "*" && ss[1].State != "*") {
			return fmt.Sprintf("both modules not in use: %+v", ss)
		}
		return ""
	})
	before := map[string]policy.Client{}
	for _, c := range region.Policy.Clients() {
		before[c.Key] = c
	}
	srvs[0].Close()
	chronytest.Eventually(t, 30*time.Second, func() string {
		tr, err := client.Tracking()
		if err != nil {
			return err.Error()
		}
		ss, _ := client.Sources()
		if tr.Leap != "Normal" || tr.Stratum != 3 || len(ss) != 2 {
			return fmt.Sprintf("tracking %+v", tr)
		}
		// the surviving module (127.0.0.2) is selected; the stopped one is not
		sel := false
		for _, s := range ss {
			sel = sel || s.State == "*" && s.Addr == "127.0.0.2"
		}
		if !sel {
			return fmt.Sprintf("the surviving module is not selected: %+v", ss)
		}
		// the client's row (history) continues on the surviving module
		for _, c := range region.Policy.Clients() {
			if b, ok := before[c.Key]; ok && c.Requests > b.Requests+4 && c.FirstSeen.Equal(b.FirstSeen) {
				return ""
			}
		}
		return fmt.Sprintf("client history not carried over: before %+v after %+v", before, region.Policy.Clients())
	})
	if srvs[1].Stats().Answered.Load() == 0 {
		t.Fatal("the second module never served")
	}
	if n := srvs[0].Stats().Answered.Load(); n == 0 {
		t.Fatal("the first module never served")
	}
}
