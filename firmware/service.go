package firmware

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"cmcd/flash"
)

// Product is the product name of cmcd images.
const Product = "cmcd"

// DefaultBootLimit is how many boots an activated image gets to report
// healthy before the boot falls back to the other slot.
const DefaultBootLimit = 3

// LockFile is the file in the data directory that one process (the daemon
// or `cmcd image install`) holds while it owns the slots.
const LockFile = "firmware.lock"

// Errors of the service (besides *RefusedError).
var (
	ErrBusy     = errors.New("firmware: an update is already in progress; retry when it has finished")
	ErrOnTrial  = errors.New("firmware: the running image is on trial (it has not yet reported healthy); the other slot holds the fallback image and cannot be changed now")
	ErrNoChoice = errors.New("firmware: no keep-or-restore choice is pending")
	ErrLocked   = errors.New("firmware: another cmcd process owns the image slots")
)

// DataArea is what the keep-or-restore choice (S5) acts on: the running
// image's data area, through the sync engine (see NewEngineData).
type DataArea interface {
	// RestoreDefaults puts the data area's presets back, atomically.
	RestoreDefaults() error
	// LogEvent records an entry in the CMC event log.
	LogEvent(kind, severity, msg string)
}

// Options configure a Service.
type Options struct {
	Areas flash.Areas
	// Devices maps a slot to its device path (/dev/mtdN on a board); a
	// missing slot uses the file Areas.ImagePath(slot).
	Devices map[flash.Slot]string
	// SimDevice is the geometry of file-backed slots; zero: flash.DefaultSimDevice.
	SimDevice flash.DeviceInfo
	Keys      *KeyRing
	Product   string // default Product
	Board     string // e.g. "sim"
	BootLimit int    // default DefaultBootLimit
	// Staging is where uploads are spooled while they are verified
	// (default DIR/firmware-staging; a tmpfs on a board).
	Staging string
	// Builtin is the version that runs from a slot with no installed image
	// (cmcd's own version.Version).
	Builtin string
	Now     func() time.Time
	Log     *slog.Logger
}

// Service is the firmware update service: it verifies and installs images
// into the inactive slot, activates a slot, plays the boot counter, and
// keeps the post-upgrade keep-or-restore choice (S5). It is free of HTTP;
// Redfish's UpdateService, TaskService, ActiveSoftwareImage and the S5 OEM
// action are layered on its methods.
type Service struct {
	o      Options
	lock   *os.File
	images *flash.SimImages
	busy   atomic.Bool
	prog   atomic.Pointer[Progress]

	mu   sync.Mutex // the S5 choice
	data DataArea
}

