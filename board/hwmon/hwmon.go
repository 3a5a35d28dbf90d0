package hwmon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// DefaultRoot is where Linux lists hwmon devices.
const DefaultRoot = "/sys/class/hwmon"

// ErrNotFound is wrapped when no chip matches.
var ErrNotFound = errors.New("hwmon chip not found")

// Chip is one hwmon device directory.
type Chip struct {
	Dir    string
	Name   string
	Device string // basename of the device link ("3-004c"), may be empty
}

// I2CDevice is the sysfs name of an I2C client: bus 3, address 0x4c gives
// "3-004c".
func I2CDevice(bus int, addr uint16) string { return fmt.Sprintf("%d-%04x", bus, addr) }

// List returns every chip under root (hwmon* entries), sorted by directory.
func List(root string) ([]Chip, error) {
	if root == "" {
		root = DefaultRoot
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("hwmon: %w", err)
	}
	var chips []Chip
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "hwmon") {
			continue
		}
		dir := filepath.Join(root, e.Name())
		name, err := os.ReadFile(filepath.Join(dir, "name"))
		if err != nil {
			continue
		}
		c := Chip{Dir: dir, Name: strings.TrimSpace(string(name))}
		if l, err := filepath.EvalSymlinks(filepath.Join(dir, "device")); err == nil {
			c.Device = filepath.Base(l)
		}
		chips = append(chips, c)
	}
	sort.Slice(chips, func(i, j int) bool { return chips[i].Dir < chips[j].Dir })
	return chips, nil
}

// Find returns the chip called name (and, if device is not empty, bound
// to that device). Exactly one chip must match.
func Find(root, name, device string) (*Chip, error) {
	chips, err := List(root)
	if err != nil {
		return nil, err
	}
	var found []Chip
	for _, c := range chips {
		if c.Name == name && (device == "" || c.Device == device) {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		if device != "" {
			return nil, fmt.Errorf("hwmon: %w: name %q on device %q under %s", ErrNotFound, name, device, root)
		}
		return nil, fmt.Errorf("hwmon: %w: name %q under %s", ErrNotFound, name, root)
	case 1:
		return &found[0], nil
	default:
		return nil, fmt.Errorf("hwmon: %d chips are called %q under %s; give the device (e.g. %q) to choose one", len(found), name, root, found[0].Device)
	}
}

// Int reads an integer attribute file of the chip.
func (c *Chip) Int(attr string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, attr))
	if err != nil {
		return 0, fmt.Errorf("hwmon %s: %w", c.Name, err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("hwmon %s %s: %q is not an integer", c.Name, attr, strings.TrimSpace(string(b)))
	}
	return v, nil
}

// Has reports whether the chip has the attribute.
func (c *Chip) Has(attr string) bool {
	_, err := os.Stat(filepath.Join(c.Dir, attr))
	return err == nil
}

// FanRPM reads fanN_input.
func (c *Chip) FanRPM(n int) (int, error) {
	v, err := c.Int(fmt.Sprintf("fan%d_input", n))
	return int(v), err
}

// PWMPercent reads pwmN (0-255) as a percentage.
func (c *Chip) PWMPercent(n int) (int, error) {
	v, err := c.Int(fmt.Sprintf("pwm%d", n))
	if err != nil {
		return 0, err
	}
	if v < 0 || v > 255 {
		return 0, fmt.Errorf("hwmon %s pwm%d: %d is outside 0-255", c.Name, n, v)
	}
	return int((v*100 + 127) / 255), nil
}

// TempC reads tempN_input (millidegrees) in degrees Celsius.
func (c *Chip) TempC(n int) (float64, error) {
	v, err := c.Int(fmt.Sprintf("temp%d_input", n))
	return float64(v) / 1000, err
}

// Volts reads inN_input (mV).
func (c *Chip) Volts(n int) (float64, error) {
	v, err := c.Int(fmt.Sprintf("in%d_input", n))
	return float64(v) / 1000, err
}

// Amps reads currN_input (mA).
func (c *Chip) Amps(n int) (float64, error) {
	v, err := c.Int(fmt.Sprintf("curr%d_input", n))
	return float64(v) / 1000, err
}

// Watts reads powerN_input (µW).
func (c *Chip) Watts(n int) (float64, error) {
	v, err := c.Int(fmt.Sprintf("power%d_input", n))
	return float64(v) / 1e6, err
}

// Labeled returns the channel number of kind ("in", "curr", "power",
// "temp", "fan") whose label file reads label ("vin", "iout1", ...).
func (c *Chip) Labeled(kind, label string) (int, error) {
	for n := 0; n <= 32; n++ {
		b, err := os.ReadFile(filepath.Join(c.Dir, fmt.Sprintf("%s%d_label", kind, n)))
		if err == nil && strings.TrimSpace(string(b)) == label {
			return n, nil
		}
	}
	return 0, fmt.Errorf("hwmon %s: no %s channel labelled %q", c.Name, kind, label)
}
