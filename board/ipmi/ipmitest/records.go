package ipmitest

import (
	"fmt"
	"time"
)

// Sensor describes one simulated sensor: its SDR and its initial state.
// The SDR bytes are written here from the IPMI v2.0 tables (43-1 full,
// 43-2 compact), independently of the client library under test.
type Sensor struct {
	Number uint8
	Name   string // at most 16 bytes
	Type   uint8  // sensor type code (01h temperature, 07h processor, ...)
	Entity uint8  // entity ID (03h processor, 37h air inlet, ...)

	// Threshold sensors (event/reading type 01h, full SDR). The reading
	// is y = L[(M*raw + B*10^BExp) * 10^RExp] in Unit.
	Threshold bool
	Unit      uint8 // base unit code (01h degrees C, 04h volts, 06h watts, 12h RPM)
	M, B      int16 // 10-bit signed
	BExp      int8  // 4-bit signed
	RExp      int8  // 4-bit signed
	Lin       uint8 // linearisation (00h linear, 08h sqr, ...)
	Signed    bool  // readings are two's complement
	Raw       uint8 // initial raw reading
	// Raw thresholds; zero means "not set".
	UNR, UCR, UNC, LNC, LCR, LNR uint8

	// Discrete sensors (event/reading type EventType, compact SDR).
	EventType uint8  // 6Fh sensor-specific or a generic 02h..0Ch
	States    uint16 // initially asserted states
}

func (s Sensor) eventType() uint8 {
	if s.Threshold {
		return 0x01
	}
	if s.EventType == 0 {
		return 0x6f
	}
	return s.EventType
}

// thresholdMask has a bit per threshold (LNC, LCR, LNR, UNC, UCR, UNR) that is set.
func (s Sensor) thresholdMask() uint8 {
	var m uint8
	for i, v := range []uint8{s.LNC, s.LCR, s.LNR, s.UNC, s.UCR, s.UNR} {
		if v != 0 {
			m |= 1 << i
		}
	}
	return m
}

// eventMask has a bit per supported threshold event offset: going low for
// lower thresholds, going high for upper ones.
func (s Sensor) eventMask() uint16 {
	t := s.thresholdMask()
	var m uint16
	for i, off := range []uint{0x00, 0x02, 0x04, 0x07, 0x09, 0x0b} {
		if t&(1<<i) != 0 {
			m |= 1 << off
		}
	}
	return m
}

func nameBytes(name string) []byte {
	if len(name) > 16 {
		name = name[:16]
	}
	return []byte(name)
}

// SDR returns the sensor's SDR record (header included, record ID 0: the
// simulator assigns IDs).
func (s Sensor) SDR() []byte {
	name := nameBytes(s.Name)
	if s.Threshold {
		b := make([]byte, 48, 48+len(name))
		b[2], b[3], b[4] = 0x51, 0x01, byte(43+len(name))
		b[5], b[6], b[7] = 0x20, 0x00, s.Number // owner: the BMC, LUN 0
		b[8], b[9] = s.Entity, 0x01
		b[10] = 0x7f // init: scanning, events, thresholds, hysteresis, type; enabled
		b[11] = 0x68 // auto re-arm, hysteresis and thresholds readable+settable
		b[12], b[13] = s.Type, 0x01
		ev := s.eventMask()
		tm := uint16(s.thresholdMask())
		lower := ev | (tm&0x07)<<12      // assertion events + lower comparisons returned
		upper := ev | ((tm>>3)&0x07)<<12 // deassertion events + upper comparisons returned
		b[14], b[15] = byte(lower), byte(lower>>8)
		b[16], b[17] = byte(upper), byte(upper>>8)
		b[18], b[19] = byte(tm), byte(tm) // settable, readable thresholds
		if s.Signed {
			b[20] = 0x80 // two's complement
		}
		b[21], b[22], b[23] = s.Unit, 0, s.Lin
		m, bb := uint16(s.M)&0x3ff, uint16(s.B)&0x3ff
		b[24], b[25] = byte(m), byte(m>>8)<<6
		b[26], b[27] = byte(bb), byte(bb>>8)<<6
		b[28] = 0
		b[29] = byte(s.RExp)<<4 | byte(s.BExp)&0x0f
		b[30] = 0                 // no nominal/normal values
		b[34], b[35] = 0xff, 0x00 // max, min reading
		if s.Signed {
			b[34], b[35] = 0x7f, 0x80
		}
		b[36], b[37], b[38] = s.UNR, s.UCR, s.UNC
		b[39], b[40], b[41] = s.LNR, s.LCR, s.LNC
		b[47] = 0xc0 | byte(len(name)) // 8-bit ASCII + Latin-1
		return append(b, name...)
	}
	b := make([]byte, 32, 32+len(name))
	b[2], b[3], b[4] = 0x51, 0x02, byte(27+len(name))
	b[5], b[6], b[7] = 0x20, 0x00, s.Number
	b[8], b[9] = s.Entity, 0x01
	b[10] = 0x63 // scanning, events; enabled
	b[11] = 0x40 // auto re-arm
	b[12], b[13] = s.Type, s.eventType()
	b[14], b[15] = 0xff, 0x7f // assertion events
	b[16], b[17] = 0xff, 0x7f // deassertion events
	b[18], b[19] = 0xff, 0x7f // readable states
	b[20] = 0xc0              // no analog reading
	b[31] = 0xc0 | byte(len(name))
	return append(b, name...)
}

