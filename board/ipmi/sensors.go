package ipmi

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/sensor"
	"github.com/bougou/go-ipmi/pkg/command/storage"
	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
)

// Completion codes this package reacts to (IPMI v2.0 table 5-2).
const (
	ccInvalidCommand      = 0xc1
	ccReservationCanceled = 0xc5
	ccCannotReturnBytes   = 0xca
	ccNotPresent          = 0xcb
	ccIllegalCommand      = 0xcd
	ccDestinationUnavail  = 0xd3
)

// maxSDRRecords bounds an SDR repository walk (a broken BMC must not loop us).
const maxSDRRecords = 2048

// sdrRecord is what this package keeps of one sensor SDR (full, compact or
// event-only).
type sdrRecord struct {
	id         uint16
	recType    types.SDRRecordType
	owner, lun uint8
	number     uint8
	entityID   uint8
	entityInst uint8
	sensorType uint8
	eventType  uint8
	name       string
	unit       types.SensorUnit
	full       *types.SDRFull // nil for compact and event-only records
}

// key identifies a sensor by owner and number.
func (r *sdrRecord) key() uint16 { return uint16(r.owner)<<8 | uint16(r.number) }

// readable says whether the sensor has a reading (event-only ones do not).
func (r *sdrRecord) readable() bool {
	return r.recType == types.SDRRecordTypeFullSensor || r.recType == types.SDRRecordTypeCompactSensor
}

// analog says whether the sensor's reading converts to a value in units.
func (r *sdrRecord) analog() bool {
	return r.full != nil && r.eventType == eventTypeThreshold &&
		r.unit.AnalogDataFormat != types.SensorAnalogUnitFormat_NotAnalog
}

// convert turns a raw reading (or threshold) byte into units.
func (r *sdrRecord) convert(raw uint8) float64 {
	if r.full == nil {
		return float64(raw)
	}
	return convertReading(raw, r.unit.AnalogDataFormat, r.full.ReadingFactors, r.full.LinearizationFunc)
}

// label names the sensor for messages: "Inlet Temp (Temperature #0x01)".
func (r *sdrRecord) label() string {
	if r.name == "" {
		return fmt.Sprintf("%s #%#02x", sensorTypeName(r.sensorType), r.number)
	}
	return fmt.Sprintf("%s (%s #%#02x)", r.name, sensorTypeName(r.sensorType), r.number)
}

// sdrCache is a node's SDR repository as last read, with the repository
// info that tells whether it changed since.
type sdrCache struct {
	count     uint16
	addTime   time.Time
	eraseTime time.Time
	records   []*sdrRecord
	byKey     map[uint16]*sdrRecord
}

func (c *sdrCache) lookup(owner, number uint8) *sdrRecord {
	if c == nil {
		return nil
	}
	return c.byKey[uint16(owner)<<8|uint16(number)]
}

// loadSDR returns the node's sensor SDRs, reading the repository again
// only when its info (record count, last addition or erase time) changed.
func (n *node) loadSDR(ctx context.Context) (*sdrCache, error) {
	info := &storage.GetSDRRepoInfoResponse{}
	if err := n.call(ctx, &storage.GetSDRRepoInfoRequest{}, info); err != nil {
		return nil, fmt.Errorf("reading SDR repository info: %w", err)
	}
	if c := n.sdr; c != nil && c.count == info.RecordCount &&
		c.addTime.Equal(info.MostRecentAdditionTime) && c.eraseTime.Equal(info.MostRecentEraseTime) {
		return c, nil
	}
	c := &sdrCache{
		count:     info.RecordCount,
		addTime:   info.MostRecentAdditionTime,
		eraseTime: info.MostRecentEraseTime,
		byKey:     map[uint16]*sdrRecord{},
	}
	id := uint16(0)
	for i := 0; i < maxSDRRecords; i++ {
		next, data, err := n.readSDR(ctx, id)
		if err != nil {
			if cc, ok := completionCode(err); ok && cc == ccNotPresent && i == 0 {
				break // empty repository
			}
			return nil, fmt.Errorf("reading SDR record %#04x: %w", id, err)
		}
		sdr, err := types.ParseSDR(data, next)
		if err != nil {
			n.log.Warn("skipping malformed SDR record", "record", id, "err", err)
		} else if r := recordOf(sdr); r != nil {
			c.records = append(c.records, r)
			c.byKey[r.key()] = r
		}
		if next == 0xffff || next == id {
			break
		}
		id = next
	}
	n.sdr = c
	return c, nil
}

