package pmbus

import (
	"fmt"
	"math"

	"periph.io/x/conn/v3/i2c"
)

// Command codes (PMBus 1.3 part II).
const (
	CmdPage          = 0x00
	CmdVoutMode      = 0x20
	CmdFanConfig12   = 0x3a
	CmdFanCommand1   = 0x3b
	CmdStatusWord    = 0x79
	CmdReadVin       = 0x88
	CmdReadIin       = 0x89
	CmdReadVout      = 0x8b
	CmdReadIout      = 0x8c
	CmdReadTemp1     = 0x8d
	CmdReadFanSpeed1 = 0x90
	CmdReadPout      = 0x96
	CmdReadPin       = 0x97
	CmdMfrID         = 0x99
	CmdMfrModel      = 0x9a
	CmdMfrRevision   = 0x9b
	CmdMfrSerial     = 0x9e
	CmdMfrPoutMax    = 0xa7
)

// Dev is one PMBus device on an I2C bus.
type Dev struct {
	d i2c.Dev
}

// New returns the device at addr (7-bit) on bus.
func New(bus i2c.Bus, addr uint16) *Dev { return &Dev{d: i2c.Dev{Bus: bus, Addr: addr}} }

func (d *Dev) String() string { return fmt.Sprintf("PMBus device %#02x on %s", d.d.Addr, d.d.Bus) }

// ReadByteData reads a one-byte register.
func (d *Dev) ReadByteData(cmd byte) (byte, error) {
	var r [1]byte
	if err := d.d.Tx([]byte{cmd}, r[:]); err != nil {
		return 0, fmt.Errorf("%s: read byte %#02x: %w", d, cmd, err)
	}
	return r[0], nil
}

// ReadWordData reads a two-byte register (SMBus order: low byte first).
func (d *Dev) ReadWordData(cmd byte) (uint16, error) {
	var r [2]byte
	if err := d.d.Tx([]byte{cmd}, r[:]); err != nil {
		return 0, fmt.Errorf("%s: read word %#02x: %w", d, cmd, err)
	}
	return uint16(r[0]) | uint16(r[1])<<8, nil
}

// WriteByteData writes a one-byte register.
func (d *Dev) WriteByteData(cmd, v byte) error {
	if err := d.d.Tx([]byte{cmd, v}, nil); err != nil {
		return fmt.Errorf("%s: write byte %#02x: %w", d, cmd, err)
	}
	return nil
}

// WriteWordData writes a two-byte register.
func (d *Dev) WriteWordData(cmd byte, v uint16) error {
	if err := d.d.Tx([]byte{cmd, byte(v), byte(v >> 8)}, nil); err != nil {
		return fmt.Errorf("%s: write word %#02x: %w", d, cmd, err)
	}
	return nil
}

// ReadBlock reads an SMBus block: a count byte, then that many bytes. The
// count is read first (the i2c-dev interface cannot size a read by the
// device's count byte), then the whole block.
func (d *Dev) ReadBlock(cmd byte) ([]byte, error) {
	n, err := d.ReadByteData(cmd)
	if err != nil {
		return nil, err
	}
	if n == 0 || n > 32 {
		return nil, fmt.Errorf("%s: block %#02x: count %d (want 1..32)", d, cmd, n)
	}
	r := make([]byte, 1+int(n))
	if err := d.d.Tx([]byte{cmd}, r); err != nil {
		return nil, fmt.Errorf("%s: read block %#02x: %w", d, cmd, err)
	}
	if r[0] != n {
		return nil, fmt.Errorf("%s: block %#02x: count changed from %d to %d between reads", d, cmd, n, r[0])
	}
	return r[1:], nil
}

// SetPage selects the page (rail, or fan of a fan controller) the
// following commands address.
func (d *Dev) SetPage(p byte) error { return d.WriteByteData(CmdPage, p) }

// Linear11 decodes the LINEAR11 format: a signed 5-bit exponent (bits
// 15:11) and a signed 11-bit mantissa.
func Linear11(v uint16) float64 {
	exp := int(int16(v) >> 11)
	mant := int(int16(v<<5) >> 5)
	return math.Ldexp(float64(mant), exp)
}

// EncodeLinear11 encodes x in LINEAR11 with the largest mantissa that
// fits (the best precision).
func EncodeLinear11(x float64) (uint16, error) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, fmt.Errorf("LINEAR11: %v cannot be encoded", x)
	}
	for exp := -16; exp <= 15; exp++ {
		m := math.Round(math.Ldexp(x, -exp))
		if m >= -1024 && m <= 1023 {
			return uint16(exp&0x1f)<<11 | uint16(int(m)&0x7ff), nil
		}
	}
	return 0, fmt.Errorf("LINEAR11: %v is out of range", x)
}

// VoutMode is the VOUT_MODE register: the data format of output
// voltages.
type VoutMode byte

// Linear16 decodes an output-voltage word in the format VOUT_MODE gives:
// LINEAR16 (mode 000: an unsigned mantissa times 2^exponent, the
// exponent a signed 5-bit field of VOUT_MODE). VID and direct modes need
// device-specific tables and are refused.
func (m VoutMode) Linear16(v uint16) (float64, error) {
	if mode := byte(m) >> 5; mode != 0 {
		return 0, fmt.Errorf("VOUT_MODE %#02x: mode %03b is not LINEAR16 (VID and direct formats are not supported)", byte(m), mode)
	}
	exp := int(int8(byte(m)<<3) >> 3)
	return math.Ldexp(float64(v), exp), nil
}

// EncodeLinear16 encodes volts for this VOUT_MODE.
func (m VoutMode) EncodeLinear16(volts float64) (uint16, error) {
	if byte(m)>>5 != 0 {
		return 0, fmt.Errorf("VOUT_MODE %#02x is not LINEAR16", byte(m))
	}
	exp := int(int8(byte(m)<<3) >> 3)
	x := math.Round(math.Ldexp(volts, -exp))
	if x < 0 || x > 0xffff {
		return 0, fmt.Errorf("LINEAR16: %v V does not fit with exponent %d", volts, exp)
	}
	return uint16(x), nil
}

// ReadLinear11 reads a LINEAR11 register.
func (d *Dev) ReadLinear11(cmd byte) (float64, error) {
	v, err := d.ReadWordData(cmd)
	if err != nil {
		return 0, err
	}
	return Linear11(v), nil
}
