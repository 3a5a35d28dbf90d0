package hw

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	pgpio "periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/i2c/i2ctest"

	"cmcd/board"
	"cmcd/board/gpio"
	"cmcd/board/pmbus"
)

func w(lo, hi byte) []byte { return []byte{lo, hi} }

func block(addr uint16, cmd byte, s string) []i2ctest.IO {
	return []i2ctest.IO{{Addr: addr, W: []byte{cmd}, R: []byte{byte(len(s))}},
		{Addr: addr, W: []byte{cmd}, R: append([]byte{byte(len(s))}, s...)}}
}

// psu1Read is one READ pass of PSU1 (values worked out by hand: LINEAR11
// and LINEAR16 with VOUT_MODE 0x17).
func psu1Read(status []byte, withMode bool) []i2ctest.IO {
	var ops []i2ctest.IO
	if withMode {
		ops = append(ops, i2ctest.IO{Addr: 0x58, W: []byte{pmbus.CmdVoutMode}, R: []byte{0x17}})
	}
	return append(ops,
		i2ctest.IO{Addr: 0x58, W: []byte{pmbus.CmdStatusWord}, R: status},
		i2ctest.IO{Addr: 0x58, W: []byte{pmbus.CmdReadVin}, R: w(0xcc, 0xf9)},       // 230 V
		i2ctest.IO{Addr: 0x58, W: []byte{pmbus.CmdReadIin}, R: w(0x80, 0xc1)},       // 1.5 A
		i2ctest.IO{Addr: 0x58, W: []byte{pmbus.CmdReadVout}, R: w(0x00, 0x18)},      // 12 V
		i2ctest.IO{Addr: 0x58, W: []byte{pmbus.CmdReadIout}, R: w(0xa5, 0xf0)},      // 41.25 A
		i2ctest.IO{Addr: 0x58, W: []byte{pmbus.CmdReadPin}, R: w(0x08, 0x02)},       // 520 W
		i2ctest.IO{Addr: 0x58, W: []byte{pmbus.CmdReadPout}, R: w(0xef, 0x01)},      // 495 W
		i2ctest.IO{Addr: 0x58, W: []byte{pmbus.CmdReadTemp1}, R: w(0x47, 0xf8)},     // 35.5 C
		i2ctest.IO{Addr: 0x58, W: []byte{pmbus.CmdReadFanSpeed1}, R: w(0x1c, 0x22)}, // 8640 RPM
	)
}

func fan5Read(rpm uint16) []i2ctest.IO {
	return []i2ctest.IO{
		{Addr: 0x53, W: []byte{pmbus.CmdPage, 0}},
		{Addr: 0x53, W: []byte{pmbus.CmdFanConfig12}, R: []byte{0x90}},
		{Addr: 0x53, W: []byte{pmbus.CmdReadFanSpeed1}, R: w(byte(rpm), byte(rpm>>8))},
		{Addr: 0x53, W: []byte{pmbus.CmdMfrReadFanPWM}, R: w(0x1c, 0x25)}, // 9500 -> 95 %
		{Addr: 0x53, W: []byte{pmbus.CmdStatusWord}, R: w(0, 0)},
	}
}

type rig struct {
	buses map[int]*i2ctest.Playback
	pins  map[string]*gpiotest.Pin
	slept time.Duration
}

func newRig(t *testing.T) (*rig, *Chassis) {
	t.Helper()
	r := &rig{buses: map[int]*i2ctest.Playback{}, pins: map[string]*gpiotest.Pin{
		"psu1-present-n": {N: "psu1-present-n", L: pgpio.Low},
		"psu1-pgood":     {N: "psu1-pgood", L: pgpio.High},
		"peer-present-n": {N: "peer-present-n", L: pgpio.High},
		"peer-reset-n":   {N: "peer-reset-n", L: pgpio.High},
	}}
	p, err := LoadProfile("testdata/profile.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(p, Options{
		OpenBus: func(n int) (i2c.BusCloser, error) {
			b := &i2ctest.Playback{DontPanic: true}
			r.buses[n] = b
			return b, nil
		},
		Line: func(name string, activeLow bool) (*gpio.Line, error) {
			pin, ok := r.pins[name]
			if !ok {
				return nil, fmt.Errorf("no line %q", name)
			}
			return &gpio.Line{Name: name, Pin: pin, ActiveLow: activeLow, Sleep: func(d time.Duration) { r.slept += d }}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return r, c
}

// expect queues ops on a bus and returns a check that all were consumed.
func (r *rig) expect(t *testing.T, bus int, ops ...[]i2ctest.IO) {
	t.Helper()
	b := r.buses[bus]
	b.Lock()
	b.Ops, b.Count = nil, 0
	for _, o := range ops {
		b.Ops = append(b.Ops, o...)
	}
	b.Unlock()
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("bus %d: %v", bus, err)
		}
	})
}

