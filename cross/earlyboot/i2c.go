package earlyboot

import (
	"fmt"
	"strconv"
	"strings"
)

// I2COp is one step of a board's I2C set-up file (cmd/cmcinit reads
// /etc/i2c-init): bind a kernel driver to a device the device tree does
// not declare, or write bytes to a device before cmcd starts (a
// regulator's VOUT_MODE, its warning limits, CLEAR_FAULTS).
//
//	new BUS TYPE ADDR          echo "TYPE ADDR" > /sys/bus/i2c/devices/i2c-BUS/new_device
//	write BUS ADDR BYTE...     one I2C write of the bytes to ADDR on /dev/i2c-BUS
//
// Numbers are decimal or 0x-prefixed hexadecimal; '#' starts a comment.
type I2COp struct {
	Kind  string // "new" or "write"
	Bus   int
	Type  string // new: the driver's device name (tmp105, 24c02)
	Addr  uint16
	Bytes []byte // write
}

func (o I2COp) String() string {
	if o.Kind == "new" {
		return fmt.Sprintf("new %s at %d-%04x", o.Type, o.Bus, o.Addr)
	}
	return fmt.Sprintf("write % x to %d-%04x", o.Bytes, o.Bus, o.Addr)
}

// ParseI2CInit parses an I2C set-up file; errors name the line.
func ParseI2CInit(text string) ([]I2COp, error) {
	var out []I2COp
	for n, l := range strings.Split(text, "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		bad := func(format string, a ...any) ([]I2COp, error) {
			return nil, fmt.Errorf("i2c-init line %d: %s", n+1, fmt.Sprintf(format, a...))
		}
		num := func(s string, max uint64) (uint64, error) {
			v, err := strconv.ParseUint(s, 0, 64)
			if err != nil || v > max {
				return 0, fmt.Errorf("%q is not a number 0-%#x", s, max)
			}
			return v, nil
		}
		if len(f) < 4 {
			return bad("%q: want \"new BUS TYPE ADDR\" or \"write BUS ADDR BYTE...\"", strings.TrimSpace(l))
		}
		bus, err := num(f[1], 1023)
		if err != nil {
			return bad("bus %v", err)
		}
		op := I2COp{Kind: f[0], Bus: int(bus)}
		addrField := f[2]
		switch f[0] {
		case "new":
			if len(f) != 4 {
				return bad("new takes BUS TYPE ADDR")
			}
			op.Type, addrField = f[2], f[3]
		case "write":
			for _, b := range f[3:] {
				v, err := num(b, 0xff)
				if err != nil {
					return bad("byte %v", err)
				}
				op.Bytes = append(op.Bytes, byte(v))
			}
		default:
			return bad("%q: want new or write", f[0])
		}
		a, err := num(addrField, 0x7f)
		if err != nil || a < 0x03 || a > 0x77 {
			return bad("address %q is not a 7-bit I2C device address (0x03-0x77)", addrField)
		}
		op.Addr = uint16(a)
		out = append(out, op)
	}
	return out, nil
}
