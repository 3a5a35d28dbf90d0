package ipmisrv

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"

	"cmcd/board"
	"cmcd/syncsel"
)

// Record IDs of the merged SEL. Each source (0 = the CMC's own event log,
// 1..16 = node slots) owns a block of selIDsPerSource consecutive IDs; an
// entry's ID is 1 + source*selIDsPerSource + seq%selIDsPerSource, where
// seq is the stable sequence number the store gave the entry (a CMC event's
// ID, a node SEL entry's collector sequence). So an entry keeps its ID
// across reads, restarts and other entries arriving, and IDs stay within
// 0001h..FFFDh (0000h and FFFFh are the first/last markers).
const (
	selSources      = board.MaxNodes + 1
	selIDsPerSource = 3854 // floor(0xFFFD / 17)
)

// SELRecordID is the merged-SEL record ID of entry seq of a source (0 =
// CMC event log, 1..16 = node slot).
func SELRecordID(source int, seq uint64) uint16 {
	return uint16(1 + source*selIDsPerSource + int(seq%selIDsPerSource))
}

// NodeGeneratorID is the generator ID a node's SEL entries carry in the
// merged SEL: the node's IPMB address on the chassis, 2 x (40h + slot)
// (PICMG 3.0 hardware addresses: slot 1 -> 82h), channel 0, LUN 0. The
// CMC's own events carry 0020h, the CMC's address.
func NodeGeneratorID(slot int) uint16 { return uint16(0x80 + 2*slot) }

// CMCGeneratorID is the generator ID of the CMC's own events.
const CMCGeneratorID uint16 = 0x0020

// cmcEventSensor is the sensor number the CMC's own events are logged
// against.
const cmcEventSensor uint8 = 0xf0

// selRec is one entry of the merged SEL.
type selRec struct {
	id     uint16
	source int
	seq    uint64
	time   uint32
	data   [16]byte
}

// selMarks hides entries up to the last Clear SEL: per source, the
// highest sequence number cleared.
type selMarks map[string]uint64

func sourceKey(source int) string {
	if source == 0 {
		return "cmc"
	}
	return strconv.Itoa(source)
}

// cmcEventCode maps a CMC event to a sensor type and sensor-specific
// offset (IPMI 2.0 table 42-3):
//
//	ConfigChanged    12h System Event / 00h System Reconfigured
//	RoundCommitted   12h System Event / 03h Entry added to Auxiliary Log (the sync journal)
//	RoundRolledBack  28h Management Subsystem Health / 01h Controller access degraded or unavailable
//	BackupStarted    28h Management Subsystem Health / 02h Management Controller off-line
//	other, Critical  28h / 01h; other, Warning 28h / 00h; other 12h / 03h
func cmcEventCode(ev syncsel.Event) (stype, offset uint8) {
	switch ev.Kind {
	case "ConfigChanged":
		return 0x12, 0x00
	case "RoundCommitted":
		return 0x12, 0x03
	case "RoundRolledBack":
		return 0x28, 0x01
	case "BackupStarted":
		return 0x28, 0x02
	}
	switch ev.Severity {
	case "Critical":
		return 0x28, 0x01
	case "Warning":
		return 0x28, 0x00
	}
	return 0x12, 0x03
}

func unixOrZero(t int64) uint32 {
	if t <= 0 || t > 0xffffffff {
		return 0
	}
	return uint32(t)
}

// cmcRecord encodes a CMC event as a system event record (type 02h).
func cmcRecord(ev syncsel.Event) [16]byte {
	var b [16]byte
	b[2] = 0x02
	binary.LittleEndian.PutUint32(b[3:], unixOrZero(ev.Time.Unix()))
	binary.LittleEndian.PutUint16(b[7:], CMCGeneratorID)
	b[9] = 0x04 // event message format revision (IPMI 2.0)
	stype, off := cmcEventCode(ev)
	b[10], b[11], b[12] = stype, cmcEventSensor, 0x6f
	// Event data 2 carries the round's low byte as an OEM code when there is one.
	b[13], b[14], b[15] = off, 0xff, 0xff
	if ev.Round != 0 {
		b[13] |= 0x80
		b[14] = byte(ev.Round)
	}
	return b
}