// TestChassisFromProfile: the fixture sysfs tree plus I2C playbacks give
// the PSU, fan, temperature and FRU readings the profile maps.
func TestChassisFromProfile(t *testing.T) {
	r, c := newRig(t)
	ctx := context.Background()
	var ident []i2ctest.IO
	for _, x := range []struct {
		cmd byte
		s   string
	}{{pmbus.CmdMfrID, "Acme"}, {pmbus.CmdMfrModel, "PWS-1600-X"}, {pmbus.CmdMfrRevision, "A2"}, {pmbus.CmdMfrSerial, "IGNORED-FRU-WINS"}} {
		ident = append(ident, block(0x58, x.cmd, x.s)...)
	}
	r.expect(t, 7, ident, psu1Read(w(0, 0), true))
	psus, err := c.PSUs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []board.PSU{
		{ID: 1, Name: "PSU1", Model: "PWS-1600", Serial: "PSU1-SN-77", Firmware: "03", CapacityW: 1600, Present: true, PowerGood: true,
			InputV: 230, OutputV: 12, OutputA: 41.25, OutputW: 495, TempC: 35.5, Health: board.HealthOK},
		{ID: 2, Name: "PSU2", CapacityW: 1600, Present: true, PowerGood: true,
			InputV: 229.5, OutputV: 12.05, OutputA: 40.13, OutputW: 483.5, TempC: 36, Health: board.HealthOK},
	}
	for i := range want {
		if psus[i] != want[i] {
			t.Errorf("PSU %d:\n got %+v\nwant %+v", i+1, psus[i], want[i])
		}
	}

	r.expect(t, 6, fan5Read(10500))
	fans, err := c.Fans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantFans := []board.Fan{
		{ID: 1, Name: "Fan1", Present: true, RPM: 9100, MaxRPM: 12000, PWM: 43, Health: board.HealthOK},
		{ID: 2, Name: "Fan2", Present: true, RPM: 9200, MaxRPM: 12000, PWM: 47, Health: board.HealthOK},
		{ID: 3, Name: "Fan3", Present: true, RPM: 9300, MaxRPM: 12000, PWM: 51, Health: board.HealthWarning}, // under minRpm 9350
		{ID: 4, Name: "Fan4", Present: false, MaxRPM: 12000, Health: board.HealthCritical},                   // fan5_input is garbage
		{ID: 5, Name: "Fan5", Present: true, RPM: 10500, MaxRPM: 16000, PWM: 95, Health: board.HealthOK},
	}
	for i := range wantFans {
		if fans[i] != wantFans[i] {
			t.Errorf("fan %d:\n got %+v\nwant %+v", i+1, fans[i], wantFans[i])
		}
	}

	temps, err := c.Temperatures(ctx)
	if err != nil || len(temps) != 2 || temps[0].C != 31.25 || temps[0].Health != board.HealthWarning || !temps[0].Present ||
		temps[1].C != -5.5 || temps[1].Health != board.HealthOK || temps[0].ID != 1 || temps[1].ID != 2 {
		t.Errorf("temps %+v %v", temps, err)
	} else if temps[0].Context != "Intake" || temps[1].Context != "Exhaust" || temps[1].Thresholds != nil ||
		*temps[0].Thresholds.UpperCaution != 30 || *temps[0].Thresholds.UpperCritical != 45 {
		t.Errorf("temps context/thresholds %+v", temps)
	}
	f := c.FRU()
	if f.ChassisSerial != "CH0001234" || f.ProductName != "Chassis 2U4N" || f.AssetTag != "rack7-u12" ||
		!f.BoardMfgDate.Equal(time.Date(2025, 6, 1, 8, 30, 0, 0, time.UTC)) || len(c.FRUProblems) != 0 {
		t.Errorf("chassis FRU %+v problems %v", f, c.FRUProblems)
	}
	b := c.Board(nil)
	if b.FRU != f || b.Name != "cmc-2u4n" || len(b.Nodes.Slots()) != 0 {
		t.Errorf("board.Chassis %+v", b)
	}
}

