package flash

import (
	"fmt"
	"time"
)

// ImageState is the state of the firmware image in a slot.
type ImageState string

// Image states. A slot moves empty|good|bad -> installing -> pending (or
// bad) -> [activated, booted on trial] -> good (reported healthy) or bad
// (did not report healthy within the boot limit).
const (
	ImageEmpty      ImageState = "empty"      // no image installed (the build that runs is cmcd's own)
	ImageInstalling ImageState = "installing" // a write is under way; found at start = interrupted
	ImagePending    ImageState = "pending"    // written, read back and verified; not yet booted healthy
	ImageGood       ImageState = "good"       // booted and reported healthy
	ImageBad        ImageState = "bad"        // interrupted or failed write, or failed its trial boots
)

// SlotImage is what the boot state records about a slot's image.
type SlotImage struct {
	State         ImageState `json:"state"`
	Product       string     `json:"product,omitempty"`
	Board         string     `json:"board,omitempty"`
	Version       string     `json:"version,omitempty"`
	BuildTime     time.Time  `json:"buildTime,omitzero"`
	PayloadSHA256 string     `json:"payloadSha256,omitempty"`
	Length        int64      `json:"length,omitempty"`      // bytes of the image container on the slot
	ImageSHA256   string     `json:"imageSha256,omitempty"` // digest of those bytes (read-back check)
	KeyID         string     `json:"keyId,omitempty"`       // trusted key that signed it
	Since         time.Time  `json:"since,omitzero"`        // when the state was entered
	Reason        string     `json:"reason,omitempty"`      // why the image is bad
}

// SlotImages holds both slots' images.
type SlotImages struct {
	Primary SlotImage `json:"primary"`
	Backup  SlotImage `json:"backup"`
}

// Get returns a slot's image (State empty when none was ever recorded).
func (s SlotImages) Get(slot Slot) SlotImage {
	img := s.Primary
	if slot == Backup {
		img = s.Backup
	}
	if img.State == "" {
		img.State = ImageEmpty
	}
	return img
}

// Set records a slot's image.
func (s *SlotImages) Set(slot Slot, img SlotImage) {
	if slot == Backup {
		s.Backup = img
	} else {
		s.Primary = img
	}
}

// Trial is a boot of a newly activated slot that has not yet reported
// healthy. Boots counts the boots of Slot so far; when it has reached
// Limit and the image has still not reported healthy, the next boot falls
// back to From.
type Trial struct {
	Slot    Slot      `json:"slot"`
	From    Slot      `json:"from"`
	Boots   int       `json:"boots"`
	Limit   int       `json:"limit"`
	Started time.Time `json:"started"`
	Upgrade bool      `json:"upgrade"` // the slot holds a newly installed image (S5 follows)
}

// DataChoice is the keep-or-restore choice (S5) offered after an upgraded
// image has booted healthy. State is pending until answered, applying
// while the answer is applied (a restart resumes it), then done.
type DataChoice struct {
	State       string    `json:"state"` // pending, applying, done
	Slot        Slot      `json:"slot"`
	Version     string    `json:"version"`
	FromVersion string    `json:"fromVersion"`
	Offered     time.Time `json:"offered"`
	Answer      string    `json:"answer,omitempty"` // keep, restore
	By          string    `json:"by,omitempty"`
	Answered    time.Time `json:"answered,omitzero"`
	Applied     time.Time `json:"applied,omitzero"`
}

// Choice states.
const (
	ChoicePending  = "pending"
	ChoiceApplying = "applying"
	ChoiceDone     = "done"
)

func (b BootState) clone() BootState {
	out := b
	out.Switches = append([]Switch(nil), b.Switches...)
	if b.NextBoot != nil {
		v := *b.NextBoot
		out.NextBoot = &v
	}
	if b.Trial != nil {
		v := *b.Trial
		out.Trial = &v
	}
	if b.DataChoice != nil {
		v := *b.DataChoice
		out.DataChoice = &v
	}
	return out
}