// readSDR reads one whole SDR record, in pieces if the BMC cannot return it
// in one response.
func (n *node) readSDR(ctx context.Context, id uint16) (next uint16, data []byte, err error) {
	res := &storage.GetSDRResponse{}
	err = n.call(ctx, &storage.GetSDRRequest{RecordID: id, ReadBytes: 0xff}, res)
	if err == nil {
		return res.NextRecordID, res.RecordData, nil
	}
	if cc, ok := completionCode(err); !ok || (cc != ccCannotReturnBytes && cc != 0xff) {
		return 0, nil, err
	}
	// Partial reads: header first, then 16-byte pieces under a reservation.
	for attempt := 0; attempt < 3; attempt++ {
		rsv := &storage.ReserveSDRRepoResponse{}
		if err := n.call(ctx, &storage.ReserveSDRRepoRequest{}, rsv); err != nil {
			return 0, nil, err
		}
		next, data, err = n.readSDRPieces(ctx, rsv.ReservationID, id)
		if cc, ok := completionCode(err); ok && cc == ccReservationCanceled {
			continue
		}
		return next, data, err
	}
	return 0, nil, fmt.Errorf("SDR record %#04x: reservation kept being cancelled", id)
}

func (n *node) readSDRPieces(ctx context.Context, rsv, id uint16) (uint16, []byte, error) {
	hdr := &storage.GetSDRResponse{}
	if err := n.call(ctx, &storage.GetSDRRequest{ReservationID: rsv, RecordID: id, ReadBytes: 5}, hdr); err != nil {
		return 0, nil, err
	}
	if len(hdr.RecordData) < 5 {
		return 0, nil, fmt.Errorf("SDR record %#04x: short header", id)
	}
	total := 5 + int(hdr.RecordData[4])
	data := append([]byte(nil), hdr.RecordData[:5]...)
	for len(data) < total {
		want := min(16, total-len(data))
		piece := &storage.GetSDRResponse{}
		req := &storage.GetSDRRequest{ReservationID: rsv, RecordID: id, ReadOffset: uint8(len(data)), ReadBytes: uint8(want)}
		if err := n.call(ctx, req, piece); err != nil {
			return 0, nil, err
		}
		if len(piece.RecordData) == 0 {
			return 0, nil, fmt.Errorf("SDR record %#04x: empty piece at offset %d", id, len(data))
		}
		data = append(data, piece.RecordData...)
	}
	return hdr.NextRecordID, data[:total], nil
}

// recordOf extracts the sensor fields of an SDR; nil for non-sensor records.
func recordOf(sdr *types.SDR) *sdrRecord {
	if sdr == nil || sdr.RecordHeader == nil {
		return nil
	}
	r := &sdrRecord{id: sdr.RecordHeader.RecordID, recType: sdr.RecordHeader.RecordType}
	var gen types.GeneratorID
	switch {
	case sdr.Full != nil:
		f := sdr.Full
		gen, r.number = f.GeneratorID, uint8(f.SensorNumber)
		r.entityID, r.entityInst = uint8(f.SensorEntityID), uint8(f.SensorEntityInstance)
		r.sensorType, r.eventType = uint8(f.SensorType), uint8(f.SensorEventReadingType)
		r.name, r.unit, r.full = idString(f.IDStringBytes), f.SensorUnit, f
	case sdr.Compact != nil:
		c := sdr.Compact
		gen, r.number = c.GeneratorID, uint8(c.SensorNumber)
		r.entityID, r.entityInst = uint8(c.SensorEntityID), uint8(c.SensorEntityInstance)
		r.sensorType, r.eventType = uint8(c.SensorType), uint8(c.SensorEventReadingType)
		r.name, r.unit = idString(c.IDStringBytes), c.SensorUnit
	case sdr.EventOnly != nil:
		e := sdr.EventOnly
		gen, r.number = e.GeneratorID, uint8(e.SensorNumber)
		r.entityID, r.entityInst = uint8(e.SensorEntityID), uint8(e.SensorEntityInstance)
		r.sensorType, r.eventType = uint8(e.SensorType), uint8(e.SensorEventReadingType)
		r.name = idString(e.IDStringBytes)
	default:
		return nil
	}
	r.owner, r.lun = gen.OwnerID(), gen.LUN()
	return r
}

