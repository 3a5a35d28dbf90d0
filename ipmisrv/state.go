package ipmisrv

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// StateFile is the responder's state in the data directory.
const StateFile = "ipmi-state.json"

// state is what the responder keeps across restarts: the GUIDs it
// answers with, when the SDR set last changed, and the SEL's clear marks.
type state struct {
	Format     int      `json:"format"`
	DeviceGUID string   `json:"deviceGuid"` // RFC 4122 text form
	SystemGUID string   `json:"systemGuid"`
	SDRDigest  string   `json:"sdrDigest"`  // SHA-256 of the SDR set, hex
	SDRChanged int64    `json:"sdrChanged"` // Unix time the SDR set last changed
	SELCleared int64    `json:"selCleared"` // Unix time of the last Clear SEL (0 = never)
	SELMarks   selMarks `json:"selMarks"`   // per source, the highest sequence cleared
}

// newGUID returns a random RFC 4122 version 4 GUID in its text form.
func newGUID() (string, error) {
	var g [16]byte
	if _, err := rand.Read(g[:]); err != nil {
		return "", err
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	h := hex.EncodeToString(g[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// guidBytes converts a GUID's text form to IPMI wire order (IPMI 2.0
// table 20-10: node, clock sequence, time high, time mid, time low, each
// least significant byte first): the RFC 4122 byte string reversed.
func guidBytes(s string) ([16]byte, error) {
	var g [16]byte
	b, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(b) != 16 || len(s) != 36 {
		return g, fmt.Errorf("GUID %q: want the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	for i := range b {
		g[15-i] = b[i]
	}
	return g, nil
}

// loadState reads the state file, creating it (with new GUIDs) when it
// does not exist. A file that exists but does not parse is an error that
// names it: it is never silently replaced, so the GUIDs clients know stay.
func loadState(dir string) (state, error) {
	path := filepath.Join(dir, StateFile)
	// Temporary files of writes a crash interrupted are never read: drop them.
	if left, _ := filepath.Glob(filepath.Join(dir, StateFile+".tmp*")); len(left) > 0 {
		for _, f := range left {
			_ = os.Remove(f)
		}
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		st := state{Format: 1, SELMarks: selMarks{}}
		if st.DeviceGUID, err = newGUID(); err != nil {
			return state{}, err
		}
		if st.SystemGUID, err = newGUID(); err != nil {
			return state{}, err
		}
		return st, saveState(dir, st)
	}
	if err != nil {
		return state{}, fmt.Errorf("ipmi state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, fmt.Errorf("ipmi state %s is damaged (%v): fix or remove it (removing it gives the endpoint new GUIDs)", path, err)
	}
	if st.Format != 1 {
		return state{}, fmt.Errorf("ipmi state %s: format %d is not supported", path, st.Format)
	}
	for _, g := range []string{st.DeviceGUID, st.SystemGUID} {
		if _, err := guidBytes(g); err != nil {
			return state{}, fmt.Errorf("ipmi state %s: %w", path, err)
		}
	}
	if st.SELMarks == nil {
		st.SELMarks = selMarks{}
	}
	return st, nil
}

// saveState replaces the state file crash-safely: a temporary file is
// written and fsynced, renamed over the old one, and the directory
// fsynced, so a crash leaves the old or the new state, never a mix.
func saveState(dir string, st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, StateFile)
	tmp, err := os.CreateTemp(dir, StateFile+".tmp*")
	if err != nil {
		return fmt.Errorf("ipmi state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err = tmp.Write(append(b, '\n')); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("ipmi state %s: %w", path, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("ipmi state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("ipmi state: syncing %s: %w", dir, err)
	}
	return nil
}
