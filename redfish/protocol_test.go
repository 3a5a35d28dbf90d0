package redfish

import (
	"strings"
	"testing"
	"time"
)

func TestETags(t *testing.T) {
	r := newRig(t)
	a := r.admin()
	x := r.do("GET", "/redfish/v1/Managers/CMC", a, "")
	tag := x.Header.Get("ETag")
	if x.StatusCode != 200 || tag == "" {
		t.Fatalf("GET: %s etag %q", x.Status, tag)
	}
	for _, p := range []string{"/redfish/v1/", "/redfish/v1/$metadata", "/redfish", "/redfish/v1/Chassis/Enclosure/Power"} {
		x := r.do("GET", p, a, "")
		et := x.Header.Get("ETag")
		if et == "" {
			t.Fatalf("GET %s: no ETag", p)
		}
		if y := r.do("GET", p, a, "", "If-None-Match", et); y.StatusCode != 304 || len(y.body) != 0 {
			t.Errorf("GET %s If-None-Match: %s", p, y.Status)
		}
		if y := r.do("GET", p, a, "", "If-None-Match", `"other"`); y.StatusCode != 200 {
			t.Errorf("GET %s other If-None-Match: %s", p, y.Status)
		}
	}
	body := `{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":"50s"}}}}}`
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC", a, body, "If-Match", `"stale"`), 412, "PreconditionFailed")
	if r.eng.Config().Interval.String() == "50s" {
		t.Fatal("412 PATCH changed the configuration")
	}
	cur := r.do("GET", "/redfish/v1/Managers/CMC", a, "")
	// The Manager's clock and sync state move on; its ETag covers the
	// writable state, so the If-Match taken above still holds.
	r.advance(90 * time.Second)
	if again := r.do("GET", "/redfish/v1/Managers/CMC", a, ""); again.Header.Get("ETag") != cur.Header.Get("ETag") {
		t.Fatalf("the Manager's ETag changed with its clock: %s -> %s", cur.Header.Get("ETag"), again.Header.Get("ETag"))
	} else if string(again.body) == string(cur.body) {
		t.Fatal("the Manager's body did not change when its clock moved: the test proves nothing")
	}
	if y := r.do("PATCH", "/redfish/v1/Managers/CMC", a, body, "If-Match", cur.Header.Get("ETag")); y.StatusCode != 200 {
		t.Fatalf("PATCH with current If-Match: %s %s", y.Status, y.body)
	}
	if r.eng.Config().Interval.String() != "50s" {
		t.Fatal("PATCH did not change the interval")
	}
	// The representation changed, so the old tag no longer matches.
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC", a, body, "If-Match", cur.Header.Get("ETag")), 412, "PreconditionFailed")
	// DELETE with If-Match.
	tok, loc := r.login("operator", operatorPW)
	expectError(t, r.do("DELETE", loc, auth{token: tok}, "", "If-Match", `"nope"`), 412, "PreconditionFailed")
	if y := r.do("DELETE", loc, auth{token: tok}, "", "If-Match", "*"); y.StatusCode != 204 {
		t.Fatalf("DELETE If-Match *: %s", y.Status)
	}
}

func TestMethodsAndAllow(t *testing.T) {
	r := newRig(t)
	a := r.admin()
	for p, allow := range map[string]string{
		"/redfish/v1/Chassis":           "GET, HEAD",
		"/redfish/v1/Managers/CMC":      "GET, HEAD, PATCH",
		sessionsURI:                     "GET, HEAD, POST",
		"/redfish/v1/":                  "GET, HEAD",
		"/redfish/v1/Chassis/Enclosure": "GET, HEAD",
		"/redfish/v1/Managers/CMC/Actions/Oem/Cmcd.SyncNow": "POST",
	} {
		x := r.do("DELETE", p, a, "")
		expectError(t, x, 405, "OperationNotAllowed")
		if got := x.Header.Get("Allow"); got != allow {
			t.Errorf("DELETE %s: Allow %q, want %q", p, got, allow)
		}
		if p != "/redfish/v1/Managers/CMC/Actions/Oem/Cmcd.SyncNow" {
			if y := r.do("GET", p, a, ""); y.Header.Get("Allow") != allow {
				t.Errorf("GET %s: Allow %q, want %q", p, y.Header.Get("Allow"), allow)
			}
		}
	}
	expectError(t, r.do("PUT", "/redfish/v1/Chassis/Enclosure", a, `{}`), 405, "OperationNotAllowed")
	expectError(t, r.do("POST", "/redfish/v1/Chassis", a, `{}`), 405, "OperationNotAllowed")
	expectError(t, r.do("GET", "/redfish/v1/Chassis", a, "", "OData-Version", "4.01"), 412, "HeaderInvalid")
	if x := r.do("HEAD", "/redfish/v1/Chassis", a, ""); x.StatusCode != 200 || len(x.body) != 0 || x.Header.Get("ETag") == "" {
		t.Errorf("HEAD: %s %d bytes", x.Status, len(x.body))
	}
}

