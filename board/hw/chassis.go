package hw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/host/v3/sysfs"

	"cmcd/board"
	"cmcd/board/eeprom"
	"cmcd/board/fru"
	"cmcd/board/gpio"
	"cmcd/board/hwmon"
	"cmcd/board/pmbus"
)

// Options supply the hardware access; the zero value uses the real board
// (/dev/i2c-N through periph's sysfs driver, GPIO lines from the periph
// registry).
type Options struct {
	OpenBus func(bus int) (i2c.BusCloser, error)
	Line    func(name string, activeLow bool) (*gpio.Line, error)
	Log     *slog.Logger
}

// Chassis is the board built from a profile. It is safe for concurrent use.
type Chassis struct {
	p     *Profile
	opts  Options
	mu    sync.Mutex
	buses map[int]i2c.BusCloser
	psus  []*psu
	fans  []*fan
	fru   board.FRU
	// FRUProblems lists what was wrong with the chassis FRU EEPROM (read
	// errors, bad checksums); its untrusted areas are left out.
	FRUProblems []error
	peerPresent *gpio.Line
	peerReset   *gpio.Line
}

type psu struct {
	prof      PSUProfile
	dev       *pmbus.PSU
	presence  *gpio.Line
	powerGood *gpio.Line
	ident     *pmbus.Ident
	fru       *board.FRU
	capacity  float64
	// status is the last STATUS_WORD read (logged when it changes).
	status     pmbus.Status
	statusRead bool
}

type fan struct {
	prof     FanProfile
	ctl      *pmbus.MAX31785
	presence *gpio.Line
}

// Open builds the chassis. Buses and GPIO lines are opened here (a missing
// bus or line is an error naming the profile field); devices are only read
// by PSUs, Fans and Temperatures, so a dead device never stops the start.
// The chassis FRU EEPROM is read once, here.
func Open(p *Profile, opts Options) (*Chassis, error) {
	if opts.OpenBus == nil {
		opts.OpenBus = func(n int) (i2c.BusCloser, error) { return sysfs.NewI2C(n) }
	}
	if opts.Line == nil {
		opts.Line = gpio.ByName
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	c := &Chassis{p: p, opts: opts, buses: map[int]i2c.BusCloser{}}
	fail := func(err error) (*Chassis, error) {
		c.Close()
		return nil, err
	}
	for i, sp := range p.PSUs {
		s := &psu{prof: sp, capacity: sp.CapacityW}
		f := fmt.Sprintf("psus[%d]", i)
		if sp.PMBus != nil {
			bus, err := c.bus(f+".pmbus", sp.PMBus.Bus)
			if err != nil {
				return fail(err)
			}
			s.dev = pmbus.NewPSU(bus, uint16(sp.PMBus.Addr))
		}
		var err error
		if s.presence, err = c.line(f+".presence", sp.Presence); err != nil {
			return fail(err)
		}
		if s.powerGood, err = c.line(f+".powerGood", sp.PowerGood); err != nil {
			return fail(err)
		}
		c.psus = append(c.psus, s)
	}
	for i, fp := range p.Fans {
		fn := &fan{prof: fp}
		f := fmt.Sprintf("fans[%d]", i)
		if fp.MAX31785 != nil {
			bus, err := c.bus(f+".max31785", fp.MAX31785.Bus)
			if err != nil {
				return fail(err)
			}
			fn.ctl = pmbus.NewMAX31785(bus, uint16(fp.MAX31785.Addr))
			if fp.DutyPercent > 0 {
				// A dead controller must not stop the start: logged,
				// and the fan then reads as it is.
				if err := fn.ctl.SetDuty(fp.Channel, fp.DutyPercent, fp.MaxRPM); err != nil {
					opts.Log.Warn("fan duty not set", "fan", fp.Name, "err", err)
				} else {
					opts.Log.Info("fan duty set", "fan", fp.Name, "percent", fp.DutyPercent)
				}
			}
		}
		var err error
		if fn.presence, err = c.line(f+".presence", fp.Presence); err != nil {
			return fail(err)
		}
		c.fans = append(c.fans, fn)
	}
	if p.Peer != nil {
		var err error
		if c.peerPresent, err = c.line("peer.presence", p.Peer.Presence); err != nil {
			return fail(err)
		}
		if c.peerReset, err = c.line("peer.reset", p.Peer.Reset); err != nil {
			return fail(err)
		}
	}
	if p.FRU != nil {
		info, err := c.readFRU("fru", p.FRU)
		if err != nil {
			c.FRUProblems = append(c.FRUProblems, err)
			opts.Log.Warn("chassis FRU EEPROM unreadable; inventory left empty", "err", err)
		} else {
			c.fru = fru.ToBoard(info)
			c.FRUProblems = append(c.FRUProblems, info.Problems...)
			for _, pr := range info.Problems {
				opts.Log.Warn("chassis FRU EEPROM: area not trusted", "err", pr)
			}
		}
	}
	return c, nil
}

func (c *Chassis) bus(field string, n int) (i2c.Bus, error) {
	if b, ok := c.buses[n]; ok {
		return b, nil
	}
	b, err := c.opts.OpenBus(n)
	if err != nil {
		return nil, fmt.Errorf("%s.bus %d: %w", field, n, err)
	}
	c.buses[n] = b
	return b, nil
}

func (c *Chassis) line(field string, l *LineRef) (*gpio.Line, error) {
	if l == nil {
		return nil, nil
	}
	g, err := c.opts.Line(l.Line, l.ActiveLow)
	if err != nil {
		return nil, fmt.Errorf("%s.line: %w", field, err)
	}
	return g, nil
}

// readFRU reads and parses an EEPROM.
func (c *Chassis) readFRU(field string, e *EEPROMRef) (*fru.Info, error) {
	var dev eeprom.Device
	if e.Via == "i2c" {
		bus, err := c.bus(field, e.Bus)
		if err != nil {
			return nil, err
		}
		a, err := eeprom.NewAT24(bus, uint16(e.Addr), e.Size)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		dev = a
	} else {
		dev = eeprom.File{Path: filepath.Join(c.p.Sysfs, "bus/i2c/devices", hwmon.I2CDevice(e.Bus, uint16(e.Addr)), "eeprom"), N: e.Size}
	}
	img, err := eeprom.ReadAll(dev)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	info, err := fru.Parse(img)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return info, nil
}

func (c *Chassis) hwmonRoot() string { return filepath.Join(c.p.Sysfs, "class/hwmon") }

// FRU is the chassis FRU inventory read at Open.
func (c *Chassis) FRU() board.FRU { return c.fru }

func asserted(l *gpio.Line) (bool, bool) {
	if l == nil {
		return false, false
	}
	on, err := l.Asserted()
	return on, err == nil
}

// PSUs implements board.PowerSource. A supply whose presence line says it
// is absent is reported absent without touching the bus; one that does not
// answer is reported with Health Critical (and, without a presence line,
// as absent: the two cannot be told apart).
func (c *Chassis) PSUs(ctx context.Context) ([]board.PSU, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]board.PSU, 0, len(c.psus))
	for i, s := range c.psus {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out = append(out, c.readPSU(i, s))
	}
	return out, nil
}

