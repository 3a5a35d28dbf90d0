package syncsel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Duration is a time.Duration that reads and writes as "30s", "200ms".
type Duration time.Duration

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"30s\" or \"200ms\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (examples: 200ms, 30s, 5m, 1h)", s)
	}
	*d = Duration(v)
	return nil
}

// Source values: which image's data area a round copies from.
const (
	SourceRunning = "running" // the image the CMC runs from (follows a failover)
	SourcePrimary = "primary" // always primary -> backup; rounds pause while the backup image runs
)

// Config is the sync configuration in force. Its zero value is not valid;
// start from DefaultConfig.
type Config struct {
	Selected          []Category   `json:"selected"`
	Groups            [][]Category `json:"groups"`
	Interval          Duration     `json:"interval"`
	Source            string       `json:"source"`
	ResponseThreshold Duration     `json:"responseThreshold"`
	ProbeInterval     Duration     `json:"probeInterval"`
	ProbeTimeout      Duration     `json:"probeTimeout"`
	CollectInterval   Duration     `json:"collectInterval"`
	AutoSync          bool         `json:"autoSync"`
	Failover          bool         `json:"failover"`
}

// DefaultConfig is the configuration of a new CMC: everything selected, two
// groups (readings and inventory / logs) synced in turn every 30 s.
func DefaultConfig() Config {
	return Config{
		Selected:          slices.Clone(Categories),
		Groups:            [][]Category{{CatPSU, CatFan, CatNode, CatAsset}, {CatSEL, CatFault}},
		Interval:          Duration(30 * time.Second),
		Source:            SourceRunning,
		ResponseThreshold: Duration(3 * time.Second),
		ProbeInterval:     Duration(100 * time.Millisecond),
		ProbeTimeout:      Duration(500 * time.Millisecond),
		CollectInterval:   Duration(2 * time.Second),
		AutoSync:          true,
		Failover:          true,
	}
}

// IsSelected reports whether a category is selected.
func (c Config) IsSelected(cat Category) bool { return slices.Contains(c.Selected, cat) }

// Clone returns a deep copy.
func (c Config) Clone() Config {
	out := c
	out.Selected = slices.Clone(c.Selected)
	out.Groups = make([][]Category, len(c.Groups))
	for i, g := range c.Groups {
		out.Groups[i] = slices.Clone(g)
	}
	return out
}

// OptionError is a refused configuration change.
type OptionError struct {
	Option string // the option's name in the selection model
	Value  string // the offered value, as text
	Reason string
	// Kind tells API layers what went wrong: "unknown", "type" or "value".
	Kind string
}

func (e *OptionError) Error() string {
	if e.Kind == "unknown" {
		return fmt.Sprintf("option %q does not exist: %s", e.Option, e.Reason)
	}
	return fmt.Sprintf("option %q: value %s refused: %s", e.Option, e.Value, e.Reason)
}

type durationLimit struct{ min, max time.Duration }