func TestPatchValidation(t *testing.T) {
	r := newRig(t)
	a := r.admin()
	before := r.eng.Config()
	m := "/redfish/v1/Managers/CMC"
	for _, c := range []struct {
		body   string
		status int
		id     string
	}{
		{`{"Oem":`, 400, "MalformedJSON"},
		{`[1,2]`, 400, "MalformedJSON"},
		{`{"a":1} {"b":2}`, 400, "MalformedJSON"},
		{`{"Bogus":1}`, 400, "PropertyUnknown"},
		{`{"ManagerType":"BMC"}`, 400, "PropertyNotWritable"},
		{`{"Oem":{"Vendor":{}}}`, 400, "PropertyUnknown"},
		{`{"Oem":{"Cmcd":{"Sync":{"State":{}}}}}`, 400, "PropertyUnknown"},
		{`{"Oem":{"Cmcd":{"Sync":{"Configuration":{"nosuch":true}}}}}`, 400, "PropertyUnknown"},
		{`{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":5}}}}}`, 400, "PropertyValueTypeError"},
		{`{"Oem":{"Cmcd":{"Sync":{"Configuration":{"autoSync":"yes"}}}}}`, 400, "PropertyValueTypeError"},
		{`{"Oem":{"Cmcd":{"Sync":{"Configuration":{"source":"nowhere"}}}}}`, 400, "PropertyValueNotInList"},
		{`{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":"1ms"}}}}}`, 400, "PropertyValueIncorrect"},
		{`{"Oem":{"Cmcd":{"Sync":"x"}}}`, 400, "PropertyValueTypeError"},
		{`{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":"40s","source":"nowhere"}}}}}`, 400, "PropertyValueNotInList"},
	} {
		x := r.do("PATCH", m, a, c.body)
		expectError(t, x, c.status, c.id)
		if c.id != "MalformedJSON" && !strings.Contains(string(x.body), "RelatedProperties") {
			t.Errorf("%s: no RelatedProperties: %s", c.body, x.body)
		}
	}
	if d := before.Diff(r.eng.Config()); len(d) != 0 {
		t.Fatalf("refused PATCHes changed %v", d)
	}
	// The error names the option.
	x := r.do("PATCH", m, a, `{"Oem":{"Cmcd":{"Sync":{"Configuration":{"source":"nowhere"}}}}}`)
	if !strings.Contains(string(x.body), "Oem/Cmcd/Sync/Configuration/source") {
		t.Errorf("error does not name the option: %s", x.body)
	}
}

func TestBodyLimitAndQueries(t *testing.T) {
	r := newRig(t)
	a := r.admin()
	big := `{"Oem":{"Cmcd":{"Sync":{"Configuration":{"x":"` + strings.Repeat("a", MaxBody) + `"}}}}}`
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC", a, big), 413, "PayloadTooLarge")
	expectError(t, r.do("POST", sessionsURI, auth{}, big), 413, "PayloadTooLarge")
	for _, q := range []string{"$expand=*", "$select=Name", "$filter=Name%20eq%20'x'", "$top=1"} {
		expectError(t, r.do("GET", "/redfish/v1/Chassis?"+q, a, ""), 501, "QueryNotSupported")
	}
	// Parameters not starting with $ are ignored (DSP0266).
	r.get("/redfish/v1/Chassis?only", a)
	pf := r.get("/redfish/v1/", a)["ProtocolFeaturesSupported"].(map[string]any)
	if pf["SelectQuery"] != false || pf["ExpandQuery"].(map[string]any)["ExpandAll"] != false {
		t.Errorf("ProtocolFeaturesSupported: %v", pf)
	}
}

func TestSyncAPI(t *testing.T) {
	r := newRig(t)
	a := r.admin()
	m := r.get("/redfish/v1/Managers/CMC", a)
	sync := m["Oem"].(map[string]any)["Cmcd"].(map[string]any)["Sync"].(map[string]any)
	for _, k := range []string{"SelectionModel", "Configuration", "State", "RoundHistory"} {
		if sync[k] == nil {
			t.Errorf("Oem.Cmcd.Sync lacks %s", k)
		}
	}
	if len(sync["SelectionModel"].([]any)) < 6 {
		t.Errorf("selection model: %v", sync["SelectionModel"])
	}
	x := r.do("POST", "/redfish/v1/Managers/CMC/Actions/Oem/Cmcd.SyncNow", a, `{}`)
	if x.StatusCode != 200 {
		t.Fatalf("SyncNow: %s %s", x.Status, x.body)
	}
	expectError(t, r.do("POST", "/redfish/v1/Managers/CMC/Actions/Oem/Cmcd.SyncNow", a, `{"Force":true}`), 400, "ActionParameterUnknown")
	m = r.get("/redfish/v1/Managers/CMC", a)
	hist := m["Oem"].(map[string]any)["Cmcd"].(map[string]any)["Sync"].(map[string]any)["RoundHistory"].([]any)
	if len(hist) == 0 {
		t.Errorf("no round in history after SyncNow: %s", x.body)
	}
	ev := r.get("/redfish/v1/Managers/CMC/LogServices/EventLog/Entries", a)
	if ev["Members@odata.count"].(float64) == 0 {
		t.Error("no CMC event after a round")
	}
	expectError(t, r.do("POST", "/redfish/v1/Managers/CMC/LogServices/EventLog/Actions/LogService.ClearLog", r.reader(), `{}`), 403, "InsufficientPrivilege")
	if x := r.do("POST", "/redfish/v1/Managers/CMC/LogServices/EventLog/Actions/LogService.ClearLog", a, `{}`); x.StatusCode != 200 {
		t.Fatalf("ClearLog: %s %s", x.Status, x.body)
	}
}