// nodeRecord encodes a node's SEL entry with the node's generator ID.
func nodeRecord(slot int, e board.SELEntry) [16]byte {
	var b [16]byte
	b[2] = 0x02
	binary.LittleEndian.PutUint32(b[3:], unixOrZero(e.Time.Unix()))
	binary.LittleEndian.PutUint16(b[7:], NodeGeneratorID(slot))
	b[9] = 0x04
	b[10], b[11] = e.SensorType, e.SensorNumber
	b[12] = e.EventType & 0x7f
	if e.Deassertion {
		b[12] |= 0x80
	}
	copy(b[13:], e.EventData[:])
	return b
}

// loadSEL merges the CMC event log and every node's stored SEL, oldest
// first (by time, then source, then sequence), leaving out what the last
// Clear SEL hid. A source keeps at most its newest selIDsPerSource
// entries, so IDs never collide.
func (v *view) loadSEL(r Reader, marks selMarks) error {
	evs, err := r.Events()
	if err != nil {
		return fmt.Errorf("reading the CMC event log: %w", err)
	}
	var recs []selRec
	keepNewest := func(n int) int { return max(0, n-selIDsPerSource) }
	v.marks = selMarks{}
	for k, x := range marks {
		v.marks[k] = x
	}
	// mark returns the source's clear mark; a source whose newest entry is
	// below its mark has restarted its numbering (its stored log was
	// emptied and cmcd restarted), so its mark no longer applies.
	mark := func(source int, newest uint64, n int) uint64 {
		k := sourceKey(source)
		if m := v.marks[k]; n > 0 && newest < m {
			delete(v.marks, k)
		}
		return v.marks[k]
	}
	var newestEv uint64
	if len(evs) > 0 {
		newestEv = evs[len(evs)-1].ID
	}
	cm := mark(0, newestEv, len(evs))
	for _, ev := range evs[keepNewest(len(evs)):] {
		if ev.ID <= cm {
			continue
		}
		recs = append(recs, selRec{source: 0, seq: ev.ID, time: unixOrZero(ev.Time.Unix()), data: cmcRecord(ev)})
	}
	for _, n := range v.nodes {
		if n.Slot < 1 || n.Slot > board.MaxNodes {
			continue
		}
		entries, err := r.SEL(n.Slot)
		if err != nil {
			return fmt.Errorf("reading node %d's SEL: %w", n.Slot, err)
		}
		var newest uint64
		if len(entries) > 0 {
			newest = entries[len(entries)-1].Seq
		}
		m := mark(n.Slot, newest, len(entries))
		for _, e := range entries[keepNewest(len(entries)):] {
			if e.Seq <= m {
				continue
			}
			recs = append(recs, selRec{source: n.Slot, seq: e.Seq, time: unixOrZero(e.Entry.Time.Unix()),
				data: nodeRecord(n.Slot, e.Entry)})
		}
	}
	sort.SliceStable(recs, func(i, j int) bool {
		a, b := recs[i], recs[j]
		if a.time != b.time {
			return a.time < b.time
		}
		if a.source != b.source {
			return a.source < b.source
		}
		return a.seq < b.seq
	})
	for i := range recs {
		id := SELRecordID(recs[i].source, recs[i].seq)
		recs[i].id = id
		binary.LittleEndian.PutUint16(recs[i].data[0:], id)
		v.selByID[id] = i
		v.selLast = max(v.selLast, recs[i].time)
	}
	v.sel = recs
	return nil
}

// selHighWater returns, per source, the highest sequence number in the
// view: what a Clear SEL hides.
func (v *view) selHighWater() selMarks {
	out := selMarks{}
	for k, x := range v.marks {
		out[k] = x
	}
	for _, r := range v.sel {
		k := sourceKey(r.source)
		out[k] = max(out[k], r.seq)
	}
	return out
}