var durationOptions = map[string]struct {
	limit durationLimit
	field func(*Config) *Duration
	title string
	text  string
}{
	"interval": {durationLimit{100 * time.Millisecond, 24 * time.Hour}, func(c *Config) *Duration { return &c.Interval },
		"Sync interval",
		"Time from the end of one round to the start of the next (S6). Each round syncs one group of the selected " +
			"categories, so with G groups every category is synced every G intervals. Shorter intervals keep the backup " +
			"image closer to the primary at the cost of more flash writes; only records whose fingerprint changed are " +
			"written, so an unchanged chassis costs no writes at any interval. 100ms to 24h."},
	"responseThreshold": {durationLimit{100 * time.Millisecond, 10 * time.Minute}, func(c *Config) *Duration { return &c.ResponseThreshold },
		"Primary response-time threshold",
		"How long the backup waits for the primary image to answer after it turned abnormal during a round (S4). The " +
			"interrupted round is always rolled back; if the primary has still not answered when this time has passed, the " +
			"backup image is started and takes over (when failover is enabled). Too short risks a take-over on a transient " +
			"stall; too long leaves the chassis unmanaged longer. 100ms to 10m."},
	"probeInterval": {durationLimit{10 * time.Millisecond, 10 * time.Second}, func(c *Config) *Duration { return &c.ProbeInterval },
		"Primary probe interval",
		"How often the primary image is probed while a round runs (the real-time monitoring of S4). Must be shorter " +
			"than the response-time threshold. 10ms to 10s."},
	"probeTimeout": {durationLimit{10 * time.Millisecond, 10 * time.Second}, func(c *Config) *Duration { return &c.ProbeTimeout },
		"Primary probe timeout",
		"A probe not answered within this time marks the primary abnormal and interrupts the round. Must not exceed " +
			"the response-time threshold. 10ms to 10s."},
	"collectInterval": {durationLimit{100 * time.Millisecond, time.Hour}, func(c *Config) *Duration { return &c.CollectInterval },
		"Collection interval",
		"How often PSU, fan and node data (and new SEL and fault entries) are read from the hardware into the running " +
			"image's data area. Independent of the sync interval. 100ms to 1h."},
}

var boolOptions = map[string]struct {
	field func(*Config) *bool
	title string
	text  string
}{
	"autoSync": {func(c *Config) *bool { return &c.AutoSync }, "Scheduled rounds",
		"When on, rounds run on the schedule (end of last round + interval). When off, rounds run only when asked " +
			"for (the \"sync now\" action); the backup image then keeps the last synced state."},
	"failover": {func(c *Config) *bool { return &c.Failover }, "Start the backup image",
		"When on, a primary image that stays unresponsive past the response-time threshold during a round makes the " +
			"CMC start the backup image (S4). When off, the round is rolled back and an alarm raised, but the running " +
			"image stays in place (for bench and lab use)."},
}

const groupsText = "How the selected categories are split into groups that are synced in turn, one group per round " +
	"(round-robin, S6), so one round does not have to carry everything. A list of lists of category names; every " +
	"selected category must be in exactly one group. Example: [[\"psu\",\"fan\",\"node\",\"asset\"],[\"sel\",\"fault\"]]: " +
	"readings and inventory in one round, the logs in the next. One group with all categories syncs everything " +
	"changed in every round."

const sourceText = "Which image's data area is the source of a round. \"running\": the image the CMC runs from; after " +
	"the backup image has been started it is the running one and rounds copy backup -> primary, so the stale image " +
	"catches up. \"primary\": always primary -> backup; while the backup image runs, rounds pause (the primary's " +
	"data is stale) until the primary image runs again."

// Option is one entry of the selection model (S2): a category check box or
// a configuration option, with its value and explanation.
type Option struct {
	Name        string   `json:"Name"`
	Title       string   `json:"Title"`
	Kind        string   `json:"Kind"` // category, bool, duration, enum, groups
	Value       any      `json:"Value"`
	Default     any      `json:"Default"`
	Allowed     []string `json:"AllowedValues,omitempty"`
	Min         string   `json:"Min,omitempty"`
	Max         string   `json:"Max,omitempty"`
	Explanation string   `json:"Explanation"`
}

