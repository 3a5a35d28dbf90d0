package ipmi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodConfig = `{"nodes": [
  {"slot": 2, "host": "127.0.0.1", "port": 6230, "username": "admin", "password": "pa55word", "timeout": "1500ms"},
  {"slot": 1, "name": "left", "host": "::1", "username": "op", "password": "x", "cipherSuite": 3}
]}`

func writeConfig(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nodes.json")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfig(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, goodConfig, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	nodes := c.sorted()
	if len(nodes) != 2 || nodes[0].Slot != 1 || nodes[1].Slot != 2 {
		t.Fatalf("nodes %+v", nodes)
	}
	if n := nodes[1]; n.CipherSuite != 17 || n.Port != 6230 || time.Duration(n.Timeout) != 1500*time.Millisecond ||
		n.Password.Reveal() != "pa55word" || n.Name != "node2" {
		t.Errorf("node 2 with defaults: %+v", n)
	}
	if n := nodes[0]; n.CipherSuite != 3 || n.Port != 623 || n.Addr() != "[::1]:623" || time.Duration(n.Timeout) != DefaultTimeout {
		t.Errorf("node 1 with defaults: %+v", n)
	}
	if _, err := LoadConfig(writeConfig(t, goodConfig, 0o400)); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestLoadConfigRefusesReadableFile(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o601} {
		p := writeConfig(t, goodConfig, mode)
		_, err := LoadConfig(p)
		if !errors.Is(err, ErrInsecureFile) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: %v", mode, err)
		}
		if err != nil && strings.Contains(err.Error(), "pa55word") {
			t.Errorf("mode %04o: error shows the password", mode)
		}
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := LoadConfig(t.TempDir()); err == nil {
		t.Error("directory accepted")
	}
}

func TestConfigCipherSuites(t *testing.T) {
	for _, cs := range []int{0, 1, 2, 4, 8, 12, 16, 255, 300} {
		body := fmt.Sprintf(`{"nodes":[{"slot":1,"host":"h","username":"u","password":"p","cipherSuite":%d}]}`, cs)
		_, err := LoadConfig(writeConfig(t, body, 0o600))
		if !errors.Is(err, ErrBadCipherSuite) {
			t.Errorf("cipher suite %d: %v", cs, err)
		}
	}
	for _, cs := range []int{1, 2} {
		err := NodeConfig{Slot: 1, Host: "h", Username: "u", Password: "p", CipherSuite: cs}.Validate()
		if !errors.Is(err, ErrBadCipherSuite) || !strings.Contains(err.Error(), "no encryption") {
			t.Errorf("suite %d: %v", cs, err)
		}
	}
	for _, cs := range []int{3, 17} {
		if err := (NodeConfig{Slot: 1, Host: "h", Username: "u", Password: "p", CipherSuite: cs}).Validate(); err != nil {
			t.Errorf("suite %d refused: %v", cs, err)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	ok := NodeConfig{Slot: 1, Host: "h", Username: "u", Password: "p"}
	bad := map[string]func(*NodeConfig){
		"slot 0":        func(c *NodeConfig) { c.Slot = 0 },
		"slot 17":       func(c *NodeConfig) { c.Slot = 17 },
		"no host":       func(c *NodeConfig) { c.Host = " " },
		"no user":       func(c *NodeConfig) { c.Username = "" },
		"long user":     func(c *NodeConfig) { c.Username = strings.Repeat("u", 17) },
		"no password":   func(c *NodeConfig) { c.Password = "" },
		"long password": func(c *NodeConfig) { c.Password = Secret(strings.Repeat("p", 21)) },
		"port":          func(c *NodeConfig) { c.Port = 70000 },
		"timeout":       func(c *NodeConfig) { c.Timeout = -1 },
	}
	for name, mutate := range bad {
		c := ok
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if err := (Config{Nodes: []NodeConfig{ok, ok}}).Validate(); err == nil {
		t.Error("duplicate slot accepted")
	}
	for _, body := range []string{
		`{"nodes":[{"slot":1,"host":"h","username":"u","password":"p","pasword":"typo"}]}`,
		`{"nodes":[{"slot":1,"host":"h","username":"u","password":"p"}],"extra":1}`,
		`{"nodes":[{"slot":1,"host":"h","username":"u","password":"p","timeout":"soon"}]}`,
	} {
		if _, err := LoadConfig(writeConfig(t, body, 0o600)); err == nil {
			t.Errorf("accepted %s", body)
		}
	}
	if _, err := LoadConfig(writeConfig(t, `{"nodes":[{"slot":1,"host":"h","username":"u","password":"p","timeout":2.5}]}`, 0o600)); err != nil {
		t.Errorf("timeout in seconds: %v", err)
	}
	if _, err := New(Config{Nodes: []NodeConfig{{Slot: 1, Host: "h", Username: "u", Password: "p", CipherSuite: 2}}}); err == nil {
		t.Error("New accepted cipher suite 2")
	}
}

func TestPasswordNeverPrinted(t *testing.T) {
	const pw = "Sup3r-Secret!"
	c := NodeConfig{Slot: 1, Host: "10.0.0.1", Username: "admin", Password: pw}.withDefaults()
	var logs bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&logs, nil))
	l.Info("node", "cfg", c, "pw", c.Password)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("node", "cfg", c, "pw", c.Password)
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		c.String(), fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s %q %x", c, c, c, c.Password, c.Password, c.Password),
		fmt.Sprintf("%v %+v %#v", &c, Config{Nodes: []NodeConfig{c}}, c.Password), string(j), logs.String(),
	}
	for _, out := range outputs {
		if strings.Contains(out, pw) || strings.Contains(out, fmt.Sprintf("%x", pw)) {
			t.Errorf("password printed: %s", out)
		}
	}
	if !strings.Contains(c.String(), "[REDACTED]") || !strings.Contains(string(j), "[REDACTED]") {
		t.Errorf("no redaction marker: %s %s", c.String(), j)
	}
	if c.Password.Reveal() != pw {
		t.Error("Reveal lost the password")
	}
}