// Open takes the slots' lock, loads the boot state and marks a slot whose
// install was interrupted (kill, crash, power cut) bad.
func Open(o Options) (*Service, error) {
	if o.Product == "" {
		o.Product = Product
	}
	if o.BootLimit <= 0 {
		o.BootLimit = DefaultBootLimit
	}
	if o.SimDevice == (flash.DeviceInfo{}) {
		o.SimDevice = flash.DefaultSimDevice
	}
	if o.Staging == "" {
		o.Staging = filepath.Join(o.Areas.Root, "firmware-staging")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Builtin == "" {
		o.Builtin = "dev"
	}
	if err := os.MkdirAll(o.Areas.Root, 0o700); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(filepath.Join(o.Areas.Root, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("firmware: lock: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%w (%s is held: stop the running cmcd, or update through its Redfish service)", ErrLocked, o.Areas.Root)
	}
	s := &Service{o: o, lock: lf}
	s.images, err = flash.OpenSimImages(o.Areas, o.Now)
	if err != nil {
		s.Close()
		return nil, err
	}
	st := s.images.State()
	for _, slot := range []flash.Slot{flash.Primary, flash.Backup} {
		if img := st.Images.Get(slot); img.State == flash.ImageInstalling {
			err := s.images.Update(func(b *flash.BootState) error {
				img.State, img.Since = flash.ImageBad, o.Now().UTC()
				img.Reason = "the install into this slot was interrupted (kill, crash or power cut during the write); it holds no usable image"
				b.Images.Set(slot, img)
				if b.NextBoot != nil && *b.NextBoot == slot {
					b.NextBoot = nil
				}
				return nil
			})
			if err != nil {
				s.Close()
				return nil, err
			}
			o.Log.Warn("firmware: an interrupted install left the "+slot.String()+" slot bad", "slot", slot)
		}
	}
	os.RemoveAll(o.Staging) // spooled uploads of a previous run
	return s, nil
}

// Close releases the lock.
func (s *Service) Close() error {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
	return nil
}

// Images is the boot state, which also tells syncsel which slot runs.
func (s *Service) Images() *flash.SimImages { return s.images }

// BootLimit is the number of trial boots an activated image gets.
func (s *Service) BootLimit() int { return s.o.BootLimit }

// Boot counts a start of the daemon as a boot (see flash.SimImages.Boot).
// Call it once, before anything opens the data areas.
func (s *Service) Boot() (flash.BootOutcome, error) {
	out, err := s.images.Boot(s.o.BootLimit)
	if err != nil {
		return out, err
	}
	switch {
	case out.FellBack:
		s.o.Log.Error("firmware: boot fell back to the other image: "+out.Reason, "running", out.Slot)
	case out.Trial != nil:
		s.o.Log.Warn("firmware: "+out.Reason+"; it must report healthy or the boot falls back after the limit",
			"running", out.Slot, "boot", out.Trial.Boots, "limit", out.Trial.Limit)
	}
	return out, nil
}

// ReportHealthy records that the running image passed its start-up checks:
// an image on trial becomes good; after an upgrade the keep-or-restore
// choice becomes pending (returned).
func (s *Service) ReportHealthy() (*flash.DataChoice, error) {
	choice, ended, err := s.images.Confirm(s.o.Builtin)
	if err != nil {
		return nil, err
	}
	if ended {
		r := s.Running()
		s.o.Log.Info("firmware: the image on trial reported healthy and is now good", "slot", r.Slot, "version", r.Version)
	}
	if choice != nil {
		msg := fmt.Sprintf("firmware upgraded from %s to %s: keep the data as the upgrade left it, or restore the data area to the preset defaults? (pending until answered)",
			choice.FromVersion, choice.Version)
		s.mu.Lock()
		if s.data != nil {
			s.data.LogEvent("FirmwareUpgraded", "Warning", msg)
		}
		s.mu.Unlock()
		s.o.Log.Warn("firmware: " + msg)
	}
	return choice, nil
}

// RunningImage is the image the CMC runs.
type RunningImage struct {
	Slot      flash.Slot `json:"slot"`
	Version   string     `json:"version"`
	Installed bool       `json:"installed"` // false: no image in the slot; Version is cmcd's own
}

// Running says which slot runs and its version: the installed image's
// manifest version, or the daemon's own version when the slot has none.
func (s *Service) Running() RunningImage {
	st := s.images.State()
	img := st.Images.Get(st.Active)
	if img.Version == "" || img.State == flash.ImageEmpty {
		return RunningImage{Slot: st.Active, Version: s.o.Builtin}
	}
	return RunningImage{Slot: st.Active, Version: img.Version, Installed: true}
}

// SlotInfo is one slot for FirmwareInventory.
type SlotInfo struct {
	Slot     flash.Slot      `json:"slot"`
	Running  bool            `json:"running"`
	NextBoot bool            `json:"nextBoot"` // boots at the next start
	OnTrial  bool            `json:"onTrial"`
	Version  string          `json:"version"` // "" = empty slot (not running)
	Image    flash.SlotImage `json:"image"`
}

// Inventory describes both slots.
func (s *Service) Inventory() []SlotInfo {
	st := s.images.State()
	var out []SlotInfo
	for _, slot := range []flash.Slot{flash.Primary, flash.Backup} {
		img := st.Images.Get(slot)
		in := SlotInfo{Slot: slot, Running: slot == st.Active, Image: img, Version: img.Version}
		in.NextBoot = slot == st.Active && st.NextBoot == nil || st.NextBoot != nil && *st.NextBoot == slot
		in.OnTrial = st.Trial != nil && st.Trial.Slot == slot
		if in.Version == "" && in.Running {
			in.Version = s.o.Builtin
		}
		out = append(out, in)
	}
	return out
}

// State is a copy of the whole boot state.
func (s *Service) State() flash.BootState { return s.images.State() }

// Busy reports whether an install runs, and its progress.
func (s *Service) Busy() (bool, Progress) {
	if p := s.prog.Load(); p != nil && s.busy.Load() {
		return true, *p
	}
	return s.busy.Load(), Progress{}
}

func (s *Service) device(slot flash.Slot, write bool) (flash.Device, error) {
	path := s.o.Areas.ImagePath(slot)
	if p, ok := s.o.Devices[slot]; ok && p != "" {
		path = p
	}
	return flash.OpenDevice(path, s.o.SimDevice, write)
}

func (s *Service) check(maxSize int64) Check {
	return Check{Keys: s.o.Keys, Product: s.o.Product, Board: s.o.Board, MaxSize: maxSize}
}

// InstallResult is a finished install.
type InstallResult struct {
	Slot    flash.Slot      `json:"slot"`
	Image   flash.SlotImage `json:"image"`
	Elapsed time.Duration   `json:"elapsed"`
}

// target picks the inactive slot and its capacity.
func (s *Service) target() (flash.Slot, int64, error) {
	st := s.images.State()
	if st.Trial != nil {
		return 0, 0, ErrOnTrial
	}
	slot := st.Active.Other()
	dev, err := s.device(slot, false)
	if err != nil {
		return 0, 0, err
	}
	defer dev.Close()
	return slot, dev.Info().Size, nil
}

// phaseSpan places each phase in Progress.Overall.
var phaseSpan = map[string][2]int{"receiving": {0, 40}, "erasing": {40, 50}, "writing": {50, 90}, "reading-back": {90, 100}, "done": {100, 100}}

func overall(p Progress) int {
	sp := phaseSpan[p.Phase]
	return sp[0] + (sp[1]-sp[0])*p.Percent()/100
}

func (s *Service) reporter(progress func(Progress)) func(Progress) {
	return func(p Progress) {
		p.Overall = overall(p)
		s.prog.Store(&p)
		if progress != nil {
			progress(p)
		}
	}
}

// Install verifies the image read from r (spooled to the staging area as
// it streams past) and installs it into the inactive slot: written,
// read back and verified, then marked pending. A refused image
// (*RefusedError) changes nothing on either slot. A failure after the
// write began marks the slot bad. Only one install runs at a time
// (ErrBusy). progress may be nil.
func (s *Service) Install(ctx context.Context, r io.Reader, progress func(Progress)) (*InstallResult, error) {
	if !s.busy.CompareAndSwap(false, true) {
		return nil, ErrBusy
	}
	defer s.busy.Store(false)
	start := s.o.Now()
	rep := s.reporter(progress)
	slot, size, err := s.target()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.o.Staging, 0o700); err != nil {
		return nil, fmt.Errorf("firmware: staging area: %w", err)
	}
	f, err := os.CreateTemp(s.o.Staging, "upload-*.img")
	if err != nil {
		return nil, fmt.Errorf("firmware: staging area: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	v, err := Verify(ctxReader{ctx, r}, s.check(size), f, rep)
	if err != nil {
		return nil, err
	}
	return s.install(ctx, slot, f, v, rep, start)
}

// InstallFile installs an image file already on the board (SimpleUpdate
// from a local path): verified in place, then written like Install.
func (s *Service) InstallFile(ctx context.Context, path string, progress func(Progress)) (*InstallResult, error) {
	if !s.busy.CompareAndSwap(false, true) {
		return nil, ErrBusy
	}
	defer s.busy.Store(false)
	start := s.o.Now()
	rep := s.reporter(progress)
	slot, size, err := s.target()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("firmware: image file: %w", err)
	}
	defer f.Close()
	v, err := Verify(ctxReader{ctx, f}, s.check(size), nil, rep)
	if err != nil {
		return nil, err
	}
	return s.install(ctx, slot, f, v, rep, start)
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (s *Service) install(ctx context.Context, slot flash.Slot, src io.ReaderAt, v *Verified, rep func(Progress), start time.Time) (*InstallResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := v.Header.Manifest
	img := flash.SlotImage{State: flash.ImageInstalling, Product: m.Product, Board: m.Board, Version: m.Version, BuildTime: m.BuildTime,
		PayloadSHA256: m.PayloadSHA256, Length: v.Length, ImageSHA256: v.ImageSHA256, KeyID: v.KeyID, Since: s.o.Now().UTC()}
	// The durable mark comes first: a write cut short is found at the next
	// Open and the slot is marked bad, never booted.
	err := s.images.Update(func(b *flash.BootState) error {
		if b.Active == slot {
			return fmt.Errorf("firmware: refusing to write the running %s slot", slot)
		}
		if b.Trial != nil {
			return ErrOnTrial
		}
		if b.NextBoot != nil && *b.NextBoot == slot {
			b.NextBoot = nil
		}
		b.Images.Set(slot, img)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.o.Log.Info("firmware: writing image to the inactive slot", "slot", slot, "version", m.Version, "bytes", v.Length)
	fail := func(cause error) (*InstallResult, error) {
		bad := img
		bad.State, bad.Since, bad.Reason = flash.ImageBad, s.o.Now().UTC(), "install failed: "+cause.Error()
		if uerr := s.images.Update(func(b *flash.BootState) error { b.Images.Set(slot, bad); return nil }); uerr != nil {
			return nil, fmt.Errorf("firmware: install into the %s slot failed (%v) and marking it bad failed too: %w", slot, cause, uerr)
		}
		s.o.Log.Error("firmware: install failed; the slot is marked bad", "slot", slot, "err", cause)
		return nil, fmt.Errorf("firmware: install into the %s slot failed; the slot is marked bad: %w", slot, cause)
	}
	dev, err := s.device(slot, true)
	if err != nil {
		return fail(err)
	}
	err = flash.WriteImage(dev, io.NewSectionReader(src, 0, v.Length), v.Length, func(phase string, done, total int64) {
		rep(Progress{Phase: phase, Done: done, Total: total})
	})
	if cerr := dev.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	if err := s.readBack(slot, img, rep); err != nil {
		return fail(err)
	}
	img.State, img.Since = flash.ImagePending, s.o.Now().UTC()
	if err := s.images.Update(func(b *flash.BootState) error { b.Images.Set(slot, img); return nil }); err != nil {
		return fail(err)
	}
	rep(Progress{Phase: "done", Done: v.Length, Total: v.Length})
	s.o.Log.Info("firmware: image installed, read back and verified; activate it to boot it", "slot", slot, "version", m.Version)
	return &InstallResult{Slot: slot, Image: img, Elapsed: s.o.Now().Sub(start)}, nil
}

// readBack reads the slot's image from flash and verifies it completely:
// structure, signature, target, payload digest and the digest of the
// whole image against what was staged.
func (s *Service) readBack(slot flash.Slot, img flash.SlotImage, rep func(Progress)) error {
	dev, err := s.device(slot, false)
	if err != nil {
		return err
	}
	defer dev.Close()
	v, err := Verify(io.NewSectionReader(dev, 0, img.Length), s.check(0), nil, func(p Progress) {
		if rep != nil {
			p.Phase = "reading-back"
			rep(p)
		}
	})
	if err != nil {
		return fmt.Errorf("read-back verification: %w", err)
	}
	if v.ImageSHA256 != img.ImageSHA256 || v.Length != img.Length {
		return fmt.Errorf("read-back verification: the slot holds image %s (%d bytes), %s (%d bytes) was written", v.ImageSHA256, v.Length, img.ImageSHA256, img.Length)
	}
	return nil
}

// Activate selects the slot that boots at the next start (the Manager's
// ActiveSoftwareImage). The other slot must hold a pending or good image,
// which is verified on flash first; selecting the running slot cancels an
// earlier activation. The newly selected image boots on trial.
func (s *Service) Activate(slot flash.Slot) error {
	if s.busy.Load() {
		return ErrBusy
	}
	st := s.images.State()
	if slot == st.Active {
		return s.images.Update(func(b *flash.BootState) error { b.NextBoot = nil; return nil })
	}
	if st.Trial != nil {
		return ErrOnTrial
	}
	img := st.Images.Get(slot)
	if img.State != flash.ImagePending && img.State != flash.ImageGood {
		why := ""
		if img.Reason != "" {
			why = ": " + img.Reason
		}
		return fmt.Errorf("firmware: the %s slot holds no bootable image (state %s%s)", slot, img.State, why)
	}
	if err := s.readBack(slot, img, nil); err != nil {
		bad := img
		bad.State, bad.Since, bad.Reason = flash.ImageBad, s.o.Now().UTC(), "failed verification at activation: "+err.Error()
		if uerr := s.images.Update(func(b *flash.BootState) error { b.Images.Set(slot, bad); return nil }); uerr != nil {
			return uerr
		}
		return fmt.Errorf("firmware: the %s slot's image failed verification and is marked bad: %w", slot, err)
	}
	if err := s.images.Update(func(b *flash.BootState) error { b.NextBoot = &slot; return nil }); err != nil {
		return err
	}
	s.o.Log.Info("firmware: image activated; it boots at the next start, on trial", "slot", slot, "version", img.Version, "bootLimit", s.o.BootLimit)
	return nil
}