func idString(b []byte) string {
	return strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
}

// convertReading applies the sensor reading conversion formula of IPMI
// v2.0 section 36.3:
//
//	y = L[(M*x + B*10^Bexp) * 10^Rexp]
//
// where x is the raw byte read as unsigned, one's or two's complement per
// the SDR's analog data format and L is the SDR's linearisation function.
// Non-linear sensors (70h-7Fh) use the factors as given (Get Sensor Reading
// Factors is not needed by the sensors cmcd reads).
func convertReading(raw uint8, format types.SensorAnalogUnitFormat, f types.ReadingFactors, lin types.LinearizationFunc) float64 {
	var x float64
	switch format {
	case types.SensorAnalogUnitFormat_1sComplement:
		if raw&0x80 != 0 {
			x = -float64(^raw & 0x7f)
		} else {
			x = float64(raw)
		}
	case types.SensorAnalogUnitFormat_2sComplement:
		x = float64(int8(raw))
	default:
		x = float64(raw)
	}
	y := (float64(f.M)*x + float64(f.B)*math.Pow(10, float64(f.B_Exp))) * math.Pow(10, float64(f.R_Exp))
	switch lin & 0x7f {
	case 0x01:
		y = math.Log(y)
	case 0x02:
		y = math.Log10(y)
	case 0x03:
		y = math.Log2(y)
	case 0x04:
		y = math.Exp(y)
	case 0x05:
		y = math.Pow(10, y)
	case 0x06:
		y = math.Exp2(y)
	case 0x07:
		y = 1 / y
	case 0x08:
		y = y * y
	case 0x09:
		y = y * y * y
	case 0x0a:
		y = math.Sqrt(y)
	case 0x0b:
		y = math.Cbrt(y)
	}
	if math.IsNaN(y) || math.IsInf(y, 0) {
		return 0
	}
	// Drop float noise (0.1*3 = 0.30000000000000004): readings carry at
	// most a few significant digits.
	return math.Round(y*1e6) / 1e6
}

// unitName is the reading unit as board.Sensor spells it.
func unitName(u types.SensorUnit) string {
	if u.AnalogDataFormat == types.SensorAnalogUnitFormat_NotAnalog {
		return ""
	}
	if u.Percentage && u.BaseUnit == types.SensorUnitType_Unspecified {
		return "%"
	}
	var s string
	switch u.BaseUnit {
	case types.SensorUnitType_DegreesC:
		s = "Cel"
	case types.SensorUnitType_DegreesF:
		s = "[degF]"
	case types.SensorUnitType_DegreesK:
		s = "K"
	case types.SensorUnitType_Volts:
		s = "V"
	case types.SensorUnitType_Amps:
		s = "A"
	case types.SensorUnitType_Watts:
		s = "W"
	case types.SensorUnitType_Joules:
		s = "J"
	case types.SensorUnitType_RPM:
		s = "RPM"
	case types.SensorUnitType_Hz:
		s = "Hz"
	case types.SensorUnitType_Unspecified:
		s = ""
	default:
		s = u.BaseUnit.String()
	}
	if u.Percentage {
		s = "%" + s
	}
	return s
}

// typeName is the reading type as board.Sensor spells it.
func (r *sdrRecord) typeName() string {
	if r.unit.AnalogDataFormat != types.SensorAnalogUnitFormat_NotAnalog && r.unit.BaseUnit == types.SensorUnitType_Watts {
		return "Power"
	}
	switch r.sensorType {
	case sensorTemperature:
		return "Temperature"
	case sensorVoltage:
		return "Voltage"
	case sensorCurrent:
		return "Current"
	case sensorFan:
		return "Fan"
	}
	return sensorTypeName(r.sensorType)
}

