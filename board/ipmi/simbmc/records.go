package simbmc

import (
	"encoding/binary"
	"math"
	"strings"

	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
	"cmcd/board/fru"
)

// sensorDef is one served sensor: its SDR and how its readings map to raw
// bytes.
type sensorDef struct {
	number   uint8
	name     string
	analog   bool
	signed   bool
	m        int16
	rexp     int8
	stype    uint8
	record   []byte // SDR without record ID (bytes 0-1 are filled on read)
	discrete bool
}

// unitCode maps board.Sensor units to IPMI base unit codes.
func unitCode(u string) (uint8, bool) {
	switch u {
	case "Cel":
		return 0x01, true
	case "[degF]":
		return 0x02, true
	case "K":
		return 0x03, true
	case "V":
		return 0x04, true
	case "A":
		return 0x05, true
	case "W":
		return 0x06, true
	case "J":
		return 0x07, true
	case "RPM":
		return 0x12, true
	case "Hz":
		return 0x13, true
	case "%":
		return 0x00, true
	case "CFM":
		return 0x11, true
	}
	return 0, false
}

// sensorTypeCode maps board.Sensor types to IPMI sensor type codes.
func sensorTypeCode(t string) uint8 {
	switch t {
	case "Temperature":
		return 0x01
	case "Voltage":
		return 0x02
	case "Current":
		return 0x03
	case "Fan":
		return 0x04
	case "Power":
		return 0x0b // other units-based sensor, in watts
	}
	if st, err := types.SensorTypeFromNameOrNumber(t); err == nil {
		return uint8(st)
	}
	return 0x0b
}

// entityFor guesses the entity a sensor belongs to from its name, so that
// clients can tell inlet and processor temperatures apart.
func entityFor(name string, stype uint8) uint8 {
	l := strings.ToLower(name)
	switch {
	case strings.Contains(l, "inlet") || strings.Contains(l, "ambient"):
		return 0x37 // air inlet
	case strings.Contains(l, "cpu") || strings.Contains(l, "proc") || stype == 0x07:
		return 0x03 // processor
	case stype == 0x04:
		return 0x1d // fan
	case stype == 0x08:
		return 0x0a // power supply
	case stype == 0x0c:
		return 0x20 // memory device
	}
	return 0x07 // system board
}

// niceStep returns the smallest 1, 2 or 5 times a power of ten that is at
// least step, as M and the exponent R.
func niceStep(step float64) (int16, int8) {
	if step <= 0 {
		return 1, 0
	}
	e := math.Floor(math.Log10(step))
	for {
		for _, m := range []float64{1, 2, 5} {
			if m*math.Pow(10, e) >= step*(1-1e-9) {
				return int16(m), int8(e)
			}
		}
		e++
	}
}

