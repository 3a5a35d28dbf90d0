package flash

import (
	"cmcd/internal/durable"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Slot names one of the two image slots.
type Slot int

// The two slots.
const (
	Primary Slot = iota
	Backup
)

func (s Slot) String() string {
	switch s {
	case Primary:
		return "primary"
	case Backup:
		return "backup"
	}
	return fmt.Sprintf("slot(%d)", int(s))
}

// Other returns the other slot.
func (s Slot) Other() Slot {
	if s == Primary {
		return Backup
	}
	return Primary
}

// ParseSlot parses "primary" or "backup".
func ParseSlot(v string) (Slot, error) {
	switch v {
	case "primary":
		return Primary, nil
	case "backup":
		return Backup, nil
	}
	return 0, fmt.Errorf("unknown image slot %q (want primary or backup)", v)
}

// MarshalText implements encoding.TextMarshaler.
func (s Slot) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Slot) UnmarshalText(b []byte) error {
	v, err := ParseSlot(string(b))
	*s = v
	return err
}

// StoreFile is the name of the data store inside a data area.
const StoreFile = "cmcd.db"

// Areas locates both slots' data areas under one root.
type Areas struct{ Root string }

// Dir is the data area of a slot.
func (a Areas) Dir(s Slot) string { return filepath.Join(a.Root, s.String()) }

// StorePath is the data store file of a slot.
func (a Areas) StorePath(s Slot) string { return filepath.Join(a.Dir(s), StoreFile) }

// BootStatePath is where the simulated board records which slot runs.
func (a Areas) BootStatePath() string { return filepath.Join(a.Root, "boot-state.json") }

// Ensure creates both data areas if missing and syncs the root directory.
func (a Areas) Ensure() error {
	for _, s := range []Slot{Primary, Backup} {
		if err := os.MkdirAll(a.Dir(s), 0o700); err != nil {
			return fmt.Errorf("flash: create %s data area: %w", s, err)
		}
	}
	return durable.SyncDir(a.Root)
}

// Prober checks the health of an image. Probe returns nil when the image
// answered healthy within ctx, and an error describing the fault otherwise.
type Prober interface {
	Probe(ctx context.Context) error
}

// Images controls which image runs.
type Images interface {
	// Active is the slot the CMC runs from.
	Active() Slot
	// StartBackup starts the image in the other slot (failover) and records why.
	StartBackup(ctx context.Context, reason string) error
}

// Switch is one recorded change of the running image.
type Switch struct {
	Time   time.Time `json:"time"`
	From   Slot      `json:"from"`
	To     Slot      `json:"to"`
	Reason string    `json:"reason"`
}

// BootState is the recorded state of the simulated board's boot selection
// (and, on every board, of the firmware slots: see boot.go).
type BootState struct {
	Active   Slot     `json:"active"`
	Switches []Switch `json:"switches,omitempty"`
	// Firmware slots, boot selection and boot counter (boot.go).
	Images     SlotImages  `json:"images"`
	NextBoot   *Slot       `json:"nextBoot,omitempty"`
	Trial      *Trial      `json:"trial,omitempty"`
	Boots      uint64      `json:"boots"`
	DataChoice *DataChoice `json:"dataChoice,omitempty"`
}

// SimImages implements Images for a board without a boot-select register:
// starting the backup image switches the recorded active slot.
type SimImages struct {
	path string
	now  func() time.Time

	mu    sync.Mutex
	state BootState
}

// OpenSimImages loads (or creates) the boot state of the areas.
func OpenSimImages(a Areas, now func() time.Time) (*SimImages, error) {
	s := &SimImages{path: a.BootStatePath(), now: now}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.state = BootState{Active: Primary}
	case err != nil:
		return nil, fmt.Errorf("flash: read boot state: %w", err)
	default:
		if err := json.Unmarshal(b, &s.state); err != nil {
			return nil, fmt.Errorf("flash: boot state %s is corrupt: %w", s.path, err)
		}
	}
	return s, nil
}

// Active implements Images.
func (s *SimImages) Active() Slot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Active
}

// State returns a copy of the boot state.
func (s *SimImages) State() BootState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.clone()
}

// StartBackup implements Images: the other slot becomes the running one.
func (s *SimImages) StartBackup(ctx context.Context, reason string) error {
	err := s.Update(func(next *BootState) error {
		from := next.Active
		next.switchTo(from.Other(), s.now(), reason)
		if t := next.Trial; t != nil && t.Slot == from {
			// The image on trial turned abnormal: it failed its trial.
			img := next.Images.Get(from)
			img.State, img.Reason, img.Since = ImageBad, "abnormal while on trial; the other image was started: "+reason, s.now().UTC()
			next.Images.Set(from, img)
			next.Trial = nil
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("flash: record start of the other image: %w", err)
	}
	return nil
}

// Update changes the boot state under the lock and writes it crash-safely;
// when fn or the write fails, the state in force is unchanged.
func (s *SimImages) Update(fn func(*BootState) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.state.clone()
	if err := fn(&next); err != nil {
		return err
	}
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	if err := durable.WriteFile(s.path, b, 0o600); err != nil {
		return fmt.Errorf("flash: write boot state: %w", err)
	}
	s.state = next
	return nil
}

// AreaProber probes an image by reading the head of its data store: the
// image is healthy when its data area answers a read within the deadline.
type AreaProber struct {
	Path string
}

// Probe implements Prober.
func (p AreaProber) Probe(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		f, err := os.Open(p.Path)
		if err != nil {
			done <- fmt.Errorf("data area unreadable: %w", err)
			return
		}
		defer f.Close()
		buf := make([]byte, 512)
		if _, err := io.ReadFull(f, buf); err != nil {
			done <- fmt.Errorf("data area read failed: %w", err)
			return
		}
		done <- nil
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("image did not answer: %w", ctx.Err())
	}
}