func (c *Chassis) readPSU(i int, s *psu) board.PSU {
	r := board.PSU{ID: i + 1, Name: s.prof.Name, CapacityW: s.capacity, Health: board.HealthOK}
	present, hasPresence := asserted(s.presence)
	if hasPresence && !present {
		r.Health = board.HealthOK
		return r
	}
	if s.prof.FRU != nil && s.fru == nil {
		if info, err := c.readFRU(fmt.Sprintf("psus[%d].fru", i), s.prof.FRU); err == nil {
			f := fru.ToBoard(info)
			s.fru = &f
		} else {
			c.opts.Log.Debug("PSU FRU unreadable", "psu", s.prof.Name, "err", err)
		}
	}
	if s.fru != nil {
		r.Model, r.Serial, r.Firmware = firstOf(s.fru.ProductName, s.fru.BoardProduct), firstOf(s.fru.ProductSerial, s.fru.BoardSerial), s.fru.ProductVersion
	}
	var err error
	statusPG := true
	switch {
	case s.dev != nil:
		err = c.readPMBusPSU(s, &r, &statusPG)
	default:
		err = c.readHwmonPSU(s, &r)
	}
	r.Present = err == nil || hasPresence
	if err != nil {
		c.opts.Log.Debug("PSU unreadable", "psu", s.prof.Name, "err", err)
		r.Health, r.PowerGood = board.HealthCritical, false
		return r
	}
	if pg, ok := asserted(s.powerGood); ok {
		r.PowerGood = pg
	} else {
		r.PowerGood = statusPG && r.OutputV > 0
	}
	if !r.PowerGood {
		r.Health = board.HealthCritical
	}
	return r
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (c *Chassis) readPMBusPSU(s *psu, r *board.PSU, statusPG *bool) error {
	if s.ident == nil {
		id, err := s.dev.Ident()
		if err != nil {
			c.opts.Log.Debug("PSU MFR strings incomplete", "psu", s.prof.Name, "err", err)
		}
		s.ident = &id
		if s.capacity == 0 {
			if w, err := s.dev.MaxPowerW(); err == nil {
				s.capacity = w
			}
		}
		r.CapacityW = s.capacity
	}
	if r.Model == "" {
		r.Model = s.ident.Model
	}
	if r.Serial == "" {
		r.Serial = s.ident.Serial
	}
	if r.Firmware == "" {
		r.Firmware = s.ident.Revision
	}
	rd, err := s.dev.Read()
	if err != nil {
		s.ident = nil // re-identify after a swap
		return err
	}
	r.InputV, r.OutputV, r.OutputA, r.OutputW, r.TempC = round2(rd.VinV), round2(rd.VoutV), round2(rd.IoutA), round2(rd.PoutW), round2(rd.TempC)
	if !s.statusRead || rd.Status != s.status {
		// What the supply reports is what decides its health: say it.
		lvl := slog.LevelInfo
		if rd.Status.Critical() {
			lvl = slog.LevelWarn
		}
		c.opts.Log.Log(context.Background(), lvl, "PSU STATUS_WORD", "psu", s.prof.Name,
			"status", fmt.Sprintf("0x%04x", uint16(rd.Status)), "faults", rd.Status.String())
		s.status, s.statusRead = rd.Status, true
	}
	*statusPG = rd.Status.PowerGood()
	switch {
	case rd.Status.Critical():
		r.Health = board.HealthCritical
	case rd.Status != 0:
		r.Health = board.HealthWarning
	}
	return nil
}

func (c *Chassis) readHwmonPSU(s *psu, r *board.PSU) error {
	chip, err := hwmon.Find(c.hwmonRoot(), s.prof.Hwmon.Name, s.prof.Hwmon.Device)
	if err != nil {
		return err
	}
	var errs []error
	read := func(kind, label string, get func(int) (float64, error), dst *float64) {
		n, err := chip.Labeled(kind, label)
		if err == nil {
			var v float64
			if v, err = get(n); err == nil {
				*dst = round2(v)
				return
			}
		}
		errs = append(errs, err)
	}
	read("in", "vin", chip.Volts, &r.InputV)
	read("in", "vout1", chip.Volts, &r.OutputV)
	read("curr", "iout1", chip.Amps, &r.OutputA)
	read("power", "pout1", chip.Watts, &r.OutputW)
	if chip.Has("temp1_input") {
		t, err := chip.TempC(1)
		if err != nil {
			errs = append(errs, err)
		}
		r.TempC = round2(t)
	}
	return errors.Join(errs...)
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// Fans implements board.FanSource.
func (c *Chassis) Fans(ctx context.Context) ([]board.Fan, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]board.Fan, 0, len(c.fans))
	for i, f := range c.fans {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out = append(out, c.readFan(i, f))
	}
	return out, nil
}

