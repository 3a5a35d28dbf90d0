package syncsel

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func patch(kv ...string) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

// S2: every category and option is in the model, with an explanation.
func TestModelExplainsEveryOption(t *testing.T) {
	m := DefaultConfig().Model()
	seen := map[string]bool{}
	for _, o := range m {
		if len(o.Explanation) < 60 {
			t.Errorf("option %s: explanation too thin: %q", o.Name, o.Explanation)
		}
		if o.Title == "" || o.Kind == "" {
			t.Errorf("option %s: missing title or kind", o.Name)
		}
		seen[o.Name] = true
	}
	for _, c := range Categories {
		if !seen["category."+string(c)] {
			t.Errorf("category %s missing from the model", c)
		}
	}
	for _, n := range []string{"interval", "groups", "source", "responseThreshold", "probeInterval", "probeTimeout", "collectInterval", "autoSync", "failover"} {
		if !seen[n] {
			t.Errorf("option %s missing from the model", n)
		}
	}
}

func TestApplyValidChange(t *testing.T) {
	c := DefaultConfig()
	next, err := c.Apply(patch("category.asset", "false", "interval", `"100ms"`, "groups", `[["psu","fan","node"],["sel","fault"]]`))
	if err != nil {
		t.Fatal(err)
	}
	if next.IsSelected(CatAsset) || next.Interval.D() != 100*time.Millisecond || len(next.Groups) != 2 {
		t.Fatalf("change not applied: %+v", next)
	}
	if !c.IsSelected(CatAsset) {
		t.Fatal("Apply changed the receiver")
	}
	if d := c.Diff(next); strings.Join(d, ",") != "category.asset,groups,interval" {
		t.Fatalf("diff = %v", d)
	}
}

func TestApplyRefusesBadInput(t *testing.T) {
	cases := []struct {
		name   string
		patch  map[string]json.RawMessage
		option string
		kind   string
		reason string
	}{
		{"unknown option", patch("speed", `"fast"`), "speed", "unknown", "options are"},
		{"unknown category", patch("category.gpu", "true"), "category.gpu", "unknown", "categories are"},
		{"wrong type", patch("category.sel", `"yes"`), "category.sel", "type", "true or false"},
		{"not a duration", patch("interval", `"soon"`), "interval", "type", "duration"},
		{"number for duration", patch("interval", `30`), "interval", "type", "duration"},
		{"interval too short", patch("interval", `"50ms"`), "interval", "value", "between 100ms and 24h0m0s"},
		{"interval too long", patch("interval", `"25h"`), "interval", "value", "between"},
		{"probe >= threshold", patch("probeInterval", `"5s"`), "probeInterval", "value", "shorter than responseThreshold"},
		{"bad source", patch("source", `"backup"`), "source", "value", "running"},
		{"duplicate in groups", patch("groups", `[["psu","sel"],["sel"]]`), "groups", "value", "category sel is in group 1 and group 2"},
		{"selected not grouped", patch("groups", `[["psu"]]`), "groups", "value", "selected but in no group"},
		{"empty group", patch("groups", `[["psu","fan","node","asset","sel","fault"],[]]`), "groups", "value", "group 2 is empty"},
		{"unknown in groups", patch("groups", `[["psu","gpu"]]`), "groups", "value", "unknown category"},
		{"groups wrong type", patch("groups", `"all"`), "groups", "type", "list of lists"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			next, err := c.Apply(tc.patch)
			var oe *OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("want *OptionError, got %v", err)
			}
			if oe.Option != tc.option || oe.Kind != tc.kind || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("got option=%q kind=%q err=%q; want option=%q kind=%q reason~%q", oe.Option, oe.Kind, err, tc.option, tc.kind, tc.reason)
			}
			if len(c.Diff(next)) != 0 {
				t.Fatalf("refused change altered the configuration: %v", c.Diff(next))
			}
		})
	}
}

func TestGroupCategoriesSkipsUnselected(t *testing.T) {
	c, err := DefaultConfig().Apply(patch("category.sel", "false"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.GroupCategories(1); len(got) != 1 || got[0] != CatFault {
		t.Fatalf("group 2 = %v, want [fault]", got)
	}
	if got := c.GroupCategories(2); len(got) != 4 {
		t.Fatalf("group index wraps: got %v", got)
	}
}

func TestFingerprintSumIsOrderFree(t *testing.T) {
	a, b, c := recordFP(CatSEL, []byte("a"), []byte("1")), recordFP(CatSEL, []byte("b"), []byte("2")), recordFP(CatSEL, []byte("c"), []byte("3"))
	x := FP{}.add(a).add(b).add(c)
	y := FP{}.add(c).add(a).add(b)
	if x != y {
		t.Fatal("sum depends on order")
	}
	if x.sub(b).sub(a).sub(c) != (FP{}) {
		t.Fatal("sub does not undo add")
	}
	if recordFP(CatSEL, []byte("a"), []byte("1")) == recordFP(CatFault, []byte("a"), []byte("1")) {
		t.Fatal("category not part of the fingerprint")
	}
}