// reading is one sensor's state as last read.
type reading struct {
	rec    *sdrRecord
	raw    uint8
	value  float64
	states uint16 // discrete: asserted states; threshold: comparison bits
	sev    board.Severity
	// conds are the sensor's current non-OK conditions (for faults); for
	// a threshold sensor only the most severe one per side.
	conds []condition
	// crossed are the threshold event offsets of every threshold the
	// reading is beyond (UNC and UCR when above UCR).
	crossed []uint8
}

// condition is one non-OK state of a sensor.
type condition struct {
	offset uint8
	class  class
	text   string
}

// sensorSnapshot is the last full read of a node's sensors.
type sensorSnapshot struct {
	at       time.Time
	readings []reading
}

// readSensors reads every readable sensor of the node.
func (n *node) readSensors(ctx context.Context) (*sensorSnapshot, error) {
	sdr, err := n.loadSDR(ctx)
	if err != nil {
		return nil, err
	}
	snap := &sensorSnapshot{}
	for _, r := range sdr.records {
		if !r.readable() {
			continue
		}
		rd, present, err := n.readSensor(ctx, r)
		if err != nil {
			return nil, err
		}
		if present {
			snap.readings = append(snap.readings, rd)
		}
	}
	snap.at = n.src.clock.Now()
	n.sensors = snap
	return snap, nil
}

// readSensor reads one sensor; present is false for sensors without a
// usable reading (not present, scanning disabled, reading unavailable).
func (n *node) readSensor(ctx context.Context, r *sdrRecord) (reading, bool, error) {
	cctx := ctx
	if r.owner != 0x20 || r.lun != 0 {
		cc := &client.CommandContext{}
		cc.WithResponderAddr(r.owner).WithResponderLUN(r.lun)
		cctx = client.WithCommandContext(ctx, cc)
	}
	res := &sensor.GetSensorReadingResponse{}
	if err := n.call(cctx, &sensor.GetSensorReadingRequest{SensorNumber: r.number}, res); err != nil {
		if cc, ok := completionCode(err); ok {
			switch cc {
			case ccNotPresent, ccInvalidCommand, ccIllegalCommand, ccDestinationUnavail:
				return reading{}, false, nil
			}
		}
		return reading{}, false, fmt.Errorf("reading sensor %s: %w", r.label(), err)
	}
	if res.SensorScanningDisabled || res.ReadingUnavailable {
		return reading{}, false, nil
	}
	rd := reading{rec: r, raw: res.Reading, sev: board.SeverityOK}
	rd.states = uint16(res.OptionalData1) | uint16(res.OptionalData2&0x7f)<<8
	if r.eventType == eventTypeThreshold {
		if r.analog() {
			rd.value = r.convert(res.Reading)
		} else {
			rd.value = float64(res.Reading)
		}
		rd.conds = thresholdConditions(r, res)
		rd.crossed = crossedThresholds(res)
	} else {
		// A discrete sensor's "value" is its state bit field, as ipmitool
		// shows it (0x0200 = state 1 asserted is shown as 0x02 here).
		rd.value = float64(rd.states)
		for off := uint8(0); off < 15; off++ {
			if rd.states&(1<<off) == 0 {
				continue
			}
			cl := classify(r.sensorType, r.eventType, off)
			if cl.sev == board.SeverityOK {
				continue
			}
			rd.conds = append(rd.conds, condition{offset: off, class: cl,
				text: eventName(r.sensorType, r.eventType, off)})
		}
	}
	for _, c := range rd.conds {
		rd.sev = worse(rd.sev, c.class.sev)
	}
	return rd, true, nil
}

// thresholdConditions lists the thresholds a reading is beyond, most
// severe first; one condition per side (upper/lower).
func thresholdConditions(r *sdrRecord, res *sensor.GetSensorReadingResponse) []condition {
	var out []condition
	add := func(offset uint8, level string) {
		cl := thresholdClass(r.sensorType, offset)
		out = append(out, condition{offset: offset, class: cl, text: level})
	}
	switch {
	case res.Above_UNR:
		add(0x0b, "above upper non-recoverable threshold")
	case res.Above_UCR:
		add(0x09, "above upper critical threshold")
	case res.Above_UNC:
		add(0x07, "above upper non-critical threshold")
	}
	switch {
	case res.Below_LNR:
		add(0x04, "below lower non-recoverable threshold")
	case res.Below_LCR:
		add(0x02, "below lower critical threshold")
	case res.Below_LNC:
		add(0x00, "below lower non-critical threshold")
	}
	return out
}

