package pmbus

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"periph.io/x/conn/v3/i2c"
)

// PSU is a PMBus power supply.
type PSU struct {
	*Dev
	mode    VoutMode
	modeSet bool
}

// NewPSU returns the supply at addr on bus.
func NewPSU(bus i2c.Bus, addr uint16) *PSU { return &PSU{Dev: New(bus, addr)} }

// Readings are a supply's live values.
type Readings struct {
	VinV, IinA, VoutV, IoutA, PinW, PoutW float64
	TempC                                 float64
	FanRPM                                float64
	Status                                Status
}

// Ident is a supply's manufacturer strings; empty when not implemented.
type Ident struct {
	Mfr, Model, Revision, Serial string
}

// VoutMode reads (once) and returns VOUT_MODE.
func (p *PSU) VoutMode() (VoutMode, error) {
	if !p.modeSet {
		m, err := p.ReadByteData(CmdVoutMode)
		if err != nil {
			return 0, err
		}
		p.mode, p.modeSet = VoutMode(m), true
	}
	return p.mode, nil
}

// Read reads STATUS_WORD and every reading, in the order VOUT_MODE,
// STATUS_WORD, VIN, IIN, VOUT, IOUT, PIN, POUT, TEMPERATURE_1,
// FAN_SPEED_1.
func (p *PSU) Read() (Readings, error) {
	var r Readings
	mode, err := p.VoutMode()
	if err != nil {
		return r, err
	}
	sw, err := p.ReadWordData(CmdStatusWord)
	if err != nil {
		return r, err
	}
	r.Status = Status(sw)
	for _, x := range []struct {
		cmd byte
		dst *float64
	}{{CmdReadVin, &r.VinV}, {CmdReadIin, &r.IinA}, {CmdReadVout, nil}, {CmdReadIout, &r.IoutA},
		{CmdReadPin, &r.PinW}, {CmdReadPout, &r.PoutW}, {CmdReadTemp1, &r.TempC}, {CmdReadFanSpeed1, &r.FanRPM}} {
		v, err := p.ReadWordData(x.cmd)
		if err != nil {
			return r, err
		}
		if x.dst == nil {
			if r.VoutV, err = mode.Linear16(v); err != nil {
				return r, fmt.Errorf("%s: READ_VOUT: %w", p, err)
			}
			continue
		}
		*x.dst = Linear11(v)
	}
	return r, nil
}

// Ident reads MFR_ID, MFR_MODEL, MFR_REVISION and MFR_SERIAL.
func (p *PSU) Ident() (Ident, error) {
	var id Ident
	var errs []error
	for _, x := range []struct {
		cmd byte
		dst *string
	}{{CmdMfrID, &id.Mfr}, {CmdMfrModel, &id.Model}, {CmdMfrRevision, &id.Revision}, {CmdMfrSerial, &id.Serial}} {
		b, err := p.ReadBlock(x.cmd)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*x.dst = strings.TrimSpace(string(bytes.TrimRight(b, "\x00\xff")))
	}
	return id, errors.Join(errs...)
}

// MaxPowerW reads MFR_POUT_MAX (the rated output power).
func (p *PSU) MaxPowerW() (float64, error) { return p.ReadLinear11(CmdMfrPoutMax) }
