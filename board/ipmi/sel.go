package ipmi

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/bougou/go-ipmi/pkg/command/storage"

	"cmcd/board"
)

// maxSELRecords bounds one SEL walk (the SEL holds at most 65534 records).
const maxSELRecords = 0xfffe

// selCache is a node's SEL as last read, with the Get SEL Info answer it
// was read against.
type selCache struct {
	valid     bool
	count     uint16
	addTime   time.Time
	eraseTime time.Time
	entries   []board.SELEntry
	raws      [][]byte // the 16-byte records, parallel to entries
}

func (c *selCache) reset() { *c = selCache{} }

// refreshSEL brings the node's SEL cache up to date and returns it.
//
// Get SEL Info tells what changed since the last read: an unchanged entry
// count and addition/erase timestamps mean nothing to read; a new erase
// timestamp or fewer entries mean the SEL was cleared (or entries deleted)
// and is read again whole; otherwise only the entries after the last one
// read are fetched. After an incremental read the entry count must match
// again, else the SEL wrapped (a full SEL overwrote its oldest entries) and
// is read again whole too.
func (n *node) refreshSEL(ctx context.Context) ([]board.SELEntry, error) {
	info, err := n.selInfo(ctx)
	if err != nil {
		return nil, err
	}
	c := &n.sel
	if c.valid && c.count == info.Entries && c.addTime.Equal(info.RecentAdditionTime) &&
		c.eraseTime.Equal(info.RecentEraseTime) {
		if len(c.raws) == 0 {
			return c.entries, nil
		}
		// The timestamps have a resolution of one second: make sure the
		// last entry is still the one we hold.
		last, err := n.getSELEntry(ctx, 0xffff)
		if err == nil && bytes.Equal(last.Data, c.raws[len(c.raws)-1]) {
			return c.entries, nil
		}
		if _, answered := completionCode(err); err != nil && !answered {
			return nil, err
		}
	}
	if info.Entries == 0 {
		c.reset()
		c.valid, c.addTime, c.eraseTime = true, info.RecentAdditionTime, info.RecentEraseTime
		return c.entries, nil
	}
	sdr, err := n.loadSDR(ctx)
	if err != nil {
		return nil, err
	}
	full := !c.valid || len(c.raws) == 0 || !c.eraseTime.Equal(info.RecentEraseTime) || info.Entries < c.count
	if !full {
		ok, err := n.readSELAfterLast(ctx, sdr)
		if err != nil {
			return nil, err
		}
		if ok {
			after, err := n.selInfo(ctx)
			if err != nil {
				return nil, err
			}
			if int(after.Entries) == len(c.raws) {
				c.count, c.addTime, c.eraseTime = after.Entries, after.RecentAdditionTime, after.RecentEraseTime
				return c.entries, nil
			}
			n.log.Info("SEL wrapped or changed during read; reading it again whole",
				"cached", len(c.raws), "bmc", after.Entries)
		}
	}
	n.stats.fullSELReads++
	entries, raws, err := n.readSELFrom(ctx, 0, sdr)
	if err != nil {
		return nil, err
	}
	*c = selCache{valid: true, count: info.Entries, addTime: info.RecentAdditionTime,
		eraseTime: info.RecentEraseTime, entries: entries, raws: raws}
	return c.entries, nil
}

func (n *node) selInfo(ctx context.Context) (*storage.GetSELInfoResponse, error) {
	info := &storage.GetSELInfoResponse{}
	if err := n.call(ctx, &storage.GetSELInfoRequest{}, info); err != nil {
		return nil, fmt.Errorf("reading SEL info: %w", err)
	}
	return info, nil
}

// readSELAfterLast appends the entries after the last cached one. It
// returns false (and changes nothing) when the last cached entry is gone or
// different, which calls for a full read.
func (n *node) readSELAfterLast(ctx context.Context, sdr *sdrCache) (bool, error) {
	c := &n.sel
	last := c.raws[len(c.raws)-1]
	lastID := binary.LittleEndian.Uint16(last)
	res, err := n.getSELEntry(ctx, lastID)
	if err != nil {
		if cc, ok := completionCode(err); ok && cc == ccNotPresent {
			return false, nil
		}
		return false, err
	}
	if !bytes.Equal(res.Data, last) {
		return false, nil
	}
	if res.NextRecordID == 0xffff {
		return true, nil
	}
	entries, raws, err := n.readSELFrom(ctx, res.NextRecordID, sdr)
	if err != nil {
		if cc, ok := completionCode(err); ok && cc == ccNotPresent {
			return false, nil
		}
		return false, err
	}
	c.entries = append(c.entries, entries...)
	c.raws = append(c.raws, raws...)
	return true, nil
}