// Commands returns the ipmi_sim emulator commands that create the sensor
// on the BMC (address 20h).
func (s Sensor) Commands() []string {
	n := s.Number
	cmds := []string{fmt.Sprintf("sensor_add 0x20 0 %d 0x%02x 0x%02x", n, s.Type, s.eventType())}
	if s.Threshold {
		cmds = append(cmds,
			fmt.Sprintf("sensor_set_threshold 0x20 0 %d settable %06b %d %d %d %d %d %d", n, s.thresholdMask(),
				s.UNR, s.UCR, s.UNC, s.LNR, s.LCR, s.LNC),
			fmt.Sprintf("sensor_set_value 0x20 0 %d %d 0", n, s.Raw))
		ev := s.eventMask()
		cmds = append(cmds, fmt.Sprintf("sensor_set_event_support 0x20 0 %d enable scanning per-state %015b %015b %015b %015b",
			n, ev, ev, ev, ev))
	} else {
		for bit := 0; bit < 15; bit++ {
			if s.States&(1<<bit) != 0 {
				cmds = append(cmds, fmt.Sprintf("sensor_set_bit 0x20 0 %d %d 1 0", n, bit))
			}
		}
		cmds = append(cmds, fmt.Sprintf("sensor_set_event_support 0x20 0 %d enable scanning per-state %015b %015b %015b %015b",
			n, 0x7fff, 0x7fff, 0x7fff, 0x7fff))
	}
	cmds = append(cmds, "main_sdr_add 0x20"+hexList(s.SDR()))
	return cmds
}

func hexList(b []byte) string {
	out := make([]byte, 0, len(b)*5)
	for _, c := range b {
		out = fmt.Appendf(out, " 0x%02x", c)
	}
	return string(out)
}

// Event is a standard SEL record (type 02h) to add.
type Event struct {
	SensorType   uint8
	SensorNumber uint8
	EventType    uint8 // event/reading type; bit 7 set = deassertion
	Data         [3]byte
	Generator    uint16 // 0 means the BMC (20h)
}

// SELAdd returns the emulator command that adds the event to the BMC's SEL
// (the simulator stamps the time).
func (e Event) SELAdd() string {
	gen := e.Generator
	if gen == 0 {
		gen = 0x0020
	}
	return fmt.Sprintf("sel_add 0x20 0x02 0 0 0 0 0x%02x 0x%02x 0x04 0x%02x 0x%02x 0x%02x 0x%02x 0x%02x 0x%02x",
		byte(gen), byte(gen>>8), e.SensorType, e.SensorNumber, e.EventType, e.Data[0], e.Data[1], e.Data[2])
}

// FRU is the inventory the simulator serves as FRU device 0.
type FRU struct {
	ChassisType   uint8 // SMBIOS chassis type (17h rack mount)
	ChassisPart   string
	ChassisSerial string

	BoardMfgDate time.Time // minute resolution, after 1996-01-01
	BoardMfg     string
	BoardProduct string
	BoardSerial  string
	BoardPart    string

	ProductMfg     string
	ProductName    string
	ProductPart    string
	ProductVersion string
	ProductSerial  string
	AssetTag       string
}

// Image encodes the FRU in the Platform Management FRU Information
// Storage Definition v1.0 format: common header, chassis, board and product
// info areas, each padded to 8 bytes with a zero checksum.
func (f FRU) Image() []byte {
	field := func(s string) []byte { return append([]byte{0xc0 | byte(len(s))}, s...) }
	finish := func(a []byte) []byte {
		a = append(a, 0xc1) // end of fields
		for (len(a)+1)%8 != 0 {
			a = append(a, 0)
		}
		a[1] = byte((len(a) + 1) / 8)
		return append(a, zeroSum(a))
	}
	chassis := []byte{0x01, 0, f.ChassisType}
	chassis = append(chassis, field(f.ChassisPart)...)
	chassis = append(chassis, field(f.ChassisSerial)...)
	chassis = finish(chassis)

	mins := uint32(0)
	if !f.BoardMfgDate.IsZero() {
		mins = uint32(f.BoardMfgDate.Sub(time.Date(1996, 1, 1, 0, 0, 0, 0, time.UTC)) / time.Minute)
	}
	brd := []byte{0x01, 0, 0x00, byte(mins), byte(mins >> 8), byte(mins >> 16)}
	for _, s := range []string{f.BoardMfg, f.BoardProduct, f.BoardSerial, f.BoardPart, ""} {
		brd = append(brd, field(s)...)
	}
	brd = finish(brd)

	prod := []byte{0x01, 0, 0x00}
	for _, s := range []string{f.ProductMfg, f.ProductName, f.ProductPart, f.ProductVersion, f.ProductSerial, f.AssetTag, ""} {
		prod = append(prod, field(s)...)
	}
	prod = finish(prod)

	hdr := []byte{0x01, 0, 1, byte(1 + len(chassis)/8), byte(1 + (len(chassis)+len(brd))/8), 0, 0}
	hdr = append(hdr, zeroSum(hdr))
	img := append(hdr, chassis...)
	img = append(img, brd...)
	return append(img, prod...)
}

func zeroSum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}
