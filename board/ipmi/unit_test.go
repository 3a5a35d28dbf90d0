package ipmi

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
	"cmcd/board/ipmi/ipmitest"
)

func TestConvertReading(t *testing.T) {
	f := func(m, b int16, bexp, rexp int8) types.ReadingFactors {
		return types.ReadingFactors{M: m, B: b, B_Exp: bexp, R_Exp: rexp}
	}
	u := types.SensorAnalogUnitFormat_Unsigned
	one := types.SensorAnalogUnitFormat_1sComplement
	two := types.SensorAnalogUnitFormat_2sComplement
	for _, c := range []struct {
		name   string
		raw    uint8
		format types.SensorAnalogUnitFormat
		f      types.ReadingFactors
		lin    types.LinearizationFunc
		want   float64
	}{
		{"linear", 25, u, f(1, 0, 0, 0), 0, 25},
		{"scaled", 200, u, f(6, 0, 0, -2), 0, 12},
		{"offset", 10, u, f(2, 5, 1, 0), 0, 70},        // 2*10 + 5*10
		{"offset rexp", 10, u, f(2, 5, 1, -1), 0, 7},   // (20+50)/10
		{"negative M", 10, u, f(-3, 100, 0, 0), 0, 70}, // -30 + 100
		{"two's complement", 0xf6, two, f(1, 0, 0, 0), 0, -10},
		{"one's complement", 0xf5, one, f(1, 0, 0, 0), 0, -10},
		{"one's complement +", 0x05, one, f(1, 0, 0, 0), 0, 5},
		{"sqr", 12, u, f(1, 0, 0, 0), 0x08, 144},
		{"cube", 3, u, f(1, 0, 0, 0), 0x09, 27},
		{"sqrt", 81, u, f(1, 0, 0, 0), 0x0a, 9},
		{"cbrt", 64, u, f(1, 0, 0, 0), 0x0b, 4},
		{"1/x", 4, u, f(1, 0, 0, 0), 0x07, 0.25},
		{"exp10", 2, u, f(1, 0, 0, 0), 0x05, 100},
		{"exp10 fraction", 5, u, f(1, 0, 0, -1), 0x05, math.Round(math.Sqrt(10)*1e6) / 1e6},
		{"exp2", 10, u, f(1, 0, 0, 0), 0x06, 1024},
		{"log10", 100, u, f(1, 0, 0, 0), 0x02, 2},
		{"log2", 32, u, f(1, 0, 0, 0), 0x03, 5},
		{"ln of 0 is not a number", 0, u, f(1, 0, 0, 0), 0x01, 0},
		{"non-linear as given", 50, u, f(2, 0, 0, 0), 0x70, 100},
		{"float noise", 3, u, f(1, 0, 0, -1), 0, 0.3},
	} {
		if got := convertReading(c.raw, c.format, c.f, c.lin); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Second, Max: 10 * time.Second}
	for i, want := range []time.Duration{1, 2, 4, 8, 10, 10} {
		if got := b.delay(i + 1); got != want*time.Second {
			t.Errorf("failure %d: %s, want %ss", i+1, got, want)
		}
	}
	if got := (Backoff{}).delay(100); got != DefaultBackoff.Min {
		t.Errorf("zero backoff: %s", got)
	}
	if got := (Backoff{Min: time.Hour, Max: 1 << 62}).delay(200); got <= 0 {
		t.Errorf("overflow: %s", got)
	}
}

func TestParseFRU(t *testing.T) {
	want := ipmitest.FRU{
		ChassisType: 0x1c, ChassisPart: "CP", ChassisSerial: "CS",
		BoardMfgDate: time.Date(2020, 2, 29, 23, 59, 0, 0, time.UTC),
		BoardMfg:     "BM", BoardProduct: "BP", BoardSerial: "BS", BoardPart: "BPN",
		ProductMfg: "PM", ProductName: "PN", ProductPart: "PP", ProductVersion: "PV", ProductSerial: "PS", AssetTag: "AT",
	}
	img := want.Image()
	f, err := parseFRU(img)
	if err != nil {
		t.Fatal(err)
	}
	got := board.FRU{ChassisType: "Blade", ChassisPart: "CP", ChassisSerial: "CS", BoardMfg: "BM", BoardProduct: "BP",
		BoardSerial: "BS", BoardPart: "BPN", BoardMfgDate: want.BoardMfgDate, ProductMfg: "PM", ProductName: "PN",
		ProductPart: "PP", ProductVersion: "PV", ProductSerial: "PS", AssetTag: "AT"}
	if f != got {
		t.Errorf("parsed %+v\nwant   %+v", f, got)
	}
	bad := append([]byte(nil), img...)
	bad[20] ^= 0xff // inside the chassis area
	if _, err := parseFRU(bad); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("corrupt area: %v", err)
	}
	bad = append([]byte(nil), img...)
	bad[1] = 1
	if _, err := parseFRU(bad); err == nil {
		t.Error("corrupt header accepted")
	}
	if _, err := parseFRU(img[:5]); err == nil {
		t.Error("short image accepted")
	}
	if _, err := parseFRU(img[:40]); err == nil {
		t.Error("truncated image accepted")
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		stype, etype, offset uint8
		sev                  board.Severity
		code                 string
	}{
		{0x01, 0x01, 0x09, board.SeverityCritical, "TEMP_UPPER_CRITICAL"},
		{0x01, 0x01, 0x07, board.SeverityWarning, "TEMP_UPPER_NON_CRITICAL"},
		{0x02, 0x01, 0x02, board.SeverityCritical, "VOLTAGE_LOWER_CRITICAL"},
		{0x04, 0x01, 0x00, board.SeverityWarning, "FAN_LOWER_NON_CRITICAL"},
		{0x08, 0x6f, 0x01, board.SeverityCritical, "PSU_FAILURE"},
		{0x08, 0x6f, 0x00, board.SeverityOK, ""}, // presence
		{0x0c, 0x6f, 0x00, board.SeverityWarning, "MEM_CORRECTABLE_ECC"},
		{0x0c, 0x6f, 0x01, board.SeverityCritical, "MEM_UNCORRECTABLE_ECC"},
		{0x07, 0x6f, 0x00, board.SeverityCritical, "CPU_IERR"},
		{0x07, 0x6f, 0x07, board.SeverityOK, ""},
		{0x08, 0x0b, 0x01, board.SeverityWarning, "PSU_REDUNDANCY_LOST"},
		{0x04, 0x07, 0x02, board.SeverityCritical, "FAN_SEVERITY_CRITICAL"},
		{0x12, 0x6f, 0x01, board.SeverityOK, ""},
	} {
		got := classify(c.stype, c.etype, c.offset)
		if got.sev != c.sev || got.code != c.code {
			t.Errorf("classify(%#x, %#x, %#x) = %+v, want %s %s", c.stype, c.etype, c.offset, got, c.sev, c.code)
		}
	}
	if n := eventName(0x01, 0x01, 0x09); n != "Upper Critical going high" {
		t.Errorf("threshold name %q", n)
	}
	if n := eventName(0x07, 0x6f, 0x00); n != "IERR" {
		t.Errorf("IERR name %q", n)
	}
	if n := eventName(0xc0, 0x70, 0x01); !strings.Contains(n, "OEM") {
		t.Errorf("OEM name %q", n)
	}
}

