package hw

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Addr is a 7-bit I2C address, written in JSON as a number or a "0x.."
// string.
type Addr uint16

// UnmarshalJSON accepts 88 or "0x58".
func (a *Addr) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := strconv.ParseUint(s, 0, 16)
	if err != nil {
		return fmt.Errorf("I2C address %s: want a number such as 88 or \"0x58\"", b)
	}
	*a = Addr(v)
	return nil
}

// I2CDev is a device on an I2C bus.
type I2CDev struct {
	Bus  int  `json:"bus"`
	Addr Addr `json:"addr"`
}

// HwmonRef selects a hwmon chip by name and, when needed, its device
// ("5-0058").
type HwmonRef struct {
	Name   string `json:"name"`
	Device string `json:"device,omitempty"`
}

// LineRef is a GPIO line by name (gpio-line-names).
type LineRef struct {
	Line      string `json:"line"`
	ActiveLow bool   `json:"activeLow,omitempty"`
}

// EEPROMRef is a FRU EEPROM: "via": "sysfs" reads the at24 driver's file
// (<sysfs>/bus/i2c/devices/<bus>-00<addr>/eeprom), "i2c" talks AT24 over
// the bus.
type EEPROMRef struct {
	I2CDev
	Size int    `json:"size"` // bytes: 256 for a 24c02, 8192 for a 24c64
	Via  string `json:"via"`  // "sysfs" (default) or "i2c"
}

// PSUProfile is one power supply.
type PSUProfile struct {
	Name      string     `json:"name"`
	CapacityW float64    `json:"capacityW,omitempty"` // default: MFR_POUT_MAX when PMBus
	PMBus     *I2CDev    `json:"pmbus,omitempty"`
	Hwmon     *HwmonRef  `json:"hwmon,omitempty"`
	FRU       *EEPROMRef `json:"fru,omitempty"`
	Presence  *LineRef   `json:"presence,omitempty"`
	PowerGood *LineRef   `json:"powerGood,omitempty"`
}

// FanProfile is one fan.
type FanProfile struct {
	Name     string    `json:"name"`
	MaxRPM   int       `json:"maxRpm"`
	MinRPM   int       `json:"minRpm,omitempty"` // below: Warning; 0 RPM: Critical
	Hwmon    *HwmonRef `json:"hwmon,omitempty"`
	MAX31785 *I2CDev   `json:"max31785,omitempty"`
	// Channel: hwmon fanN/pwmN number (1-based) or MAX31785 page (0-5).
	Channel  int      `json:"channel"`
	Presence *LineRef `json:"presence,omitempty"`
	// DutyPercent, if set, is the speed cmcd commands at start (MAX31785
	// fans: FAN_COMMAND_1), so that the fan runs at a known duty until
	// a fan policy takes over.
	DutyPercent float64 `json:"dutyPercent,omitempty"`
}

// TempProfile is one temperature sensor.
type TempProfile struct {
	Name      string   `json:"name"`
	Hwmon     HwmonRef `json:"hwmon"`
	Channel   int      `json:"channel"` // tempN_input, default 1
	WarningC  float64  `json:"warningC,omitempty"`
	CriticalC float64  `json:"criticalC,omitempty"`
}

// PeerProfile is the other CMC module's lines.
type PeerProfile struct {
	Presence *LineRef `json:"presence,omitempty"`
	Reset    *LineRef `json:"reset,omitempty"`
}

// Profile is a board profile.
type Profile struct {
	Name  string        `json:"name"`
	Sysfs string        `json:"sysfs,omitempty"` // default /sys
	PSUs  []PSUProfile  `json:"psus"`
	Fans  []FanProfile  `json:"fans"`
	Temps []TempProfile `json:"temps,omitempty"`
	FRU   *EEPROMRef    `json:"fru,omitempty"`
	Peer  *PeerProfile  `json:"peer,omitempty"`
	// Nodes is the board/ipmi node configuration file (node BMCs); empty:
	// a chassis without managed nodes.
	Nodes string `json:"nodes,omitempty"`
}

// LoadProfile reads and validates a profile file; unknown keys are errors.
func LoadProfile(path string) (*Profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("board profile: %w", err)
	}
	p, err := ParseProfile(b)
	if err != nil {
		return nil, fmt.Errorf("board profile %s: %w", path, err)
	}
	return p, nil
}