// crossedThresholds lists the going-high (upper) and going-low (lower)
// event offsets of every threshold the reading is beyond.
func crossedThresholds(res *sensor.GetSensorReadingResponse) []uint8 {
	var out []uint8
	for _, t := range []struct {
		on     bool
		offset uint8
	}{
		{res.Below_LNC, 0x00}, {res.Below_LCR, 0x02}, {res.Below_LNR, 0x04},
		{res.Above_UNC, 0x07}, {res.Above_UCR, 0x09}, {res.Above_UNR, 0x0b},
	} {
		if t.on {
			out = append(out, t.offset)
		}
	}
	return out
}

// toBoard converts a reading to board.Sensor.
func (rd reading) toBoard() board.Sensor {
	return board.Sensor{
		Number:     rd.rec.number,
		Name:       rd.rec.name,
		Type:       rd.rec.typeName(),
		Unit:       unitName(rd.rec.unit),
		Value:      rd.value,
		Health:     healthOf(rd.sev),
		Thresholds: rd.rec.thresholds(),
	}
}

// thresholds are the readable thresholds of an analog threshold sensor's
// full SDR, in units (nil when it has none).
func (r *sdrRecord) thresholds() *board.Thresholds {
	if !r.analog() {
		return nil
	}
	m := r.full.Mask.Threshold
	var t board.Thresholds
	found := false
	set := func(readable bool, raw uint8, dst **float64) {
		if readable {
			v := r.convert(raw)
			*dst, found = &v, true
		}
	}
	set(m.LNC.Readable, r.full.LNC_Raw, &t.LowerCaution)
	set(m.LCR.Readable, r.full.LCR_Raw, &t.LowerCritical)
	set(m.UNC.Readable, r.full.UNC_Raw, &t.UpperCaution)
	set(m.UCR.Readable, r.full.UCR_Raw, &t.UpperCritical)
	if !found {
		return nil
	}
	return &t
}

// Entity IDs (IPMI v2.0 table 43-13) that mark inlet and processor sensors.
const (
	entityProcessor = 0x03
	entityAirInlet  = 0x37
	entityAirInlet2 = 0x40 // DCMI's air inlet
	entityCPUDCMI   = 0x41 // DCMI's processor
)

func nameHas(name string, words ...string) bool {
	l := strings.ToLower(name)
	for _, w := range words {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// pick fills the node's summary readings from its sensors: PowerW from a
// power sensor (W), InletC from an inlet/ambient temperature, CPUC as the
// hottest processor temperature. Fields stay zero when no sensor fits.
func pick(node *board.Node, readings []reading) {
	var havePower, powerPreferred, haveInlet, haveCPU bool
	for _, rd := range readings {
		r := rd.rec
		if !r.analog() {
			continue
		}
		switch {
		case r.unit.BaseUnit == types.SensorUnitType_Watts:
			preferred := nameHas(r.name, "total", "system", "sys", "node", "input", "pwr consumption", "power")
			if !havePower || (preferred && !powerPreferred) {
				node.PowerW, havePower, powerPreferred = rd.value, true, preferred
			}
		case r.sensorType == sensorTemperature && r.unit.BaseUnit == types.SensorUnitType_DegreesC:
			inlet := r.entityID == entityAirInlet || r.entityID == entityAirInlet2 ||
				nameHas(r.name, "inlet", "ambient", "intake", "front panel")
			cpu := r.entityID == entityProcessor || r.entityID == entityCPUDCMI ||
				nameHas(r.name, "cpu", "proc", "soc", "pkg")
			if inlet && !haveInlet {
				node.InletC, haveInlet = rd.value, true
			}
			if cpu && !inlet && (!haveCPU || rd.value > node.CPUC) {
				node.CPUC, haveCPU = rd.value, true
			}
		}
	}
}
