package pmbus

import (
	"math"
	"slices"
	"strings"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
)

// Register values below were worked out by hand from the PMBus spec, not
// with this package's encoders.
func w(lo, hi byte) []byte { return []byte{lo, hi} }

func psuOps(addr uint16, status []byte) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: addr, W: []byte{CmdVoutMode}, R: []byte{0x17}},       // LINEAR16, exponent -9
		{Addr: addr, W: []byte{CmdStatusWord}, R: status},           //
		{Addr: addr, W: []byte{CmdReadVin}, R: w(0xcc, 0xf9)},       // 460 * 2^-1 = 230 V
		{Addr: addr, W: []byte{CmdReadIin}, R: w(0x80, 0xc1)},       // 384 * 2^-8 = 1.5 A
		{Addr: addr, W: []byte{CmdReadVout}, R: w(0x00, 0x18)},      // 6144 * 2^-9 = 12 V
		{Addr: addr, W: []byte{CmdReadIout}, R: w(0xa5, 0xf0)},      // 165 * 2^-2 = 41.25 A
		{Addr: addr, W: []byte{CmdReadPin}, R: w(0x08, 0x02)},       // 520 W
		{Addr: addr, W: []byte{CmdReadPout}, R: w(0xef, 0x01)},      // 495 W
		{Addr: addr, W: []byte{CmdReadTemp1}, R: w(0x47, 0xf8)},     // 71 * 2^-1 = 35.5 C
		{Addr: addr, W: []byte{CmdReadFanSpeed1}, R: w(0x1c, 0x22)}, // 540 * 2^4 = 8640 RPM
	}
}

func TestPSURead(t *testing.T) {
	bus := &i2ctest.Playback{Ops: psuOps(0x58, w(0, 0)), DontPanic: true}
	p := NewPSU(bus, 0x58)
	r, err := p.Read()
	if err != nil {
		t.Fatal(err)
	}
	want := Readings{VinV: 230, IinA: 1.5, VoutV: 12, IoutA: 41.25, PinW: 520, PoutW: 495, TempC: 35.5, FanRPM: 8640}
	if r != want {
		t.Errorf("readings %+v\nwant     %+v", r, want)
	}
	if !r.Status.PowerGood() || r.Status.Critical() || r.Status.String() != "OK" {
		t.Errorf("status %v", r.Status)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
	// VOUT_MODE is read once per supply.
	ops := psuOps(0x58, w(0x48, 0x08))[1:]
	bus = &i2ctest.Playback{Ops: ops, DontPanic: true}
	p.Dev = New(bus, 0x58)
	r, err = p.Read()
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Status.Faults(); !slices.Equal(got, []string{"POWER_GOOD#", "OFF", "VIN_UV_FAULT"}) || r.Status.PowerGood() || !r.Status.Critical() {
		t.Errorf("faults %v power good %v", got, r.Status.PowerGood())
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
}

func TestPSUIdent(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x59, W: []byte{CmdMfrID}, R: []byte{4}},
		{Addr: 0x59, W: []byte{CmdMfrID}, R: []byte{4, 'A', 'c', 'm', 'e'}},
		{Addr: 0x59, W: []byte{CmdMfrModel}, R: []byte{6}},
		{Addr: 0x59, W: []byte{CmdMfrModel}, R: []byte{6, 'P', 'S', '-', '8', '0', '0'}},
		{Addr: 0x59, W: []byte{CmdMfrRevision}, R: []byte{2}},
		{Addr: 0x59, W: []byte{CmdMfrRevision}, R: []byte{2, 'A', '1'}},
		{Addr: 0x59, W: []byte{CmdMfrSerial}, R: []byte{0}},      // not programmed
		{Addr: 0x59, W: []byte{CmdMfrPoutMax}, R: w(0x20, 0x03)}, // 800 W
	}}
	p := NewPSU(bus, 0x59)
	id, err := p.Ident()
	if err == nil {
		t.Error("an empty MFR_SERIAL block was not reported")
	}
	if id != (Ident{Mfr: "Acme", Model: "PS-800", Revision: "A1"}) {
		t.Errorf("ident %+v", id)
	}
	if w, err := p.MaxPowerW(); err != nil || w != 800 {
		t.Errorf("max power %v %v", w, err)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
}

