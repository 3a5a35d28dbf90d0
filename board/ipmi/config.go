package ipmi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"cmcd/board"
)

// Cipher suites this package accepts. Suite 17 (RAKP-HMAC-SHA256,
// HMAC-SHA256-128, AES-CBC-128) is the default; suite 3 (RAKP-HMAC-SHA1,
// HMAC-SHA1-96, AES-CBC-128) is allowed for BMCs that lack 17. Every other
// suite is refused: 0, 1 and 2 carry no integrity or no confidentiality,
// the rest use MD5 or RC4.
const (
	CipherSuite3  = 3
	CipherSuite17 = 17
)

// Defaults of a node's configuration.
const (
	DefaultPort        = 623
	DefaultCipherSuite = CipherSuite17
	DefaultTimeout     = 2 * time.Second
)

// Secret is a password. Every way of printing it (fmt verbs, slog,
// encoding/json) shows a redaction marker instead of the value; only
// Reveal returns the real text. Decoding from JSON works as for a string.
type Secret string

const redacted = "[REDACTED]"

// Reveal returns the secret's real text. Call it only where the password is
// handed to the IPMI session layer.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer with a redaction marker.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString implements fmt.GoStringer with a redaction marker.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Format implements fmt.Formatter so that no verb (%s, %v, %q, %x, ...)
// prints the secret.
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		_, _ = io.WriteString(f, strconv.Quote(s.String()))
	default:
		_, _ = io.WriteString(f, s.String())
	}
}

// LogValue implements slog.LogValuer with a redaction marker.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON writes the redaction marker, never the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Duration is a time.Duration that reads from JSON as a Go duration string
// ("2s", "500ms") or a number of seconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case string:
		p, err := time.ParseDuration(x)
		if err != nil {
			return fmt.Errorf("bad duration %q: %w", x, err)
		}
		*d = Duration(p)
	case float64:
		*d = Duration(x * float64(time.Second))
	case nil:
		*d = 0
	default:
		return fmt.Errorf("bad duration %s: want a string such as \"2s\" or a number of seconds", b)
	}
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// NodeConfig says how to reach one node's BMC.
type NodeConfig struct {
	// Slot is the node's 1-based slot in the chassis.
	Slot int `json:"slot"`
	// Name is the node's display name; "node<slot>" when empty.
	Name string `json:"name,omitempty"`
	// Host is the BMC's address (name or IP).
	Host string `json:"host"`
	// Port is the BMC's RMCP+ UDP port; 623 when zero.
	Port     int    `json:"port,omitempty"`
	Username string `json:"username"`
	Password Secret `json:"password"`
	// CipherSuite is the RMCP+ cipher suite: 17 (default) or 3.
	CipherSuite int `json:"cipherSuite,omitempty"`
	// Timeout bounds one IPMI request to this node, retries included;
	// 2s when zero.
	Timeout Duration `json:"timeout,omitempty"`
}