// defineSensor builds the served definition (and SDR) of a sensor from
// its first reading. Analog sensors get a full SDR whose range is wide
// enough for readings to move; discrete ones (no unit) a compact SDR whose
// state bits are the reading's value.
func defineSensor(s board.Sensor) sensorDef {
	d := sensorDef{number: s.Number, name: s.Name, stype: sensorTypeCode(s.Type)}
	name := []byte(s.Name)
	if len(name) > 16 {
		name = name[:16]
	}
	unit, analog := unitCode(s.Unit)
	if !analog {
		d.discrete = true
		b := make([]byte, 32, 32+len(name))
		b[2], b[3], b[4] = 0x51, 0x02, byte(27+len(name))
		b[5], b[6], b[7] = 0x20, 0x00, s.Number
		b[8], b[9] = entityFor(s.Name, d.stype), 0x01
		b[10], b[11] = 0x63, 0x40
		b[12], b[13] = d.stype, 0x6f
		b[14], b[15], b[16], b[17], b[18], b[19] = 0xff, 0x7f, 0xff, 0x7f, 0xff, 0x7f
		b[20] = 0xc0 // no analog reading
		b[31] = 0xc0 | byte(len(name))
		d.record = append(b, name...)
		return d
	}
	d.analog = true
	// Full scale by unit, with room above the first reading.
	full := map[string]float64{"Cel": 127, "V": 15, "A": 50, "W": 1000, "RPM": 20000, "%": 100}[s.Unit]
	if full == 0 {
		full = 255
	}
	full = math.Max(full, 1.25*math.Abs(s.Value))
	for _, v := range thresholdValues(s.Thresholds) {
		if v.value != nil {
			full = math.Max(full, 1.1*math.Abs(*v.value))
		}
	}
	d.signed = s.Unit == "Cel" || s.Value < 0
	counts := 255.0
	if d.signed {
		counts = 127
	}
	d.m, d.rexp = niceStep(full / counts)
	b := make([]byte, 48, 48+len(name))
	b[2], b[3], b[4] = 0x51, 0x01, byte(43+len(name))
	b[5], b[6], b[7] = 0x20, 0x00, s.Number
	b[8], b[9] = entityFor(s.Name, d.stype), 0x01
	b[10], b[11] = 0x7f, 0x40
	b[12], b[13] = d.stype, 0x01
	// Upper non-critical and critical comparisons are returned (they carry
	// the sensor's health); the sensor's thresholds, where it has them,
	// are readable (readable threshold mask, byte 19, and bytes 36-41).
	b[17] = 0x30
	if d.signed {
		b[20] = 0x80
	}
	if s.Unit == "%" {
		b[20] |= 0x01
	}
	b[21] = unit
	m := uint16(d.m) & 0x3ff
	b[24], b[25] = byte(m), byte(m>>8)<<6
	b[29] = byte(d.rexp) << 4
	b[34], b[35] = 0xff, 0x00
	if d.signed {
		b[34], b[35] = 0x7f, 0x80
	}
	for _, v := range thresholdValues(s.Thresholds) {
		if v.value != nil {
			b[19] |= 1 << v.bit
			b[v.at] = d.raw(*v.value)
		}
	}
	b[47] = 0xc0 | byte(len(name))
	d.record = append(b, name...)
	return d
}

// thresholdValue is one threshold with its bit in the readable threshold
// mask and its byte in the full SDR.
type thresholdValue struct {
	value *float64
	bit   uint
	at    int
}

func thresholdValues(t *board.Thresholds) []thresholdValue {
	if t == nil {
		return nil
	}
	return []thresholdValue{{t.LowerCaution, 0, 41}, {t.LowerCritical, 1, 40}, {t.UpperCaution, 3, 38}, {t.UpperCritical, 4, 37}}
}

// thresholds is the Get Sensor Thresholds answer: the readable mask, then
// LNC, LCR, LNR, UNC, UCR, UNR as raw values.
func (d sensorDef) thresholds() []byte {
	out := make([]byte, 7)
	if d.analog && len(d.record) >= 42 {
		out[0] = d.record[19] & 0x3f
		for i, at := range []int{41, 40, 39, 38, 37, 36} {
			if out[0]&(1<<uint(i)) != 0 {
				out[1+i] = d.record[at]
			}
		}
	}
	return out
}

// raw converts a reading to the sensor's raw byte.
func (d sensorDef) raw(v float64) uint8 {
	if !d.analog {
		return uint8(v)
	}
	x := math.Round(v / (float64(d.m) * math.Pow(10, float64(d.rexp))))
	if d.signed {
		return uint8(int8(math.Max(-128, math.Min(127, x))))
	}
	return uint8(math.Max(0, math.Min(255, x)))
}

// selRecord encodes a board.SELEntry as a 16-byte standard SEL record.
func selRecord(e board.SELEntry, id uint16) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint16(b, id)
	b[2] = 0x02
	var ts uint32
	if !e.Time.IsZero() && e.Time.Unix() > 0 {
		ts = uint32(e.Time.Unix())
	}
	binary.LittleEndian.PutUint32(b[3:], ts)
	gen := e.GeneratorID
	if gen == 0 {
		gen = 0x0020
	}
	binary.LittleEndian.PutUint16(b[7:], gen)
	b[9] = 0x04
	b[10], b[11] = e.SensorType, e.SensorNumber
	b[12] = e.EventType & 0x7f
	if e.Deassertion {
		b[12] |= 0x80
	}
	copy(b[13:], e.EventData[:])
	return b
}

// fruImage encodes a board.FRU as FRU device data: common header and the
// chassis, board and product info areas, with the shared writer
// (board/fru).
func fruImage(f board.FRU) []byte {
	img, err := fru.Encode(fru.FromBoard(f))
	if err != nil {
		// FromBoard cuts and drops what a field cannot hold; only a
		// manufacturing date past 2027 could fail, and it is zeroed there.
		panic(err)
	}
	return img
}