// readSELFrom reads the SEL from record id (0 = first) to its end.
func (n *node) readSELFrom(ctx context.Context, id uint16, sdr *sdrCache) ([]board.SELEntry, [][]byte, error) {
	var entries []board.SELEntry
	var raws [][]byte
	for i := 0; i < maxSELRecords; i++ {
		res, err := n.getSELEntry(ctx, id)
		if err != nil {
			if cc, ok := completionCode(err); ok && cc == ccNotPresent && id == 0 {
				break // empty SEL
			}
			return nil, nil, fmt.Errorf("reading SEL record %#04x: %w", id, err)
		}
		if len(res.Data) != 16 {
			return nil, nil, fmt.Errorf("SEL record %#04x: %d bytes, want 16", id, len(res.Data))
		}
		raw := append([]byte(nil), res.Data...)
		raws = append(raws, raw)
		entries = append(entries, convertSEL(raw, sdr))
		if res.NextRecordID == 0xffff || res.NextRecordID == id {
			break
		}
		id = res.NextRecordID
	}
	return entries, raws, nil
}

func (n *node) getSELEntry(ctx context.Context, id uint16) (*storage.GetSELEntryResponse, error) {
	n.stats.selEntryReads++
	res := &storage.GetSELEntryResponse{}
	err := n.call(ctx, &storage.GetSELEntryRequest{RecordID: id, ReadBytes: 0xff}, res)
	return res, err
}

// clearSEL erases the node's SEL (Reserve SEL, then Clear SEL) and waits
// for the erasure to complete.
func (n *node) clearSEL(ctx context.Context) error {
	rsv := &storage.ReserveSELResponse{}
	if err := n.call(ctx, &storage.ReserveSELRequest{}, rsv); err != nil {
		return fmt.Errorf("reserving the SEL: %w", err)
	}
	res := &storage.ClearSELResponse{}
	if err := n.call(ctx, &storage.ClearSELRequest{ReservationID: rsv.ReservationID}, res); err != nil {
		return fmt.Errorf("clearing the SEL: %w", err)
	}
	n.sel.reset()
	deadline := time.Now().Add(10 * time.Duration(n.cfg.Timeout))
	for res.ErasureProgressStatus&0x0f != 0x01 {
		if time.Now().After(deadline) {
			return fmt.Errorf("clearing the SEL: erasure still in progress after %s", 10*time.Duration(n.cfg.Timeout))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		res = &storage.ClearSELResponse{}
		req := &storage.ClearSELRequest{ReservationID: rsv.ReservationID, GetErasureStatusFlag: true}
		if err := n.call(ctx, req, res); err != nil {
			return fmt.Errorf("clearing the SEL (erasure status): %w", err)
		}
	}
	return nil
}

// Pre-init timestamps (IPMI v2.0 section 37.1) count seconds since the
// BMC's SEL clock was initialised, not since the epoch.
const preInitMax = 0x20000000

// convertSEL turns a 16-byte SEL record into a board.SELEntry.
func convertSEL(raw []byte, sdr *sdrCache) board.SELEntry {
	e := board.SELEntry{RecordID: binary.LittleEndian.Uint16(raw[0:2]), Severity: board.SeverityOK}
	recType := raw[2]
	ts := binary.LittleEndian.Uint32(raw[3:7])
	switch {
	case recType >= 0xe0: // non-timestamped OEM
		e.Message = fmt.Sprintf("OEM record type %#02x: % x", recType, raw[3:16])
		return e
	case recType >= 0xc0: // timestamped OEM
		e.Time = time.Unix(int64(ts), 0).UTC()
		mfg := uint32(raw[7]) | uint32(raw[8])<<8 | uint32(raw[9])<<16
		e.Message = fmt.Sprintf("OEM record type %#02x, manufacturer %d: % x", recType, mfg, raw[10:16])
		return e
	}
	e.Time = time.Unix(int64(ts), 0).UTC()
	e.GeneratorID = binary.LittleEndian.Uint16(raw[7:9])
	e.SensorType = raw[10]
	e.SensorNumber = raw[11]
	e.Deassertion = raw[12]&0x80 != 0
	e.EventType = raw[12] & 0x7f
	copy(e.EventData[:], raw[13:16])

	offset := e.EventData[0] & 0x0f
	rec := sdr.lookup(uint8(e.GeneratorID), e.SensorNumber)
	label := fmt.Sprintf("%s #%#02x", sensorTypeName(e.SensorType), e.SensorNumber)
	if rec != nil {
		label = rec.label()
	}
	dir := "asserted"
	if e.Deassertion {
		dir = "deasserted"
	}
	e.Message = fmt.Sprintf("%s: %s %s", label, eventName(e.SensorType, e.EventType, offset), dir)
	if e.EventType == eventTypeThreshold && rec != nil && rec.analog() &&
		e.EventData[0]&0xc0 == 0x40 && e.EventData[0]&0x30 == 0x10 {
		unit := unitName(rec.unit)
		e.Message += fmt.Sprintf("; reading %g %s, threshold %g %s",
			rec.convert(e.EventData[1]), unit, rec.convert(e.EventData[2]), unit)
	}
	if ts <= preInitMax {
		e.Message += fmt.Sprintf(" (BMC clock not set: %d s after BMC start)", ts)
	}
	if !e.Deassertion {
		e.Severity = classify(e.SensorType, e.EventType, offset).sev
	}
	return e
}