func (c *Chassis) readFan(i int, f *fan) board.Fan {
	r := board.Fan{ID: i + 1, Name: f.prof.Name, MaxRPM: f.prof.MaxRPM, Health: board.HealthOK}
	present, hasPresence := asserted(f.presence)
	if hasPresence && !present {
		return r
	}
	var err error
	if f.ctl != nil {
		var fr pmbus.FanReading
		fr, err = f.ctl.Fan(f.prof.Channel)
		if err == nil && !fr.Installed {
			err = fmt.Errorf("MAX31785 page %d: FAN_CONFIG_1_2 says no fan is installed", f.prof.Channel)
		}
		r.RPM, r.PWM = fr.RPM, int(math.Round(fr.PWM))
		if err == nil && fr.Status&(pmbus.StatusFans|pmbus.StatusCML) != 0 {
			r.Health = board.HealthWarning
		}
	} else {
		var chip *hwmon.Chip
		if chip, err = hwmon.Find(c.hwmonRoot(), f.prof.Hwmon.Name, f.prof.Hwmon.Device); err == nil {
			if r.RPM, err = chip.FanRPM(f.prof.Channel); err == nil && chip.Has(fmt.Sprintf("pwm%d", f.prof.Channel)) {
				r.PWM, err = chip.PWMPercent(f.prof.Channel)
			}
		}
	}
	r.Present = err == nil || hasPresence
	switch {
	case err != nil:
		c.opts.Log.Debug("fan unreadable", "fan", f.prof.Name, "err", err)
		r.Health = board.HealthCritical
	case r.RPM == 0:
		r.Health = board.HealthCritical
	case r.RPM < f.prof.MinRPM:
		r.Health = board.HealthWarning
	}
	return r
}