func TestConvertSEL(t *testing.T) {
	sdr := &sdrCache{byKey: map[uint16]*sdrRecord{}}
	full := &types.SDRFull{}
	full.M = 1
	rec := &sdrRecord{owner: 0x20, number: 2, sensorType: 0x01, eventType: 0x01, name: "CPU0 Temp",
		unit: types.SensorUnit{BaseUnit: types.SensorUnitType_DegreesC}, full: full, recType: types.SDRRecordTypeFullSensor}
	sdr.byKey[rec.key()] = rec
	ts := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	u := uint32(ts.Unix())
	raw := []byte{0x34, 0x12, 0x02, byte(u), byte(u >> 8), byte(u >> 16), byte(u >> 24), 0x20, 0x00, 0x04, 0x01, 0x02, 0x81, 0x59, 96, 95}
	e := convertSEL(raw, sdr)
	if e.RecordID != 0x1234 || !e.Time.Equal(ts) || e.GeneratorID != 0x20 || e.SensorType != 1 || e.SensorNumber != 2 ||
		e.EventType != 1 || !e.Deassertion || e.EventData != [3]byte{0x59, 96, 95} || e.Severity != board.SeverityOK {
		t.Errorf("deassertion entry %+v", e)
	}
	if !strings.Contains(e.Message, "CPU0 Temp (Temperature #0x02): Upper Critical going high deasserted; reading 96 Cel, threshold 95 Cel") {
		t.Errorf("message %q", e.Message)
	}
	raw[12] = 0x01
	if e := convertSEL(raw, sdr); e.Severity != board.SeverityCritical || e.Deassertion {
		t.Errorf("assertion entry %+v", e)
	}
	oem := []byte{0x01, 0x00, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}
	if e := convertSEL(oem, nil); e.RecordID != 1 || !strings.Contains(e.Message, "OEM record type 0xe0") || !e.Time.IsZero() {
		t.Errorf("OEM entry %+v", e)
	}
	oemTS := []byte{0x02, 0x00, 0xc1, byte(u), byte(u >> 8), byte(u >> 16), byte(u >> 24), 0x57, 0x01, 0x00, 1, 2, 3, 4, 5, 6}
	if e := convertSEL(oemTS, nil); !e.Time.Equal(ts) || !strings.Contains(e.Message, "manufacturer 343") {
		t.Errorf("timestamped OEM entry %+v", e)
	}
	preInit := append([]byte(nil), raw...)
	preInit[3], preInit[4], preInit[5], preInit[6] = 100, 0, 0, 0
	if e := convertSEL(preInit, nil); !strings.Contains(e.Message, "BMC clock not set: 100 s") ||
		!strings.Contains(e.Message, "Temperature #0x02") {
		t.Errorf("pre-init entry without SDR: %q", e.Message)
	}
}

func TestUnitNames(t *testing.T) {
	for _, c := range []struct {
		u    types.SensorUnit
		want string
	}{
		{types.SensorUnit{BaseUnit: types.SensorUnitType_DegreesC}, "Cel"},
		{types.SensorUnit{BaseUnit: types.SensorUnitType_Volts}, "V"},
		{types.SensorUnit{BaseUnit: types.SensorUnitType_Watts}, "W"},
		{types.SensorUnit{BaseUnit: types.SensorUnitType_Amps}, "A"},
		{types.SensorUnit{BaseUnit: types.SensorUnitType_RPM}, "RPM"},
		{types.SensorUnit{Percentage: true}, "%"},
		{types.SensorUnit{AnalogDataFormat: types.SensorAnalogUnitFormat_NotAnalog}, ""},
	} {
		if got := unitName(c.u); got != c.want {
			t.Errorf("%+v: %q, want %q", c.u, got, c.want)
		}
	}
}
