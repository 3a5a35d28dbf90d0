package ipmisrv

import (
	"encoding/binary"
	"fmt"
	"math"

	"cmcd/board"
)

// IPMI codes used by the served sensors (IPMI 2.0 tables 42-3, 43-13, 43-15).
const (
	sensorTypeTemperature uint8 = 0x01
	sensorTypeVoltage     uint8 = 0x02
	sensorTypeFan         uint8 = 0x04
	sensorTypePowerSupply uint8 = 0x08
	sensorTypeOther       uint8 = 0x0b // other units-based sensor (watts)

	unitDegC  uint8 = 0x01
	unitVolts uint8 = 0x04
	unitWatts uint8 = 0x06
	unitRPM   uint8 = 0x12

	entityPowerSupply   uint8 = 0x0a
	entityPowerUnit     uint8 = 0x13
	entitySystemChassis uint8 = 0x17
	entityFan           uint8 = 0x1d
	entityBlade         uint8 = 0x29 // processing blade: a compute node
	entityProcessor     uint8 = 0x03
	entityAirInlet      uint8 = 0x37

	ownerID uint8 = 0x20 // the CMC's own IPMB address: every sensor is ours
)

// Threshold indexes, in the order of Get Sensor Thresholds' response.
const (
	thrLNC = iota
	thrLCR
	thrLNR
	thrUNC
	thrUCR
	thrUNR
)

