package rfschema

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const prefix = "http://redfish.dmtf.org/schemas/v1/"

// ErrNoSchemas means the schema folder was not found.
var ErrNoSchemas = errors.New("rfschema: DMTF JSON schema folder not found (set CMCD_REDFISH_SCHEMAS)")

var (
	dirOnce sync.Once
	dir     string
)

// Dir returns the folder holding the DMTF JSON schemas.
func Dir() (string, error) {
	dirOnce.Do(func() {
		if d := os.Getenv("CMCD_REDFISH_SCHEMAS"); d != "" {
			dir = d
			return
		}
		wd, err := os.Getwd()
		if err == nil {
			for d := wd; ; d = filepath.Dir(d) {
				c := filepath.Join(d, "shared", "redfish", "json-schema")
				if st, err := os.Stat(c); err == nil && st.IsDir() {
					dir = c
					return
				}
				if filepath.Dir(d) == d {
					break
				}
			}
		}
		if st, err := os.Stat("/work/shared/redfish/json-schema"); err == nil && st.IsDir() {
			dir = "/work/shared/redfish/json-schema"
		}
	})
	if dir == "" {
		return "", ErrNoSchemas
	}
	return dir, nil
}

// Validator compiles schemas on demand and caches them. Safe for
// concurrent use.
type Validator struct {
	mu       sync.Mutex
	dir      string
	compiler *jsonschema.Compiler
	cache    map[string]*jsonschema.Schema
}

// New returns a validator over Dir().
func New() (*Validator, error) {
	d, err := Dir()
	if err != nil {
		return nil, err
	}
	v := &Validator{dir: d, cache: map[string]*jsonschema.Schema{}}
	v.compiler = jsonschema.NewCompiler()
	v.compiler.UseLoader(loader{dir: d})
	return v, nil
}

// URLForType maps an @odata.type such as "#Chassis.v1_28_0.Chassis" to
// its schema URL.
func URLForType(typ string) (string, error) {
	typ = strings.TrimPrefix(typ, "#")
	i := strings.LastIndex(typ, ".")
	if i < 0 {
		return "", fmt.Errorf("bad @odata.type %q", typ)
	}
	return prefix + typ[:i] + ".json#/definitions/" + typ[i+1:], nil
}

// ErrorSchema is the URL of the schema of Redfish error bodies.
const ErrorSchema = prefix + "redfish-error.v1_0_2.json"

// Validate checks body against the schema its @odata.type names. A body
// without @odata.type (/redfish, the OData service document) passes.
func (v *Validator) Validate(body []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	m, _ := inst.(map[string]any)
	typ, _ := m["@odata.type"].(string)
	if typ == "" {
		return nil
	}
	url, err := URLForType(typ)
	if err != nil {
		return err
	}
	return v.validate(inst, url)
}

// ValidateAgainst checks body against the schema at url.
func (v *Validator) ValidateAgainst(body []byte, url string) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	return v.validate(inst, url)
}

func (v *Validator) validate(inst any, url string) error {
	s, err := v.schema(url)
	if err != nil {
		return err
	}
	if err := s.Validate(inst); err != nil {
		return fmt.Errorf("does not validate against %s: %v", url, err)
	}
	return nil
}

func (v *Validator) schema(url string) (*jsonschema.Schema, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if s, ok := v.cache[url]; ok {
		return s, nil
	}
	s, err := v.compiler.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("compile schema %s: %w", url, err)
	}
	v.cache[url] = s
	return s, nil
}

// loader maps http://redfish.dmtf.org/schemas/v1/X to dir/X.
type loader struct{ dir string }

func (l loader) Load(url string) (any, error) {
	name, ok := strings.CutPrefix(url, prefix)
	if !ok {
		return nil, fmt.Errorf("schema %s: not a Redfish schema", url)
	}
	f, err := os.Open(filepath.Join(l.dir, name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		return nil, err
	}
	prune(doc)
	// A navigation property to a resource (the entity definition of an
	// unversioned file: anyOf idRef and every version) is only ever a
	// link here, as the service expands nothing: keep the idRef branch,
	// which spares compiling the whole Redfish schema graph.
	base := strings.TrimSuffix(name, ".json")
	// Log entries are inlined in their collections, and Redundancy
	// (autoExpand) in its resource, so these keep all.
	if !strings.Contains(base, ".") && !strings.HasSuffix(base, "Collection") && base != "LogEntry" && base != "Redundancy" {
		if defs, ok := doc.(map[string]any)["definitions"].(map[string]any); ok {
			if d, ok := defs[base].(map[string]any); ok {
				if alts, ok := d["anyOf"].([]any); ok && len(alts) > 0 {
					if first, ok := alts[0].(map[string]any); ok &&
						strings.HasSuffix(fmt.Sprint(first["$ref"]), "odata-v4.json#/definitions/idRef") {
						d["anyOf"] = []any{first}
					}
				}
			}
		}
	}
	return doc, nil
}

// prune drops references to Swordfish schemas, which the shared folder
// does not hold and Redfish payloads here never use.
func prune(v any) {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok && strings.Contains(ref, "/schemas/swordfish/") {
			delete(v, "$ref")
		}
		for _, x := range v {
			prune(x)
		}
	case []any:
		for _, x := range v {
			prune(x)
		}
	}
}