// UnmarshalJSON decodes a node entry. An explicit "cipherSuite": 0 is
// refused (suite 0 has no authentication at all); leaving the field out
// selects the default, 17.
func (c *NodeConfig) UnmarshalJSON(b []byte) error {
	type plain NodeConfig
	var raw struct {
		plain
		CipherSuite *int `json:"cipherSuite,omitempty"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a misspelt key must not silently fall back to a default
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	*c = NodeConfig(raw.plain)
	if raw.CipherSuite != nil {
		if *raw.CipherSuite == 0 {
			return fmt.Errorf("node slot %d: %w: suite 0 has no authentication, integrity or encryption (use 17, or 3 for BMCs without 17)",
				c.Slot, ErrBadCipherSuite)
		}
		c.CipherSuite = *raw.CipherSuite
	}
	return nil
}

// withDefaults returns c with the documented defaults filled in.
func (c NodeConfig) withDefaults() NodeConfig {
	if c.Name == "" {
		c.Name = fmt.Sprintf("node%d", c.Slot)
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.CipherSuite == 0 {
		c.CipherSuite = DefaultCipherSuite
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(DefaultTimeout)
	}
	return c
}

// Addr is the BMC's host:port.
func (c NodeConfig) Addr() string {
	port := c.Port
	if port == 0 {
		port = DefaultPort
	}
	if strings.Contains(c.Host, ":") && !strings.HasPrefix(c.Host, "[") {
		return fmt.Sprintf("[%s]:%d", c.Host, port)
	}
	return fmt.Sprintf("%s:%d", c.Host, port)
}

// String describes the node without its password.
func (c NodeConfig) String() string {
	return fmt.Sprintf("slot %d (%s) %s@%s cipher suite %d timeout %s password %s",
		c.Slot, c.Name, c.Username, c.Addr(), c.CipherSuite, time.Duration(c.Timeout), c.Password)
}

// LogValue implements slog.LogValuer without the password.
func (c NodeConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("slot", c.Slot),
		slog.String("name", c.Name),
		slog.String("bmc", c.Addr()),
		slog.String("user", c.Username),
		slog.Int("cipherSuite", c.CipherSuite),
		slog.Duration("timeout", time.Duration(c.Timeout)),
	)
}

// ErrBadCipherSuite is wrapped by Validate for a cipher suite other than 3 or 17.
var ErrBadCipherSuite = errors.New("cipher suite not allowed")

// Validate checks one node's configuration; the zero values of Port,
// CipherSuite and Timeout stand for their defaults.
func (c NodeConfig) Validate() error {
	if c.Slot < 1 || c.Slot > board.MaxNodes {
		return fmt.Errorf("node slot %d: slots are 1..%d", c.Slot, board.MaxNodes)
	}
	if strings.TrimSpace(c.Host) == "" {
		return fmt.Errorf("node slot %d: no BMC host", c.Slot)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("node slot %d: port %d out of range", c.Slot, c.Port)
	}
	if c.Username == "" {
		return fmt.Errorf("node slot %d: no username: anonymous and null users are not allowed", c.Slot)
	}
	if len(c.Username) > 16 {
		return fmt.Errorf("node slot %d: username longer than 16 bytes", c.Slot)
	}
	if c.Password == "" {
		return fmt.Errorf("node slot %d: empty password: set the BMC user's password in the credentials file", c.Slot)
	}
	if len(c.Password) > 20 {
		return fmt.Errorf("node slot %d: password longer than 20 bytes (the RMCP+ limit)", c.Slot)
	}
	if err := CheckCipherSuite(c.CipherSuite); err != nil {
		return fmt.Errorf("node slot %d: %w", c.Slot, err)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("node slot %d: negative timeout", c.Slot)
	}
	return nil
}

// CheckCipherSuite reports whether id may be used; 0 means the default (17).
func CheckCipherSuite(id int) error {
	switch id {
	case 0:
		// Zero in a NodeConfig means "the default"; withDefaults turns it
		// into 17 before a session is opened, so suite 0 itself is never used.
		return nil
	case CipherSuite17, CipherSuite3:
		return nil
	case 1, 2:
		return fmt.Errorf("%w: suite %d has no encryption (use 17, or 3 for BMCs without 17)", ErrBadCipherSuite, id)
	default:
		if id < 0 || id > 255 {
			return fmt.Errorf("%w: suite %d does not exist (use 17, or 3)", ErrBadCipherSuite, id)
		}
		return fmt.Errorf("%w: suite %d is not one of the suites cmcd speaks (17, or 3)", ErrBadCipherSuite, id)
	}
}

// Config is the node collector's configuration: one entry per node.
type Config struct {
	Nodes []NodeConfig `json:"nodes"`
}

// Validate checks every node and that slots are unique.
func (c Config) Validate() error {
	seen := map[int]bool{}
	for _, n := range c.Nodes {
		if err := n.Validate(); err != nil {
			return err
		}
		if seen[n.Slot] {
			return fmt.Errorf("node slot %d configured twice", n.Slot)
		}
		seen[n.Slot] = true
	}
	return nil
}

// sorted returns the nodes ordered by slot, defaults filled in.
func (c Config) sorted() []NodeConfig {
	out := make([]NodeConfig, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		out = append(out, n.withDefaults())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slot < out[j].Slot })
	return out
}

// ErrInsecureFile is wrapped by LoadConfig when the credentials file can be
// read by group or others.
var ErrInsecureFile = errors.New("credentials file readable by group or others")

// LoadConfig reads the node credentials file: JSON of the form
//
//	{"nodes": [{"slot": 1, "host": "10.0.0.11", "username": "admin",
//	            "password": "...", "cipherSuite": 17, "timeout": "2s"}]}
//
// The file holds BMC passwords, so it must be a regular file with mode 0600
// (or stricter); a file that group or others may read, write or execute is
// refused without being read.
func LoadConfig(path string) (Config, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Config{}, fmt.Errorf("node credentials: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Config{}, fmt.Errorf("node credentials %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Config{}, fmt.Errorf("node credentials %s has mode %04o: %w; it holds BMC passwords, run: chmod 600 %s",
			path, perm, ErrInsecureFile, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("node credentials: %w", err)
	}
	defer f.Close()
	// Check the opened file too: the path may have been swapped after Stat.
	if fi2, err := f.Stat(); err != nil || !os.SameFile(fi, fi2) || fi2.Mode().Perm()&0o077 != 0 {
		return Config{}, fmt.Errorf("node credentials %s changed while being opened; check its mode (0600) and retry", path)
	}
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("node credentials %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("node credentials %s: %w", path, err)
	}
	return c, nil
}