// Temperatures implements board.TempSource: the profile's hwmon
// temperature sensors (tmp105, lm75 ...). A sensor that cannot be read is
// reported not present, Health Critical (its error is logged at debug
// level); the thresholds are the profile's warningC and criticalC.
func (c *Chassis) Temperatures(ctx context.Context) ([]board.Temp, error) {
	out := make([]board.Temp, 0, len(c.p.Temps))
	for i, t := range c.p.Temps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		r := board.Temp{ID: i + 1, Name: t.Name, Context: tempContext(t.Name), Health: board.HealthOK}
		if t.WarningC != 0 || t.CriticalC != 0 {
			r.Thresholds = &board.Thresholds{}
			if t.WarningC != 0 {
				r.Thresholds.UpperCaution = &t.WarningC
			}
			if t.CriticalC != 0 {
				r.Thresholds.UpperCritical = &t.CriticalC
			}
		}
		chip, err := hwmon.Find(c.hwmonRoot(), t.Hwmon.Name, t.Hwmon.Device)
		if err == nil {
			r.C, err = chip.TempC(t.Channel)
		}
		if err != nil {
			c.opts.Log.Debug("temperature unreadable", "sensor", t.Name, "err", err)
			r.Health = board.HealthCritical
			out = append(out, r)
			continue
		}
		r.Present, r.C = true, round2(r.C)
		r.Health = r.Thresholds.Check(r.C)
		out = append(out, r)
	}
	return out, nil
}

// tempContext guesses where a sensor measures from its name.
func tempContext(name string) string {
	l := strings.ToLower(name)
	switch {
	case strings.Contains(l, "inlet") || strings.Contains(l, "ambient") || strings.Contains(l, "intake"):
		return "Intake"
	case strings.Contains(l, "exhaust") || strings.Contains(l, "outlet"):
		return "Exhaust"
	case strings.Contains(l, "psu") || strings.Contains(l, "power"):
		return "PowerSupply"
	}
	return "SystemBoard"
}

// ErrNoLine is returned for a peer line the profile does not map.
var ErrNoLine = errors.New("the board profile maps no such GPIO line")

// PeerPresent reads the peer module's presence line.
func (c *Chassis) PeerPresent() (bool, error) {
	if c.peerPresent == nil {
		return false, fmt.Errorf("peer.presence: %w", ErrNoLine)
	}
	return c.peerPresent.Asserted()
}

// ResetPeer pulses the peer module's reset line for d.
func (c *Chassis) ResetPeer(d time.Duration) error {
	if c.peerReset == nil {
		return fmt.Errorf("peer.reset: %w", ErrNoLine)
	}
	return c.peerReset.Pulse(d)
}

// Board returns the chassis as a board.Chassis, with nodes from the
// given source (NoNodes{} when the CMC manages none).
func (c *Chassis) Board(nodes board.NodeSource) *board.Chassis {
	if nodes == nil {
		nodes = NoNodes{}
	}
	return &board.Chassis{Name: c.p.Name, FRU: c.fru, Power: c, Fans: c, Temps: c, Nodes: nodes, Close: c.Close}
}

// Close closes the I2C buses.
func (c *Chassis) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for n, b := range c.buses {
		if err := b.Close(); err != nil {
			errs = append(errs, fmt.Errorf("i2c bus %d: %w", n, err))
		}
		delete(c.buses, n)
	}
	return errors.Join(errs...)
}

// NoNodes is a node source for a chassis without managed nodes.
type NoNodes struct{}

// Slots is empty.
func (NoNodes) Slots() []int { return nil }

// Node fails.
func (NoNodes) Node(context.Context, int) (board.Node, error) {
	return board.Node{}, board.ErrNoSuchNode
}

// SEL fails.
func (NoNodes) SEL(context.Context, int) ([]board.SELEntry, error) { return nil, board.ErrNoSuchNode }

// ClearSEL fails.
func (NoNodes) ClearSEL(context.Context, int) error { return board.ErrNoSuchNode }

// Faults fails.
func (NoNodes) Faults(context.Context, int) ([]board.Fault, error) { return nil, board.ErrNoSuchNode }

// ClearFaults fails.
func (NoNodes) ClearFaults(context.Context, int) error { return board.ErrNoSuchNode }

// FRU fails.
func (NoNodes) FRU(context.Context, int) (board.FRU, error) { return board.FRU{}, board.ErrNoSuchNode }

// SetPower fails.
func (NoNodes) SetPower(context.Context, int, board.PowerAction) error { return board.ErrNoSuchNode }