// TestFaultsAndPresence: a PSU that reports POWER_GOOD#/OFF/VIN_UV and
// drops its power-good line is Critical; a pulled PSU (presence line
// inactive) is absent and its bus is not touched; the peer's lines.
func TestFaultsAndPresence(t *testing.T) {
	r, c := newRig(t)
	ctx := context.Background()
	var ident []i2ctest.IO
	for _, cmd := range []byte{pmbus.CmdMfrID, pmbus.CmdMfrModel, pmbus.CmdMfrRevision, pmbus.CmdMfrSerial} {
		ident = append(ident, block(0x58, cmd, "X")...)
	}
	r.expect(t, 7, ident, psu1Read(w(0x48, 0x08), true))
	r.pins["psu1-pgood"].L = pgpio.Low
	psus, _ := c.PSUs(ctx)
	if p := psus[0]; !p.Present || p.PowerGood || p.Health != board.HealthCritical {
		t.Errorf("faulted PSU1 %+v", p)
	}
	r.pins["psu1-present-n"].L = pgpio.High // pulled: no bus traffic expected
	psus, _ = c.PSUs(ctx)
	if p := psus[0]; p.Present || p.OutputW != 0 {
		t.Errorf("pulled PSU1 %+v", p)
	}
	if on, err := c.PeerPresent(); err != nil || on {
		t.Errorf("peer present %v %v", on, err)
	}
	r.pins["peer-present-n"].L = pgpio.Low
	if on, _ := c.PeerPresent(); !on {
		t.Error("peer presence not seen")
	}
	if err := c.ResetPeer(100 * time.Millisecond); err != nil || r.slept != 100*time.Millisecond || r.pins["peer-reset-n"].L != pgpio.High {
		t.Errorf("reset pulse: %v slept %v level after %v", err, r.slept, r.pins["peer-reset-n"].L)
	}
}

func TestProfileValidation(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"name":"x","psus":[{"name":"P","pmbus":{"bus":1,"addr":"0x88"}}]}`, "psus[0].pmbus.addr: 0x88 is not a 7-bit"},
		{`{"name":"x","psus":[{"name":"P","pmbus":{"bus":1,"addr":"zz"}}]}`, "I2C address"},
		{`{"name":"x","psus":[{"name":"P"}]}`, "psus[0]: pmbus {bus, addr} or hwmon"},
		{`{"name":"x","psus":[{"name":"P","hwmon":{"name":"pmbus"}}],"fans":[{"name":"F","hwmon":{"name":"m"},"channel":0,"maxRpm":1}]}`, "fans[0].channel: 0: hwmon fan channels start at 1"},
		{`{"name":"x","psus":[{"name":"P","hwmon":{"name":"pmbus"}}],"fans":[{"name":"P","max31785":{"bus":1,"addr":82},"channel":6,"maxRpm":100}]}`, "fans[0].channel: 6"},
		{`{"name":"x","psus":[{"name":"P","hwmon":{"name":"pmbus"}}],"fans":[{"name":"P","max31785":{"bus":1,"addr":82},"maxRpm":100}]}`, `fans[0].name: "P" is already used by psus[0]`},
		{`{"name":"x","psus":[{"name":"P","hwmon":{"name":"pmbus"},"fru":{"bus":1,"addr":80,"size":300}}]}`, "psus[0].fru.size: 300"},
		{`{"name":"x","psus":[{"name":"P","hwmon":{"name":"pmbus"}}],"fru":{"bus":1,"addr":80,"size":256,"via":"spi"}}`, `fru.via: "spi"`},
		{`{"name":"x","psus":[{"name":"P","hwmon":{"name":"pmbus"}}],"peer":{"reset":{"activeLow":true}}}`, "peer.reset.line"},
		{`{"name":"x","psus":[],"bogus":1}`, "unknown field \"bogus\""},
		{`{"name":"x","psus":[{"name":"P","hwmon":{"name":"pmbus"}}],"fans":[{"name":"F","max31785":{"bus":1,"addr":82},"maxRpm":100,"dutyPercent":120}]}`, "fans[0].dutyPercent: 120 is outside 0..100"},
		{`{"name":"x","psus":[{"name":"P","hwmon":{"name":"pmbus"}}],"fans":[{"name":"F","hwmon":{"name":"m"},"channel":1,"maxRpm":100,"dutyPercent":40}]}`, "fans[0].dutyPercent: only a max31785 fan"},
		{`{"psus":[]}`, "name: required"},
	} {
		_, err := ParseProfile([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n  error %v\n  want  %q", c.json, err, c.want)
		}
	}
	if _, err := LoadProfile("testdata/profile.json"); err != nil {
		t.Errorf("fixture profile: %v", err)
	}
	// A line the board lacks is an error naming the field.
	p, _ := LoadProfile("testdata/profile.json")
	_, err := Open(p, Options{OpenBus: func(int) (i2c.BusCloser, error) { return &i2ctest.Playback{}, nil },
		Line: func(n string, _ bool) (*gpio.Line, error) { return nil, fmt.Errorf("no line %q", n) }})
	if err == nil || !strings.Contains(err.Error(), "psus[0].presence.line") {
		t.Errorf("missing line: %v", err)
	}
}