// Model returns the selection model of c: the six categories first, then
// every configuration option.
func (c Config) Model() []Option {
	def := DefaultConfig()
	var out []Option
	for _, cat := range Categories {
		info := cat.Info()
		out = append(out, Option{Name: "category." + string(cat), Title: info.Title, Kind: "category",
			Value: c.IsSelected(cat), Default: def.IsSelected(cat), Allowed: []string{"true", "false"}, Explanation: info.Explanation})
	}
	out = append(out, Option{Name: "groups", Title: "Round-robin groups", Kind: "groups", Value: c.Groups,
		Default: def.Groups, Allowed: categoryNames(), Explanation: groupsText})
	out = append(out, Option{Name: "source", Title: "Source image", Kind: "enum", Value: c.Source, Default: def.Source,
		Allowed: []string{SourceRunning, SourcePrimary}, Explanation: sourceText})
	for _, name := range sortedKeys(durationOptions) {
		o := durationOptions[name]
		cc, dd := c, def
		out = append(out, Option{Name: name, Title: o.title, Kind: "duration", Value: o.field(&cc).String(),
			Default: o.field(&dd).String(), Min: o.limit.min.String(), Max: o.limit.max.String(), Explanation: o.text})
	}
	for _, name := range sortedKeys(boolOptions) {
		o := boolOptions[name]
		cc, dd := c, def
		out = append(out, Option{Name: name, Title: o.title, Kind: "bool", Value: *o.field(&cc), Default: *o.field(&dd),
			Allowed: []string{"true", "false"}, Explanation: o.text})
	}
	return out
}