func TestLinearFormats(t *testing.T) {
	for _, c := range []struct {
		v    uint16
		want float64
	}{{0x03ff, 1023}, {0x07ff, -1}, {0x0400, -1024}, {0x83ff, 1023.0 / 65536}, {0xffff, -0.5}, {0x7bff, 1023 << 15}, {0, 0}} {
		if got := Linear11(c.v); got != c.want {
			t.Errorf("Linear11(%#04x) = %v, want %v", c.v, got, c.want)
		}
	}
	for _, x := range []float64{0, 1, -1, 12.0, 0.001, 230.5, -40.25, 60000, 33.3333} {
		v, err := EncodeLinear11(x)
		if err != nil {
			t.Fatal(err)
		}
		if got := Linear11(v); math.Abs(got-x) > math.Abs(x)/100+1e-6 {
			t.Errorf("LINEAR11 %v -> %#04x -> %v", x, v, got)
		}
	}
	if _, err := EncodeLinear11(1e12); err == nil {
		t.Error("1e12 encoded")
	}
	if v, err := VoutMode(0x17).Linear16(0x1800); err != nil || v != 12 {
		t.Errorf("LINEAR16 12 V: %v %v", v, err)
	}
	if v, _ := VoutMode(0x1c).Linear16(0x0c00); v != 192 { // exponent -4: 3072/16
		t.Errorf("LINEAR16 exp -4: %v", v)
	}
	if v, _ := VoutMode(0x02).Linear16(3); v != 12 { // exponent +2
		t.Errorf("LINEAR16 exp +2: %v", v)
	}
	if _, err := VoutMode(0x40).Linear16(1); err == nil {
		t.Error("direct-mode VOUT accepted as LINEAR16")
	}
	if v, err := VoutMode(0x17).EncodeLinear16(3.3); err != nil || v != 1690 {
		t.Errorf("encode 3.3 V: %v %v", v, err)
	}
}

func TestMAX31785(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x52, W: []byte{CmdPage, 3}},
		{Addr: 0x52, W: []byte{CmdFanConfig12}, R: []byte{0x90}},    // installed, PWM mode, 2 pulses
		{Addr: 0x52, W: []byte{CmdReadFanSpeed1}, R: w(0x10, 0x27)}, // 10000 RPM
		{Addr: 0x52, W: []byte{CmdMfrReadFanPWM}, R: w(0x94, 0x11)}, // 4500 -> 45 %
		{Addr: 0x52, W: []byte{CmdStatusWord}, R: w(0x00, 0x04)},    // FANS
	}}
	m := NewMAX31785(bus, 0x52)
	f, err := m.Fan(3)
	if err != nil {
		t.Fatal(err)
	}
	if f != (FanReading{Installed: true, RPM: 10000, PWM: 45, Status: StatusFans}) {
		t.Errorf("fan %+v", f)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
	if _, err := m.Fan(6); err == nil {
		t.Error("channel 6 accepted")
	}
}

// TestMAX31785SetDuty: FAN_COMMAND_1 in hundredths of a percent in PWM
// mode, a target speed in RPM mode, after selecting the page.
func TestMAX31785SetDuty(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true, Ops: []i2ctest.IO{
		{Addr: 0x52, W: []byte{CmdPage, 2}},
		{Addr: 0x52, W: []byte{CmdFanConfig12}, R: []byte{0x90}}, // PWM mode
		{Addr: 0x52, W: []byte{CmdFanCommand1, 0xa0, 0x0f}},      // 4000 = 40.00 %
		{Addr: 0x52, W: []byte{CmdPage, 5}},
		{Addr: 0x52, W: []byte{CmdFanConfig12}, R: []byte{0xd0}}, // RPM mode
		{Addr: 0x52, W: []byte{CmdFanCommand1, 0xc0, 0x12}},      // 40 % of 12000 = 4800 RPM
	}}
	m := NewMAX31785(bus, 0x52)
	if err := m.SetDuty(2, 40, 12000); err != nil {
		t.Fatal(err)
	}
	if err := m.SetDuty(5, 40, 12000); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Error(err)
	}
	for _, bad := range []float64{-1, 101, math.NaN()} {
		if err := m.SetDuty(0, bad, 12000); err == nil {
			t.Errorf("duty %v accepted", bad)
		}
	}
	if err := m.SetDuty(6, 40, 12000); err == nil {
		t.Error("channel 6 accepted")
	}
}

func TestBusErrorsNamed(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true} // no device answers
	_, err := NewPSU(bus, 0x58).Read()
	if err == nil {
		t.Fatal("read from an empty bus succeeded")
	}
	if got := err.Error(); !strings.Contains(got, "0x58") || !strings.Contains(got, "0x20") {
		t.Errorf("error %q does not name the device and command", got)
	}
}