func (b *BootState) switchTo(to Slot, now time.Time, reason string) {
	from := b.Active
	b.Active = to
	b.Switches = append(b.Switches, Switch{Time: now.UTC(), From: from, To: to, Reason: reason})
	if n := len(b.Switches); n > 32 {
		b.Switches = b.Switches[n-32:]
	}
}

// BootOutcome says what a boot decided.
type BootOutcome struct {
	Slot     Slot   // the slot that runs now
	Trial    *Trial // non-nil while the running image is on trial
	FellBack bool   // the trial image used up its boots: the other slot runs
	Switched bool   // a newly activated slot runs
	Reason   string
}

// Boot plays the boot loader's part once per start of the daemon (on the
// simulated board a start of cmcd is a boot): it counts the boot, starts
// a newly activated slot on trial (limit boots), and falls back to the
// previous slot when the image on trial has used up its boots without
// reporting healthy. The decision is written before it takes effect.
func (s *SimImages) Boot(limit int) (BootOutcome, error) {
	if limit < 1 {
		limit = 1
	}
	var out BootOutcome
	err := s.Update(func(b *BootState) error {
		now := s.now().UTC()
		b.Boots++
		out = BootOutcome{}
		switch {
		case b.Trial != nil && b.Trial.Boots >= b.Trial.Limit:
			t := *b.Trial
			img := b.Images.Get(t.Slot)
			img.State, img.Since = ImageBad, now
			img.Reason = fmt.Sprintf("did not report healthy within %d boots; fell back to the %s image", t.Limit, t.From)
			b.Images.Set(t.Slot, img)
			b.Trial = nil
			b.NextBoot = nil
			b.switchTo(t.From, now, img.Reason)
			out.FellBack, out.Reason = true, fmt.Sprintf("%s image (version %s) %s", t.Slot, img.Version, img.Reason)
		case b.Trial != nil:
			b.Trial.Boots++
			b.Active = b.Trial.Slot
			out.Reason = fmt.Sprintf("trial boot %d of %d of the %s image", b.Trial.Boots, b.Trial.Limit, b.Trial.Slot)
		case b.NextBoot != nil:
			to := *b.NextBoot
			b.NextBoot = nil
			if to != b.Active {
				img := b.Images.Get(to)
				b.Trial = &Trial{Slot: to, From: b.Active, Boots: 1, Limit: limit, Started: now, Upgrade: img.State == ImagePending}
				out.Switched = true
				out.Reason = fmt.Sprintf("activated %s image (version %s) booted on trial (1 of %d)", to, img.Version, limit)
				b.switchTo(to, now, "activated image booted")
			}
		}
		out.Slot = b.Active
		if b.Trial != nil {
			t := *b.Trial
			out.Trial = &t
		}
		return nil
	})
	return out, err
}

// Confirm records that the running image reported healthy: an image on
// trial becomes good and, if it was an upgrade, the keep-or-restore choice
// (S5) becomes pending in the same write. It reports whether a trial ended.
// builtin is the version reported for a slot without an installed image.
func (s *SimImages) Confirm(builtin string) (*DataChoice, bool, error) {
	var choice *DataChoice
	var ended bool
	err := s.Update(func(b *BootState) error {
		t := b.Trial
		if t == nil || t.Slot != b.Active {
			return nil
		}
		now := s.now().UTC()
		img := b.Images.Get(t.Slot)
		img.State, img.Since, img.Reason = ImageGood, now, ""
		b.Images.Set(t.Slot, img)
		b.Trial = nil
		ended = true
		if t.Upgrade {
			from := b.Images.Get(t.From).Version
			if from == "" {
				from = builtin
			}
			b.DataChoice = &DataChoice{State: ChoicePending, Slot: t.Slot, Version: img.Version, FromVersion: from, Offered: now}
			c := *b.DataChoice
			choice = &c
		}
		return nil
	})
	return choice, ended, err
}