// OptionNames lists every option name of the model.
func OptionNames() []string {
	var names []string
	for _, o := range DefaultConfig().Model() {
		names = append(names, o.Name)
	}
	return names
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func categoryNames() []string {
	out := make([]string, len(Categories))
	for i, c := range Categories {
		out[i] = string(c)
	}
	return out
}

// Apply returns c changed by patch, a map from option names (as in Model)
// to JSON values, after validating the result as a whole. On error c is
// unchanged and the error is an *OptionError naming the option.
func (c Config) Apply(patch map[string]json.RawMessage) (Config, error) {
	next := c.Clone()
	for _, name := range sortedKeys(patch) {
		raw := patch[name]
		val := strings.TrimSpace(string(raw))
		typeErr := func(want string) error {
			return &OptionError{Option: name, Value: val, Kind: "type", Reason: "want " + want}
		}
		switch {
		case strings.HasPrefix(name, "category."):
			cat := Category(strings.TrimPrefix(name, "category."))
			if !cat.Valid() {
				return c, &OptionError{Option: name, Kind: "unknown", Reason: "categories are " + categoryList()}
			}
			var on bool
			if err := strictUnmarshal(raw, &on); err != nil {
				return c, typeErr("true or false")
			}
			next.Selected = slices.DeleteFunc(next.Selected, func(x Category) bool { return x == cat })
			if on {
				next.Selected = append(next.Selected, cat)
			}
		case name == "groups":
			var groups [][]string
			if err := strictUnmarshal(raw, &groups); err != nil {
				return c, typeErr("a list of lists of category names")
			}
			next.Groups = nil
			for _, g := range groups {
				var cats []Category
				for _, s := range g {
					cat, err := ParseCategory(s)
					if err != nil {
						return c, &OptionError{Option: name, Value: val, Kind: "value", Reason: err.Error()}
					}
					cats = append(cats, cat)
				}
				next.Groups = append(next.Groups, cats)
			}
		case name == "source":
			var s string
			if err := strictUnmarshal(raw, &s); err != nil {
				return c, typeErr("a string")
			}
			next.Source = s
		default:
			if o, ok := durationOptions[name]; ok {
				var d Duration
				if err := strictUnmarshal(raw, &d); err != nil {
					return c, typeErr("a duration string such as \"30s\" or \"200ms\"")
				}
				*o.field(&next) = d
			} else if o, ok := boolOptions[name]; ok {
				var b bool
				if err := strictUnmarshal(raw, &b); err != nil {
					return c, typeErr("true or false")
				}
				*o.field(&next) = b
			} else {
				return c, &OptionError{Option: name, Kind: "unknown", Reason: "options are " + strings.Join(OptionNames(), ", ")}
			}
		}
	}
	next.normalise()
	if err := next.Validate(); err != nil {
		return c, err
	}
	return next, nil
}

func strictUnmarshal(raw json.RawMessage, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// normalise puts the selected categories in canonical order.
func (c *Config) normalise() {
	sel := make([]Category, 0, len(c.Selected))
	for _, cat := range Categories {
		if slices.Contains(c.Selected, cat) {
			sel = append(sel, cat)
		}
	}
	c.Selected = sel
}

// Validate checks the whole configuration; the error names the option.
func (c Config) Validate() error {
	for _, cat := range c.Selected {
		if !cat.Valid() {
			return &OptionError{Option: "category." + string(cat), Kind: "unknown", Reason: "categories are " + categoryList()}
		}
	}
	for _, name := range sortedKeys(durationOptions) {
		o := durationOptions[name]
		cc := c
		d := o.field(&cc).D()
		if d < o.limit.min || d > o.limit.max {
			return &OptionError{Option: name, Value: fmt.Sprintf("%q", d), Kind: "value",
				Reason: fmt.Sprintf("must be between %s and %s", o.limit.min, o.limit.max)}
		}
	}
	if c.ProbeInterval >= c.ResponseThreshold {
		return &OptionError{Option: "probeInterval", Value: fmt.Sprintf("%q", c.ProbeInterval), Kind: "value",
			Reason: fmt.Sprintf("must be shorter than responseThreshold (%s)", c.ResponseThreshold)}
	}
	if c.ProbeTimeout > c.ResponseThreshold {
		return &OptionError{Option: "probeTimeout", Value: fmt.Sprintf("%q", c.ProbeTimeout), Kind: "value",
			Reason: fmt.Sprintf("must not exceed responseThreshold (%s)", c.ResponseThreshold)}
	}
	if c.Source != SourceRunning && c.Source != SourcePrimary {
		return &OptionError{Option: "source", Value: fmt.Sprintf("%q", c.Source), Kind: "value",
			Reason: "allowed values are \"running\" and \"primary\""}
	}
	if len(c.Groups) == 0 || len(c.Groups) > len(Categories) {
		return &OptionError{Option: "groups", Value: groupsString(c.Groups), Kind: "value",
			Reason: fmt.Sprintf("want 1 to %d groups", len(Categories))}
	}
	seen := map[Category]int{}
	for i, g := range c.Groups {
		if len(g) == 0 {
			return &OptionError{Option: "groups", Value: groupsString(c.Groups), Kind: "value",
				Reason: fmt.Sprintf("group %d is empty", i+1)}
		}
		for _, cat := range g {
			if !cat.Valid() {
				return &OptionError{Option: "groups", Value: groupsString(c.Groups), Kind: "value",
					Reason: fmt.Sprintf("unknown category %q", cat)}
			}
			if j, dup := seen[cat]; dup {
				return &OptionError{Option: "groups", Value: groupsString(c.Groups), Kind: "value",
					Reason: fmt.Sprintf("category %s is in group %d and group %d; a category belongs to one group", cat, j+1, i+1)}
			}
			seen[cat] = i
		}
	}
	for _, cat := range c.Selected {
		if _, ok := seen[cat]; !ok {
			return &OptionError{Option: "groups", Value: groupsString(c.Groups), Kind: "value",
				Reason: fmt.Sprintf("category %s is selected but in no group, so it would never be synced", cat)}
		}
	}
	return nil
}

func groupsString(g [][]Category) string {
	b, _ := json.Marshal(g)
	return string(b)
}

// GroupCategories returns the selected categories of group i.
func (c Config) GroupCategories(i int) []Category {
	if len(c.Groups) == 0 {
		return nil
	}
	var out []Category
	for _, cat := range c.Groups[i%len(c.Groups)] {
		if c.IsSelected(cat) {
			out = append(out, cat)
		}
	}
	return out
}

// Diff names the options whose values differ between c and o.
func (c Config) Diff(o Config) []string {
	var out []string
	a, b := c.Model(), o.Model()
	for i := range a {
		x, _ := json.Marshal(a[i].Value)
		y, _ := json.Marshal(b[i].Value)
		if !bytes.Equal(x, y) {
			out = append(out, a[i].Name)
		}
	}
	return out
}
