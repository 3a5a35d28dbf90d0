package redfish

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"cmcd/timesrc"
	"cmcd/timesrc/chronytest"
)

// newTimeRig is newRig whose server runs with a time source: a cmcd
// region following upstream, its events routed into the rig engine's CMC
// event log by TimeEventLog as the daemon does.
func newTimeRig(t *testing.T, upstream ...string) (*rig, *timesrc.Service) {
	t.Helper()
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	svc, err := timesrc.New(timesrc.Config{Name: "chassis-7", Type: "hpc/site-a", Listen: []string{"127.0.0.1:0"},
		Upstream: upstream, Poll: 250 * time.Millisecond, Timeout: 500 * time.Millisecond,
		Events: TimeEventLog(ctx, r.eng)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tree := r.srv.tree.o
	r.srv.Close()
	r.ts.Close()
	r.srv = New(Options{Accounts: r.acct, Engine: r.eng, Now: r.clock, SessionTimeout: 10 * time.Minute,
		SSEKeepAlive: 100 * time.Millisecond, Tree: tree, TimeSource: svc})
	r.ts = httptest.NewServer(r.srv)
	t.Cleanup(r.ts.Close)
	t.Cleanup(func() { r.srv.Close() })
	return r, svc
}

// getOEM fetches an OEM resource (no DMTF schema to validate it against:
// its structure is checked by the caller).
func (r *rig) getOEM(path string, a auth) map[string]any {
	r.t.Helper()
	x := r.do("GET", path, a, "")
	if x.StatusCode != 200 || x.Header.Get("ETag") == "" {
		r.t.Fatalf("GET %s: %s (ETag %q)\n%s", path, x.Status, x.Header.Get("ETag"), x.body)
	}
	return x.json(r.t)
}

func timeSync(m map[string]any) (state string, stratum float64, ref string) {
	s, _ := m["Sync"].(map[string]any)
	state, _ = s["State"].(string)
	stratum, _ = s["Stratum"].(float64)
	ref, _ = s["Reference"].(string)
	return
}

// TestTimeSourceUnderManager: a region syncing from a real chronyd (-x,
// local stratum 3) shows Synchronised at stratum 4 in the OEM resource,
// NetworkProtocol shows the live NTPServers and validates; a PATCH by
// ReadOnly is 403, a bad entry is 400 PropertyValueFormatError naming it
// and changes nothing, ProtocolEnabled is not writable; a PATCH to cmcd's
// own core server (local stratum 1) switches the upstream (stratum 2).
func TestTimeSourceUnderManager(t *testing.T) {
	chrony := chronytest.Start(t, chronytest.Options{LocalStratum: 3})
	core, err := timesrc.New(timesrc.Config{Role: "core", LocalStratum: 1, Listen: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	t.Cleanup(ccancel)
	if err := core.Start(cctx); err != nil {
		t.Fatal(err)
	}
	coreAddr := core.Servers()[0].Addr().String()
	r, svc := newTimeRig(t, chrony.Addr())

	chronytest.Eventually(t, 20*time.Second, func() string {
		st, n, ref := timeSync(r.getOEM(timeSourceURI, r.reader()))
		if st != "Synchronised" || n != 4 || ref != chrony.Addr() {
			return fmt.Sprintf("time source %s stratum %v ref %q, want Synchronised 4 %s", st, n, ref, chrony.Addr())
		}
		return ""
	})
	ts := r.getOEM(timeSourceURI, r.reader())
	if reg := ts["Region"].(map[string]any); reg["Name"] != "chassis-7" || reg["Type"] != "hpc/site-a" || ts["Role"] != "region" {
		t.Fatalf("region %v role %v", reg, ts["Role"])
	}
	srv := ts["Upstream"].(map[string]any)["Servers"].([]any)
	if len(srv) != 1 || srv[0].(map[string]any)["Selected"] != true || srv[0].(map[string]any)["Address"] != chrony.Addr() {
		t.Fatalf("upstream servers %v", srv)
	}
	if ts["Sync"].(map[string]any)["ReferenceId"] != "127.0.0.1" {
		t.Fatalf("reference id %v", ts["Sync"].(map[string]any)["ReferenceId"])
	}
	// The Manager links it and carries the actions; it still validates.
	mgr := r.get(managerURI, r.reader())
	if l := mgr["Oem"].(map[string]any)["Cmcd"].(map[string]any)["TimeSource"]; fmt.Sprint(l) != "map[@odata.id:"+timeSourceURI+"]" {
		t.Fatalf("Manager Oem.Cmcd.TimeSource %v", l)
	}
	oa := mgr["Actions"].(map[string]any)["Oem"].(map[string]any)
	if oa["#Cmcd.TimeReport"] == nil || oa["#Cmcd.TimeCommand"] == nil || oa["#Cmcd.SyncNow"] == nil {
		t.Fatalf("Manager Actions.Oem %v", oa)
	}
	ntpServers := func() string {
		np := r.get(netProtoURI, r.reader())
		n := np["NTP"].(map[string]any)
		if n["ProtocolEnabled"] != true {
			t.Fatalf("NTP %v", n)
		}
		return fmt.Sprint(n["NTPServers"])
	}
	if got := ntpServers(); got != "["+chrony.Addr()+"]" {
		t.Fatalf("NTPServers %s", got)
	}

	// ReadOnly and Operator cannot change it (ConfigureManager).
	body := fmt.Sprintf(`{"NTP":{"NTPServers":[%q]}}`, coreAddr)
	expectError(t, r.do("PATCH", netProtoURI, r.reader(), body), 403, "InsufficientPrivilege")
	expectError(t, r.do("PATCH", netProtoURI, r.operator(), body), 403, "InsufficientPrivilege")
	// A bad entry: 400 naming it, nothing changed.
	for _, bad := range []struct{ body, entry, prop string }{
		{fmt.Sprintf(`{"NTP":{"NTPServers":[%q,"bad host!:123"]}}`, coreAddr), "bad host!:123", "NTP/NTPServers/1"},
		{`{"NTP":{"NTPServers":["127.0.0.1:99999"]}}`, "127.0.0.1:99999", "NTP/NTPServers/0"},
		{fmt.Sprintf(`{"NTP":{"NTPServers":[null,%q,"[::1:123"]}}`, coreAddr), "[::1:123", "NTP/NTPServers/2"},
		{fmt.Sprintf(`{"NTP":{"NTPServers":[%q,%q]}}`, coreAddr, coreAddr), coreAddr, "NTP/NTPServers/1"},
	} {
		x := r.do("PATCH", netProtoURI, r.admin(), bad.body)
		expectError(t, x, 400, "PropertyValueFormatError")
		if !strings.Contains(string(x.body), bad.entry) || !strings.Contains(string(x.body), "#/"+bad.prop) {
			t.Fatalf("%s: error does not name %q at %s:\n%s", bad.body, bad.entry, bad.prop, x.body)
		}
	}
	expectError(t, r.do("PATCH", netProtoURI, r.admin(), `{"NTP":{"NTPServers":[42]}}`), 400, "PropertyValueTypeError")
	expectError(t, r.do("PATCH", netProtoURI, r.admin(), `{"NTP":{"ProtocolEnabled":false}}`), 400, "PropertyNotWritable")
	expectError(t, r.do("PATCH", netProtoURI, r.admin(), `{"NTP":{"NTPServers":[],"Port":1}}`), 400, "PropertyNotWritable")
	expectError(t, r.do("PATCH", netProtoURI, r.admin(), `{"HTTPS":{"Port":1}}`), 400, "PropertyNotWritable")
	if got := ntpServers(); got != "["+chrony.Addr()+"]" {
		t.Fatalf("after refused PATCHes NTPServers %s", got)
	}
	if got := fmt.Sprint(svc.Upstream()); got != "["+chrony.Addr()+"]" {
		t.Fatalf("after refused PATCHes the service's upstream is %s", got)
	}

	// Switch to cmcd's own core: the region follows it at stratum 2.
	x := r.do("PATCH", netProtoURI, r.admin(), body)
	if x.StatusCode != 200 {
		t.Fatalf("PATCH: %s\n%s", x.Status, x.body)
	}
	validatePayload(t, x, nil)
	if got := ntpServers(); got != "["+coreAddr+"]" {
		t.Fatalf("NTPServers %s", got)
	}
	chronytest.Eventually(t, 20*time.Second, func() string {
		st, n, ref := timeSync(r.getOEM(timeSourceURI, r.reader()))
		if st != "Synchronised" || n != 2 || ref != coreAddr {
			return fmt.Sprintf("time source %s stratum %v ref %q, want Synchronised 2 %s", st, n, ref, coreAddr)
		}
		return ""
	})
	// {} keeps an entry, a host without port takes 123.
	x = r.do("PATCH", netProtoURI, r.admin(), `{"NTP":{"NTPServers":[{}, "ntp.example"]}}`)
	if x.StatusCode != 200 {
		t.Fatalf("PATCH: %s\n%s", x.Status, x.body)
	}
	if got := ntpServers(); got != "["+coreAddr+" ntp.example:123]" {
		t.Fatalf("NTPServers %s", got)
	}
}

// TestTimeReportPolicyEvent: a node's report through #Cmcd.TimeReport
// (Operator; ReadOnly gets 403) makes it abnormal; the policy decision
// arrives on the SSE stream as a Cmcd TimePolicyDecision linked to its CMC
// event log entry, which the EventLog shows; the client table shows it;
// #Cmcd.TimeCommand spread (Administrator) is an event too.
func TestTimeReportPolicyEvent(t *testing.T) {
	core, err := timesrc.New(timesrc.Config{Role: "core", LocalStratum: 1, Listen: []string{"127.0.0.1:0"}})
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	t.Cleanup(ccancel)
	if err := core.Start(cctx); err != nil {
		t.Fatal(err)
	}
	r, _ := newTimeRig(t, core.Servers()[0].Addr().String())
	sse, res := r.openSSE(r.admin())
	if sse == nil {
		t.Fatalf("SSE: %s", res.Status)
	}
	report := `{"id":"node-7","kind":"node","synced":false,"offsetNs":5000000000,"stratum":5}`
	expectError(t, r.do("POST", timeReportURI, r.reader(), report), 403, "InsufficientPrivilege")
	expectError(t, r.do("POST", timeReportURI, r.operator(), `{"id":"n","kind":"node","bogus":1}`), 400, "ActionParameterUnknown")
	expectError(t, r.do("POST", timeReportURI, r.operator(), `{"kind":"node"}`), 400, "ActionParameterMissing")
	expectError(t, r.do("POST", timeReportURI, r.operator(), `{"id":"n","kind":"toaster"}`), 400, "ActionParameterValueNotInList")
	expectError(t, r.do("POST", timeReportURI, r.operator(), `{"id":"n","kind":"node","synced":"yes"}`), 400, "ActionParameterValueTypeError")
	x := r.do("POST", timeReportURI, r.operator(), report)
	if x.StatusCode != 200 || !strings.Contains(string(x.body), `"Directive"`) {
		t.Fatalf("report: %s\n%s", x.Status, x.body)
	}

	var entry string
	deadline := time.Now().Add(20 * time.Second)
	for entry == "" {
		if time.Now().After(deadline) {
			t.Fatal("no TimePolicyDecision policy.client.abnormal event on the stream")
		}
		rec := checkEvent(t, sse.next(t, 20*time.Second))
		args, _ := rec["MessageArgs"].([]any)
		if rec["MessageId"] == cmcdRegistry+".TimePolicyDecision" && len(args) == 2 && args[0] == "policy.client.abnormal" {
			if !strings.Contains(fmt.Sprint(args[1]), "node:node-7") || rec["OriginOfCondition"].(map[string]any)["@odata.id"] != timeSourceURI {
				t.Fatalf("event %v", rec)
			}
			entry, _ = rec["LogEntry"].(map[string]any)["@odata.id"].(string)
			if entry == "" {
				t.Fatalf("event without LogEntry: %v", rec)
			}
		}
	}
	le := r.get(entry, r.reader())
	if le["Oem"].(map[string]any)["Cmcd"].(map[string]any)["Kind"] != "Time:policy.client.abnormal" || le["Severity"] != "Warning" {
		t.Fatalf("log entry %v", le)
	}
	all := r.get(managerURI+"/LogServices/EventLog/Entries", r.reader())
	if !strings.Contains(fmt.Sprint(all["Members"]), "node:node-7 abnormal") {
		t.Fatalf("EventLog does not hold the decision: %v", all["Members"])
	}
	cl := r.getOEM(timeClientsURI, r.reader())
	found := false
	for _, m := range cl["Members"].([]any) {
		c := m.(map[string]any)
		if c["Key"] == "node:node-7" {
			found = c["Abnormal"] == true && c["Synchronised"] == false && c["Address"] == "127.0.0.1"
		}
	}
	if !found {
		t.Fatalf("client table %v", cl["Members"])
	}
	ts := r.getOEM(timeSourceURI, r.reader())
	if p := ts["Policy"].(map[string]any); p["AbnormalClients"] == nil {
		t.Fatalf("policy %v", p)
	}

	// TimeCommand: ConfigureManager; a bad action is 400.
	expectError(t, r.do("POST", timeCommandURI, r.operator(), `{"Action":"spread"}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("POST", timeCommandURI, r.admin(), `{"Action":"explode"}`), 400, "ActionParameterValueNotInList")
	if x := r.do("POST", timeCommandURI, r.admin(), `{"Action":"spread","Reason":"test"}`); x.StatusCode != 200 {
		t.Fatalf("spread: %s\n%s", x.Status, x.body)
	}
	for {
		rec := checkEvent(t, sse.next(t, 20*time.Second))
		args, _ := rec["MessageArgs"].([]any)
		if rec["MessageId"] == cmcdRegistry+".TimePolicyDecision" && len(args) == 2 && args[0] == "policy.spread" {
			if !strings.Contains(fmt.Sprint(args[1]), "Redfish user admin") {
				t.Fatalf("spread event %v", args)
			}
			break
		}
	}
}

// TestNoTimeSource: without a time source the resources are 404 and NTP
// stays read-only.
func TestNoTimeSource(t *testing.T) {
	r := newRig(t)
	expectError(t, r.do("GET", timeSourceURI, r.reader(), ""), 404, "ResourceNotFound")
	expectError(t, r.do("POST", timeReportURI, r.admin(), `{"id":"n","kind":"node"}`), 404, "ResourceNotFound")
	expectError(t, r.do("PATCH", netProtoURI, r.admin(), `{"NTP":{"NTPServers":["x"]}}`), 400, "PropertyNotWritable")
	if oem := r.get(managerURI, r.reader())["Oem"].(map[string]any)["Cmcd"].(map[string]any); oem["TimeSource"] != nil {
		t.Fatal("TimeSource linked without a time source")
	}
}
