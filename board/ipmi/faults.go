package ipmi

import (
	"fmt"
	"time"

	"cmcd/board"
)

// Fault IDs carry their source in the top byte.
const (
	faultFromSEL    = 0x01 << 24
	faultFromSensor = 0x02 << 24
)

// faultLog is a node's derived fault history. It lives beside the SEL, not
// in it: clearing the SEL does not clear it, ClearFaults does.
type faultLog struct {
	list []board.Fault
	// open maps a condition (sensor owner/number, event type, offset) to
	// the index in list of its active fault.
	open map[string]openFault
	// seenSEL holds the keys of SEL entries already turned into faults, so
	// that each entry counts once, also after ClearFaults.
	seenSEL map[string]bool
}

type openFault struct {
	idx       int
	owner     uint8
	number    uint8
	fromState bool // raised from a sensor's current state (not from an event)
	threshold bool
}

// condKey names a condition. Threshold offsets come in pairs (going low,
// going high) of one threshold; both name the same condition.
func condKey(owner, number, eventType, offset uint8) string {
	if eventType == eventTypeThreshold {
		offset >>= 1
	}
	return fmt.Sprintf("%02x%02x:%02x:%x", owner, number, eventType, offset)
}

func (l *faultLog) init() {
	if l.open == nil {
		l.open = map[string]openFault{}
	}
	if l.seenSEL == nil {
		l.seenSEL = map[string]bool{}
	}
}

// clear drops the history. Conditions still present are raised again by
// the next update, with a new time.
func (l *faultLog) clear() {
	l.list = nil
	l.open = map[string]openFault{}
}

// addSEL turns new SEL entries into faults: an assertion of a warning or
// critical state opens a fault, the deassertion of that state closes it.
func (l *faultLog) addSEL(entries []board.SELEntry, sdr *sdrCache) {
	l.init()
	for _, e := range entries {
		k := e.Key()
		if l.seenSEL[k] || e.EventType == 0 && e.SensorType == 0 && e.GeneratorID == 0 {
			// Already counted, or an OEM record.
			l.seenSEL[k] = true
			continue
		}
		l.seenSEL[k] = true
		owner := uint8(e.GeneratorID)
		offset := e.EventData[0] & 0x0f
		ck := condKey(owner, e.SensorNumber, e.EventType, offset)
		if e.Deassertion {
			if of, found := l.open[ck]; found {
				l.list[of.idx].Active = false
				delete(l.open, ck)
			}
			continue
		}
		cl := classify(e.SensorType, e.EventType, offset)
		if cl.sev == board.SeverityOK {
			continue
		}
		if of, found := l.open[ck]; found {
			l.list[of.idx].Active = false // superseded by the new event
		}
		comp := fmt.Sprintf("%s #%#02x", sensorTypeName(e.SensorType), e.SensorNumber)
		if rec := sdr.lookup(owner, e.SensorNumber); rec != nil && rec.name != "" {
			comp = rec.name
		}
		l.list = append(l.list, board.Fault{
			ID:        faultFromSEL | uint32(e.RecordID),
			Time:      e.Time,
			Component: comp,
			Code:      cl.code,
			Severity:  cl.sev,
			Message:   e.Message,
			Active:    true,
		})
		l.open[ck] = openFault{idx: len(l.list) - 1, owner: owner, number: e.SensorNumber,
			threshold: e.EventType == eventTypeThreshold}
	}
}

// addSensors raises faults for sensors now in a warning or critical state
// and closes faults whose condition the sensors no longer show.
func (l *faultLog) addSensors(snap *sensorSnapshot, now time.Time) {
	l.init()
	present := map[string]bool{}
	read := map[uint16]bool{}
	for _, rd := range snap.readings {
		r := rd.rec
		read[r.key()] = true
		for _, off := range rd.crossed {
			present[condKey(r.owner, r.number, r.eventType, off)] = true
		}
		for _, c := range rd.conds {
			ck := condKey(r.owner, r.number, r.eventType, c.offset)
			present[ck] = true
			if _, found := l.open[ck]; found {
				continue
			}
			msg := fmt.Sprintf("%s: %s", r.label(), c.text)
			if r.analog() {
				msg += fmt.Sprintf(" (reading %g %s)", rd.value, unitName(r.unit))
			}
			comp := r.name
			if comp == "" {
				comp = fmt.Sprintf("%s #%#02x", sensorTypeName(r.sensorType), r.number)
			}
			l.list = append(l.list, board.Fault{
				ID:        faultFromSensor | uint32(r.owner)<<16 | uint32(r.number)<<8 | uint32(c.offset),
				Time:      now,
				Component: comp,
				Code:      c.class.code,
				Severity:  c.class.sev,
				Message:   msg,
				Active:    true,
			})
			l.open[ck] = openFault{idx: len(l.list) - 1, owner: r.owner, number: r.number, fromState: true,
				threshold: r.eventType == eventTypeThreshold}
		}
	}
	// A state-raised fault closes when its state clears. An event-raised
	// threshold fault closes when the sensor is back inside that
	// threshold (BMCs often log no deassertion). Discrete events stay open
	// until their deassertion is logged: their states need not latch.
	for ck, of := range l.open {
		if present[ck] || !read[uint16(of.owner)<<8|uint16(of.number)] {
			continue
		}
		if of.fromState || of.threshold {
			l.list[of.idx].Active = false
			delete(l.open, ck)
		}
	}
}

// snapshot returns a copy of the history, oldest first.
func (l *faultLog) snapshot() []board.Fault {
	return append([]board.Fault(nil), l.list...)
}