// ParseProfile decodes and validates a profile.
func ParseProfile(b []byte) (*Profile, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var p Profile
	if err := d.Decode(&p); err != nil {
		return nil, err
	}
	if p.Sysfs == "" {
		p.Sysfs = "/sys"
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks the profile; errors name the field.
func (p *Profile) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, a...)))
	}
	if p.Name == "" {
		bad("name", "required")
	}
	i2cdev := func(field string, d *I2CDev) {
		if d.Bus < 0 || d.Bus > 1023 {
			bad(field+".bus", "%d is not an I2C bus number", d.Bus)
		}
		if d.Addr < 0x03 || d.Addr > 0x77 {
			bad(field+".addr", "%#02x is not a 7-bit I2C device address (0x03-0x77)", uint16(d.Addr))
		}
	}
	eeprom := func(field string, e *EEPROMRef) {
		i2cdev(field, &e.I2CDev)
		if e.Size < 8 || e.Size > 65536 || e.Size&(e.Size-1) != 0 {
			bad(field+".size", "%d is not an EEPROM size (a power of two, 8 B-64 KiB)", e.Size)
		}
		if e.Via == "" {
			e.Via = "sysfs"
		}
		if e.Via != "sysfs" && e.Via != "i2c" {
			bad(field+".via", "%q: want \"sysfs\" or \"i2c\"", e.Via)
		}
	}
	line := func(field string, l *LineRef) {
		if l != nil && l.Line == "" {
			bad(field+".line", "a GPIO line name is required")
		}
	}
	hw := func(field string, h *HwmonRef) {
		if h.Name == "" {
			bad(field+".name", "the hwmon chip's name is required")
		}
	}
	names := map[string]string{}
	name := func(field, n string) {
		if n == "" {
			bad(field+".name", "required")
			return
		}
		if prev, ok := names[n]; ok {
			bad(field+".name", "%q is already used by %s", n, prev)
		}
		names[n] = field
	}
	if len(p.PSUs) == 0 {
		bad("psus", "at least one PSU is required")
	}
	for i := range p.PSUs {
		s := &p.PSUs[i]
		f := fmt.Sprintf("psus[%d]", i)
		name(f, s.Name)
		switch {
		case s.PMBus != nil && s.Hwmon != nil:
			bad(f, "give either pmbus or hwmon, not both")
		case s.PMBus != nil:
			i2cdev(f+".pmbus", s.PMBus)
		case s.Hwmon != nil:
			hw(f+".hwmon", s.Hwmon)
		default:
			bad(f, "pmbus {bus, addr} or hwmon {name, device} is required")
		}
		if s.CapacityW < 0 {
			bad(f+".capacityW", "%v is negative", s.CapacityW)
		}
		if s.FRU != nil {
			eeprom(f+".fru", s.FRU)
		}
		line(f+".presence", s.Presence)
		line(f+".powerGood", s.PowerGood)
	}
	for i := range p.Fans {
		fn := &p.Fans[i]
		f := fmt.Sprintf("fans[%d]", i)
		name(f, fn.Name)
		switch {
		case fn.Hwmon != nil && fn.MAX31785 != nil:
			bad(f, "give either hwmon or max31785, not both")
		case fn.Hwmon != nil:
			hw(f+".hwmon", fn.Hwmon)
			if fn.Channel < 1 {
				bad(f+".channel", "%d: hwmon fan channels start at 1 (fan1_input)", fn.Channel)
			}
		case fn.MAX31785 != nil:
			i2cdev(f+".max31785", fn.MAX31785)
			if fn.Channel < 0 || fn.Channel > 5 {
				bad(f+".channel", "%d: MAX31785 fan pages are 0-5", fn.Channel)
			}
		default:
			bad(f, "hwmon {name, device} or max31785 {bus, addr} is required")
		}
		if fn.MaxRPM <= 0 {
			bad(f+".maxRpm", "%d: the fan's rated speed is required", fn.MaxRPM)
		}
		switch {
		case fn.DutyPercent == 0:
		case !(fn.DutyPercent > 0 && fn.DutyPercent <= 100):
			bad(f+".dutyPercent", "%v is outside 0..100", fn.DutyPercent)
		case fn.MAX31785 == nil:
			bad(f+".dutyPercent", "only a max31785 fan can be commanded")
		}
		if fn.MinRPM < 0 || fn.MinRPM > fn.MaxRPM {
			bad(f+".minRpm", "%d is outside 0..maxRpm", fn.MinRPM)
		}
		line(f+".presence", fn.Presence)
	}
	for i := range p.Temps {
		t := &p.Temps[i]
		f := fmt.Sprintf("temps[%d]", i)
		name(f, t.Name)
		hw(f+".hwmon", &t.Hwmon)
		if t.Channel == 0 {
			t.Channel = 1
		}
		if t.Channel < 1 {
			bad(f+".channel", "%d: temp channels start at 1", t.Channel)
		}
		if t.CriticalC != 0 && t.WarningC > t.CriticalC {
			bad(f+".warningC", "%v is above criticalC %v", t.WarningC, t.CriticalC)
		}
	}
	if p.FRU != nil {
		eeprom("fru", p.FRU)
	}
	if p.Peer != nil {
		line("peer.presence", p.Peer.Presence)
		line("peer.reset", p.Peer.Reset)
	}
	return errors.Join(errs...)
}