// sensor is one served sensor: its SDR and how to read it from a view.
type sensor struct {
	number   uint8
	name     string
	stype    uint8
	entity   uint8
	instance uint8

	// Analog (threshold) sensors: y = (M*x + B*10^Bexp) * 10^Rexp,
	// linear; x is unsigned or two's complement.
	analog bool
	unit   uint8
	signed bool
	m, b   int16
	rexp   int8
	bexp   int8
	// thresholds in real units; present[i] says which are readable.
	thr     [6]float64
	thrSet  [6]bool
	failLow bool // a critical health reads as "below lower critical" (fans)

	// read returns the reading (the state bits for discrete sensors), the
	// component's health and whether a reading is available.
	read func(v *view) (value float64, health board.Health, ok bool)
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

// analogSensor makes a threshold sensor whose unsigned raw range 0..255
// covers 0..full (or, signed, -full..full with 127 counts).
func analogSensor(num uint8, name string, stype, entity, inst, unit uint8, full float64, signed bool) sensor {
	counts := 255.0
	if signed {
		counts = 127
	}
	m, r := niceStep(full / counts)
	return sensor{number: num, name: name, stype: stype, entity: entity, instance: inst, analog: true,
		unit: unit, signed: signed, m: m, rexp: r}
}

func (s *sensor) setThreshold(i int, v float64) {
	s.thr[i], s.thrSet[i] = v, true
}

// step is the value of one raw count.
func (s *sensor) step() float64 { return float64(s.m) * math.Pow10(int(s.rexp)) }

// offset is B*10^Bexp*10^Rexp in real units.
func (s *sensor) offset() float64 {
	return float64(s.b) * math.Pow10(int(s.bexp)) * math.Pow10(int(s.rexp))
}

// raw converts a real value to the sensor's raw byte, clamped to range.
func (s *sensor) raw(v float64) uint8 {
	x := math.Round((v - s.offset()) / s.step())
	if s.signed {
		return uint8(int8(math.Max(-128, math.Min(127, x))))
	}
	return uint8(math.Max(0, math.Min(255, x)))
}

// value converts a raw byte back to real units (what a client computes).
func (s *sensor) value(raw uint8) float64 {
	x := float64(raw)
	if s.signed {
		x = float64(int8(raw))
	}
	return x*s.step() + s.offset()
}

// record encodes the sensor's SDR (without the record ID, bytes 0-1).
func (s *sensor) record() []byte {
	name := []byte(s.name)
	if len(name) > 16 {
		name = name[:16]
	}
	if !s.analog {
		// Compact sensor record (type 02h, table 43-2): a discrete,
		// sensor-specific (reading type 6Fh) sensor.
		b := make([]byte, 32, 32+len(name))
		b[2], b[3], b[4] = 0x51, 0x02, byte(27+len(name))
		b[5], b[6], b[7] = ownerID, 0x00, s.number
		b[8], b[9] = s.entity, s.instance
		b[10], b[11] = 0x63, 0x40 // scanning + events enabled at init; auto re-arm, no thresholds
		b[12], b[13] = s.stype, 0x6f
		// Assertion/deassertion/reading masks: the states the sensor reports.
		for _, i := range []int{14, 16, 18} {
			b[i] = 0x0f
		}
		b[20] = 0xc0 // no analog reading
		b[31] = 0xc0 | byte(len(name))
		return append(b, name...)
	}
	// Full sensor record (type 01h, table 43-1).
	b := make([]byte, 48, 48+len(name))
	b[2], b[3], b[4] = 0x51, 0x01, byte(43+len(name))
	b[5], b[6], b[7] = ownerID, 0x00, s.number
	b[8], b[9] = s.entity, s.instance
	b[10] = 0x7f       // init: scanning, events, thresholds, hysteresis, type; events + scanning enabled
	caps := byte(0x40) // auto re-arm, no hysteresis, no event control
	var readable byte
	for i, ok := range s.thrSet {
		if ok {
			readable |= 1 << i
		}
	}
	if readable != 0 {
		caps |= 0x04 // thresholds readable, per the readable mask
	}
	b[11] = caps
	b[12], b[13] = s.stype, 0x01
	// Threshold comparisons returned in Get Sensor Reading: the readable
	// thresholds, plus the ones health maps onto (see reading).
	lower := uint16(readable & 0x07)
	upper := uint16(readable>>3) & 0x07
	if s.failLow {
		lower |= 0x03
	} else {
		upper |= 0x03
	}
	binary.LittleEndian.PutUint16(b[14:], lower<<12)
	binary.LittleEndian.PutUint16(b[16:], upper<<12)
	b[18], b[19] = readable, 0
	if s.signed {
		b[20] = 0x80 // two's complement
	}
	b[21] = s.unit
	b[23] = 0x00 // linear
	m := uint16(s.m) & 0x3ff
	b[24], b[25] = byte(m), byte(m>>8)<<6
	bb := uint16(s.b) & 0x3ff
	b[26], b[27] = byte(bb), byte(bb>>8)<<6
	b[29] = byte(s.rexp)<<4 | byte(s.bexp)&0x0f
	if s.signed {
		b[34], b[35] = 0x7f, 0x80
	} else {
		b[34], b[35] = 0xff, 0x00
	}
	// Thresholds, raw: UNR, UCR, UNC, LNR, LCR, LNC.
	for i, idx := range []int{thrUNR, thrUCR, thrUNC, thrLNR, thrLCR, thrLNC} {
		if s.thrSet[idx] {
			b[36+i] = s.raw(s.thr[idx])
		}
	}
	b[47] = 0xc0 | byte(len(name))
	return append(b, name...)
}

// reading encodes the Get Sensor Reading response for the sensor.
func (s *sensor) reading(v *view) []byte {
	val, health, ok := s.read(v)
	if !ok {
		return []byte{0, 0xe0, 0, 0x80} // scanning enabled, reading unavailable
	}
	if !s.analog {
		states := uint16(val)
		return []byte{0, 0xc0, byte(states), byte(states>>8)&0x7f | 0x80}
	}
	raw := s.raw(val)
	real := s.value(raw)
	var bits byte
	for i := range 6 {
		if !s.thrSet[i] {
			continue
		}
		if (i < 3 && real <= s.thr[i]) || (i >= 3 && real >= s.thr[i]) {
			bits |= 1 << i
		}
	}
	switch health {
	case board.HealthCritical:
		if s.failLow {
			bits |= 0x03
		} else {
			bits |= 0x18
		}
	case board.HealthWarning:
		if s.failLow {
			bits |= 0x01
		} else {
			bits |= 0x08
		}
	}
	return []byte{raw, 0xc0, bits, 0x80}
}

// thresholds encodes the Get Sensor Thresholds response.
func (s *sensor) thresholds() []byte {
	out := make([]byte, 7)
	for i := range 6 {
		if s.thrSet[i] {
			out[0] |= 1 << i
			out[1+i] = s.raw(s.thr[i])
		}
	}
	return out
}

// Sensor numbers: fixed per component so that a sensor keeps its number
// while the chassis' population changes.
func psuSensorBase(id int) uint8   { return uint8(0x10 + 4*(id-1)) } // 4 PSUs max: 10h-1Fh
func fanSensorNumber(id int) uint8 { return uint8(0x30 + id - 1) }   // 8 fans max: 30h-37h
func nodeSensorBase(slot int) uint8 {
	return uint8(0x50 + 4*(slot-1)) // 16 nodes: 50h-8Fh
}

const (
	sensorChassisPower uint8 = 0x40
	sensorNodesPower   uint8 = 0x41
	sensorInletMax     uint8 = 0x42
)

// buildSensors derives the sensor set from the stored components. It
// depends only on what is installed and on static ratings (PSU capacity,
// fan maximum speed), never on live readings, so the SDR repository only
// changes when the chassis' population does.
func buildSensors(v *view) []sensor {
	var out []sensor
	var capSum float64
	for _, p := range v.psus {
		if p.ID < 1 || p.ID > 4 {
			continue
		}
		id := p.ID
		base := psuSensorBase(id)
		capW := p.CapacityW
		if capW <= 0 {
			capW = 2000
		}
		if p.Present {
			capSum += capW
		}
		status := sensor{number: base, name: fmt.Sprintf("PSU%d Status", id), stype: sensorTypePowerSupply,
			entity: entityPowerSupply, instance: uint8(id),
			read: func(v *view) (float64, board.Health, bool) {
				p, ok := v.psu(id)
				if !ok {
					return 0, "", false
				}
				var st float64
				if p.Present {
					st += 1 // presence detected
				}
				if p.Present && (!p.PowerGood || p.Health == board.HealthCritical) {
					st += 2 // power supply failure detected
				}
				if p.Present && p.Health == board.HealthWarning {
					st += 4 // predictive failure
				}
				return st, p.Health, true
			}}
		out = append(out, status)
		pw := analogSensor(base+1, fmt.Sprintf("PSU%d Power Out", id), sensorTypeOther, entityPowerSupply, uint8(id), unitWatts, capW*1.25, false)
		pw.setThreshold(thrUNC, 0.9*capW)
		pw.setThreshold(thrUCR, capW)
		pw.read = func(v *view) (float64, board.Health, bool) {
			p, ok := v.psu(id)
			return p.OutputW, "", ok && p.Present // the PSU's health is its Status sensor's
		}
		vin := analogSensor(base+2, fmt.Sprintf("PSU%d Vin", id), sensorTypeVoltage, entityPowerSupply, uint8(id), unitVolts, 300, false)
		vin.read = func(v *view) (float64, board.Health, bool) {
			p, ok := v.psu(id)
			return p.InputV, "", ok && p.Present
		}
		temp := analogSensor(base+3, fmt.Sprintf("PSU%d Temp", id), sensorTypeTemperature, entityPowerSupply, uint8(id), unitDegC, 127, true)
		temp.read = func(v *view) (float64, board.Health, bool) {
			p, ok := v.psu(id)
			return p.TempC, "", ok && p.Present
		}
		out = append(out, pw, vin, temp)
	}
	for _, f := range v.fans {
		if f.ID < 1 || f.ID > 8 {
			continue
		}
		id := f.ID
		maxRPM := float64(f.MaxRPM)
		if maxRPM <= 0 {
			maxRPM = 20000
		}
		s := analogSensor(fanSensorNumber(id), fmt.Sprintf("Fan%d", id), sensorTypeFan, entityFan, uint8(id), unitRPM, maxRPM*1.25, false)
		s.failLow = true
		s.read = func(v *view) (float64, board.Health, bool) {
			f, ok := v.fan(id)
			return float64(f.RPM), f.Health, ok && f.Present
		}
		out = append(out, s)
	}
	if len(v.psus) > 0 {
		if capSum <= 0 {
			capSum = 2000
		}
		s := analogSensor(sensorChassisPower, "Chassis Power", sensorTypeOther, entityPowerUnit, 1, unitWatts, capSum*1.25, false)
		s.setThreshold(thrUNC, 0.9*capSum)
		s.setThreshold(thrUCR, capSum)
		s.read = func(v *view) (float64, board.Health, bool) {
			w, ok := v.totalPower()
			return w, "", ok
		}
		out = append(out, s)
	}
	var present []int
	for _, n := range v.nodes {
		if n.Present && n.Slot >= 1 && n.Slot <= board.MaxNodes {
			present = append(present, n.Slot)
		}
	}
	if len(present) > 0 {
		s := analogSensor(sensorNodesPower, "Nodes Power", sensorTypeOther, entitySystemChassis, 1, unitWatts, 1000*float64(len(present)), false)
		s.read = func(v *view) (float64, board.Health, bool) {
			var sum float64
			var any bool
			for _, n := range v.nodes {
				if n.Present && n.Reachable {
					sum += n.PowerW
					any = true
				}
			}
			return sum, "", any
		}
		inlet := analogSensor(sensorInletMax, "Inlet Temp Max", sensorTypeTemperature, entityAirInlet, 1, unitDegC, 127, true)
		inlet.read = func(v *view) (float64, board.Health, bool) {
			best, any := math.Inf(-1), false
			for _, n := range v.nodes {
				if n.Present && n.Reachable {
					best, any = math.Max(best, n.InletC), true
				}
			}
			return best, "", any
		}
		out = append(out, s, inlet)
	}
	for _, slot := range present {
		slot := slot
		base := nodeSensorBase(slot)
		node := func(v *view) (board.Node, bool) {
			n, ok := v.node(slot)
			return n, ok && n.Present && n.Reachable
		}
		pw := analogSensor(base, fmt.Sprintf("Node%d Power", slot), sensorTypeOther, entityBlade, uint8(slot), unitWatts, 1000, false)
		pw.read = func(v *view) (float64, board.Health, bool) {
			n, ok := node(v)
			return n.PowerW, "", ok
		}
		inlet := analogSensor(base+1, fmt.Sprintf("Node%d Inlet", slot), sensorTypeTemperature, entityBlade, uint8(slot), unitDegC, 127, true)
		inlet.read = func(v *view) (float64, board.Health, bool) {
			n, ok := node(v)
			return n.InletC, "", ok
		}
		cpu := analogSensor(base+2, fmt.Sprintf("Node%d CPU Temp", slot), sensorTypeTemperature, entityProcessor, uint8(slot), unitDegC, 127, true)
		cpu.read = func(v *view) (float64, board.Health, bool) {
			n, ok := node(v)
			return n.CPUC, "", ok
		}
		out = append(out, pw, inlet, cpu)
	}
	return out
}

// fruLocator encodes a FRU Device Locator record (type 11h, table 43-7)
// for logical FRU device id behind the CMC.
func fruLocator(id uint8, entity, instance uint8, name string) []byte {
	n := []byte(name)
	if len(n) > 16 {
		n = n[:16]
	}
	b := make([]byte, 16, 16+len(n))
	b[2], b[3], b[4] = 0x51, 0x11, byte(11+len(n))
	b[5] = ownerID            // device access address: the CMC
	b[6] = id                 // FRU device ID
	b[7] = 0x80               // logical FRU device, LUN 0, private bus 0
	b[8] = 0x00               // channel 0
	b[10], b[11] = 0x10, 0x00 // IPMI FRU inventory
	b[12], b[13] = entity, instance
	b[15] = 0xc0 | byte(len(n))
	return append(b, n...)
}

// mcLocator encodes the CMC's Management Controller Device Locator (type
// 12h, table 43-8).
func mcLocator(name string) []byte {
	n := []byte(name)
	if len(n) > 16 {
		n = n[:16]
	}
	b := make([]byte, 16, 16+len(n))
	b[2], b[3], b[4] = 0x51, 0x12, byte(11+len(n))
	b[5], b[6] = ownerID, 0x00
	b[8] = 0x8f // chassis device, FRU inventory, SEL, SDR repository, sensor device
	b[12], b[13] = entitySystemChassis, 1
	b[15] = 0xc0 | byte(len(n))
	return append(b, n...)
}
