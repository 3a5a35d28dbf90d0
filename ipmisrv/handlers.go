package ipmisrv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
)

type handlerFunc = func(context.Context, *handlers.HandlerContext, []byte) ([]byte, types.CompletionCode, error)

// register adds the responder's commands; they replace go-ipmi's stock
// handlers of the same commands.
func (s *Server) register(r *handlers.Registry) {
	for c, h := range map[types.Command]handlerFunc{
		types.CommandGetDeviceID:    s.getDeviceID,
		types.CommandGetDeviceGUID:  s.getDeviceGUID,
		types.CommandGetSystemGUID:  s.getSystemGUID,
		types.CommandGetChannelInfo: s.getChannelInfo,

		types.CommandGetChassisCapabilities: s.getChassisCapabilities,
		types.CommandGetChassisStatus:       s.getChassisStatus,
		types.CommandChassisControl:         s.chassisControl,

		types.CommandGetSELInfo:      s.getSELInfo,
		types.CommandGetSELAllocInfo: s.getSELAllocInfo,
		types.CommandReserveSEL:      s.reserveSEL,
		types.CommandGetSELEntry:     s.getSELEntry,
		types.CommandClearSEL:        s.clearSEL,
		types.CommandGetSELTime:      s.getSELTime,
		types.CommandSetSELTime:      s.setSELTime,

		types.CommandGetSDRRepoInfo:      s.getSDRRepoInfo,
		types.CommandGetSDRRepoAllocInfo: s.getSDRRepoAllocInfo,
		types.CommandReserveSDRRepo:      s.reserveSDR,
		types.CommandGetSDR:              s.getSDR,

		types.CommandGetSensorReading:    s.getSensorReading,
		types.CommandGetSensorThresholds: s.getSensorThresholds,
		types.CommandGetSensorHysteresis: s.getSensorHysteresis,

		types.CommandGetFRUInventoryAreaInfo: s.getFRUAreaInfo,
		types.CommandReadFRUData:             s.readFRUData,

		types.CommandGetDCMICapParam:     s.getDCMICap,
		types.CommandGetDCMIPowerReading: s.getDCMIPowerReading,
	} {
		r.RegisterFunc(c, h)
	}
	s.registerUsers(r) // users.go; also gates the writes above for the redundant pair
}

// privilege is the session's current privilege level.
func privilege(h *handlers.HandlerContext) bmc.PrivilegeLevel {
	if h != nil && h.Session != nil {
		return h.Session.PrivilegeLevel
	}
	return 0
}

// viewOrFail reads the current view, mapping a store failure to "node
// busy" so that clients retry rather than show stale data.
func (s *Server) viewOrFail() (*view, types.CompletionCode) {
	v, err := s.current(false)
	if err != nil {
		return nil, types.CodeNodeBusy
	}
	return v, types.CodeOK
}

// selViewOrFail is viewOrFail with the SEL merged.
func (s *Server) selViewOrFail() (*view, types.CompletionCode) {
	v, err := s.selView(false)
	if err != nil {
		return nil, types.CodeNodeBusy
	}
	return v, types.CodeOK
}

// ---- App ----

func (s *Server) getDeviceID(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	i := s.bmc.Info
	// Byte 2 bit 7 clear: no device SDRs, the SDR repository holds them.
	resp := []byte{i.DeviceID, i.DeviceRevision & 0x0f, i.FirmwareMajor & 0x7f, i.FirmwareMinor, i.IPMIVersion,
		i.AdditionalDeviceSupport, byte(i.ManufacturerID), byte(i.ManufacturerID >> 8), byte(i.ManufacturerID >> 16),
		byte(i.ProductID), byte(i.ProductID >> 8)}
	return resp, types.CodeOK, nil
}

func (s *Server) getDeviceGUID(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	g := s.DeviceGUID()
	return g[:], types.CodeOK, nil
}

func (s *Server) getSystemGUID(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	g := s.SystemGUID()
	return g[:], types.CodeOK, nil
}

// getChannelInfo describes the one channel, 1 (802.3 LAN); 0Eh means the
// channel the request came in on. Other channels do not exist.
func (s *Server) getChannelInfo(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 1 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	ch := req[0] & 0x0f
	if ch != 1 && ch != 0x0e {
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	active := min(s.bmc.Sessions.Count(), 0x3f)
	// LAN medium, IPMB-1.0 protocol, multi-session, IPMI forum's IANA number (7154).
	return []byte{0x01, 0x04, 0x01, 0x80 | byte(active), 0xf2, 0x1b, 0x00, 0x00, 0x00}, types.CodeOK, nil
}

// ---- Chassis: the enclosure, whose power is its nodes' power ----

func (s *Server) getChassisCapabilities(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	// No intrusion sensor, no front panel lockout; FRU device and SDR/SEL/SM
	// devices are all the CMC at 20h.
	return []byte{0x00, ownerID, ownerID, ownerID, ownerID, ownerID}, types.CodeOK, nil
}

func (s *Server) getChassisStatus(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	v, cc := s.viewOrFail()
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	var cur byte
	if v.anyNodeOn() {
		cur |= 0x01 // system power is on: at least one node is on
	}
	fault := false
	for _, p := range v.psus {
		if p.Present && (!p.PowerGood || p.Health == board.HealthCritical) {
			fault = true
		}
	}
	if w, ok := v.totalPower(); ok {
		var capSum float64
		for _, p := range v.psus {
			if p.Present {
				capSum += p.CapacityW
			}
		}
		if capSum > 0 && w > capSum {
			cur |= 0x02 // power overload
		}
	}
	if fault {
		cur |= 0x08 // power fault
	}
	cur |= 0x03 << 5 // power restore policy: unknown (each node has its own)
	var last byte
	if fault {
		last |= 0x08 // last power event: power fault
	}
	var misc byte
	for _, f := range v.fans {
		if f.Present && f.Health == board.HealthCritical {
			misc |= 0x08 // cooling/fan fault detected
		}
	}
	return []byte{cur, last, misc}, types.CodeOK, nil
}

func (s *Server) chassisControl(ctx context.Context, h *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 1 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	if privilege(h) < bmc.PrivilegeLevelOperator {
		return nil, types.CodeInsufficientPrivilege, nil
	}
	if s.o.Nodes == nil {
		return nil, types.CodeNotSupported, nil
	}
	var action board.PowerAction
	switch req[0] & 0x0f {
	case 0x00:
		action = board.ActionOff
	case 0x01:
		action = board.ActionOn
	case 0x02, 0x03: // power cycle; hard reset is a cycle of every node
		action = board.ActionCycle
	default:
		return nil, types.CodeParameterOutOfRange, nil
	}
	v, cc := s.viewOrFail()
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	// Every present node, in parallel; each bounded by the node source's own timeout.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, n := range v.nodes {
		if !n.Present || (action == board.ActionCycle && n.Power != board.PowerOn) {
			continue
		}
		wg.Add(1)
		go func(slot int) {
			defer wg.Done()
			if err := s.o.Nodes.SetPower(ctx, slot, action); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("node %d: %w", slot, err))
				mu.Unlock()
			}
		}(n.Slot)
	}
	wg.Wait()
	s.o.Log.Info("ipmi chassis control", "action", action, "user", userName(h), "failed", len(errs))
	if s.o.Refresh != nil {
		if err := s.o.Refresh(ctx); err != nil {
			s.o.Log.Warn("ipmi chassis control: refreshing the store", "err", err)
		}
	}
	s.invalidate()
	if len(errs) > 0 {
		s.o.Log.Warn("ipmi chassis control: some nodes failed", "err", errors.Join(errs...))
		return nil, types.CodeUnspecifiedError, nil
	}
	return nil, types.CodeOK, nil
}

func userName(h *handlers.HandlerContext) string {
	if h != nil && h.Session != nil && h.Session.User != nil {
		return h.Session.User.Name
	}
	return ""
}

// ---- SEL: the merged event log ----

func (s *Server) getSELInfo(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	v, cc := s.selViewOrFail()
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	s.mu.Lock()
	erased := s.st.SELCleared
	s.mu.Unlock()
	out := make([]byte, 14)
	out[0] = 0x51
	binary.LittleEndian.PutUint16(out[1:], uint16(len(v.sel)))
	free := (selSources*selIDsPerSource - len(v.sel)) * 16
	binary.LittleEndian.PutUint16(out[3:], uint16(min(max(free, 0), 0xfffe)))
	binary.LittleEndian.PutUint32(out[5:], v.selLast)
	binary.LittleEndian.PutUint32(out[9:], unixOrZero(erased))
	out[13] = 0x02 // Reserve SEL supported; no delete, no partial add, no overflow
	return out, types.CodeOK, nil
}

func (s *Server) getSELAllocInfo(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	v, cc := s.selViewOrFail()
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	total := min(selSources*selIDsPerSource, 0xfffe)
	freeUnits := max(total-len(v.sel), 0)
	out := make([]byte, 9)
	binary.LittleEndian.PutUint16(out[0:], uint16(total))
	binary.LittleEndian.PutUint16(out[2:], 16)
	binary.LittleEndian.PutUint16(out[4:], uint16(freeUnits))
	binary.LittleEndian.PutUint16(out[6:], uint16(freeUnits))
	out[8] = 1
	return out, types.CodeOK, nil
}

func (s *Server) reserveSEL(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	s.mu.Lock()
	s.selRsv++
	if s.selRsv == 0 {
		s.selRsv = 1
	}
	id := s.selRsv
	s.mu.Unlock()
	return []byte{byte(id), byte(id >> 8)}, types.CodeOK, nil
}

func (s *Server) selReservation(id uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return id != 0 && id == s.selRsv
}

func (s *Server) getSELEntry(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 6 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	rsv := binary.LittleEndian.Uint16(req[0:])
	id := binary.LittleEndian.Uint16(req[2:])
	offset, count := int(req[4]), int(req[5])
	if offset > 0 && !s.selReservation(rsv) {
		return nil, types.CodeReservationCanceled, nil
	}
	if offset >= 16 {
		return nil, types.CodeParameterOutOfRange, nil
	}
	v, cc := s.selViewOrFail()
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	idx := -1
	switch {
	case len(v.sel) == 0:
	case id == 0:
		idx = 0
	case id == 0xffff:
		idx = len(v.sel) - 1
	default:
		if i, ok := v.selByID[id]; ok {
			idx = i
		}
	}
	if idx < 0 {
		return nil, types.CodeRequestedDataNotPresent, nil
	}
	next := uint16(0xffff)
	if idx+1 < len(v.sel) {
		next = v.sel[idx+1].id
	}
	if count == 0xff || offset+count > 16 {
		count = 16 - offset
	}
	out := []byte{byte(next), byte(next >> 8)}
	return append(out, v.sel[idx].data[offset:offset+count]...), types.CodeOK, nil
}

// clearSEL hides every entry of the merged SEL up to now (see the package
// documentation): the store's data, which Redfish and the sync rounds
// carry, is left alone.
func (s *Server) clearSEL(_ context.Context, h *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 6 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	if privilege(h) < bmc.PrivilegeLevelOperator {
		return nil, types.CodeInsufficientPrivilege, nil
	}
	if !s.selReservation(binary.LittleEndian.Uint16(req[0:])) {
		return nil, types.CodeReservationCanceled, nil
	}
	if req[2] != 'C' || req[3] != 'L' || req[4] != 'R' {
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	switch req[5] {
	case 0x00: // get erasure status
		return []byte{0x01}, types.CodeOK, nil
	case 0xaa:
	default:
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	v, err := s.selView(true)
	if err != nil {
		return nil, types.CodeNodeBusy, nil
	}
	s.mu.Lock()
	next := s.st
	next.SELMarks = v.selHighWater()
	next.SELCleared = s.o.Now().Unix()
	err = saveState(s.o.StateDir, next)
	if err == nil {
		s.st = next
		s.cur = nil
	}
	s.mu.Unlock()
	if err != nil {
		s.o.Log.Error("ipmi Clear SEL: saving the clear marks", "err", err)
		return nil, types.CodeUnspecifiedError, nil
	}
	s.o.Log.Info("ipmi SEL cleared", "user", userName(h), "entries", len(v.sel))
	return []byte{0x01}, types.CodeOK, nil // erasure completed
}

func (s *Server) getSELTime(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	out := make([]byte, 4)
	binary.LittleEndian.PutUint32(out, unixOrZero(s.o.Now().Unix()))
	return out, types.CodeOK, nil
}

// setSELTime is refused: the SEL clock is the CMC's system clock, set by
// the time service, never by an IPMI client.
func (s *Server) setSELTime(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 4 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	return nil, types.CodeNotSupported, nil
}

// ---- SDR repository and sensors ----

func (s *Server) getSDRRepoInfo(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	v, cc := s.viewOrFail()
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	s.mu.Lock()
	changed := s.st.SDRChanged
	s.mu.Unlock()
	out := make([]byte, 14)
	out[0] = 0x51
	binary.LittleEndian.PutUint16(out[1:], uint16(len(v.sdrs)))
	binary.LittleEndian.PutUint16(out[3:], 0) // no free space: the repository is generated, not written
	// The set is replaced as a whole when the chassis changes: both the
	// addition and the erase timestamp are that time.
	binary.LittleEndian.PutUint32(out[5:], unixOrZero(changed))
	binary.LittleEndian.PutUint32(out[9:], unixOrZero(changed))
	out[13] = 0x03 // Reserve SDR Repository and Get SDR Repository Allocation Info supported
	return out, types.CodeOK, nil
}

func (s *Server) getSDRRepoAllocInfo(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	v, cc := s.viewOrFail()
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	used := 0
	maxRec := 0
	for _, r := range v.sdrs {
		used += (len(r) + 15) / 16
		maxRec = max(maxRec, (len(r)+15)/16)
	}
	out := make([]byte, 9)
	binary.LittleEndian.PutUint16(out[0:], uint16(used))
	binary.LittleEndian.PutUint16(out[2:], 16)
	out[8] = byte(maxRec)
	return out, types.CodeOK, nil
}

func (s *Server) reserveSDR(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	s.mu.Lock()
	s.sdrRsv++
	if s.sdrRsv == 0 {
		s.sdrRsv = 1
	}
	id := s.sdrRsv
	s.mu.Unlock()
	return []byte{byte(id), byte(id >> 8)}, types.CodeOK, nil
}

func (s *Server) getSDR(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 6 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	rsv := binary.LittleEndian.Uint16(req[0:])
	id := binary.LittleEndian.Uint16(req[2:])
	offset, count := int(req[4]), int(req[5])
	v, cc := s.viewOrFail()
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	if offset > 0 {
		s.mu.Lock()
		ok := rsv != 0 && rsv == s.sdrRsv
		s.mu.Unlock()
		if !ok {
			return nil, types.CodeReservationCanceled, nil
		}
	}
	var idx int
	switch {
	case len(v.sdrs) == 0:
		return nil, types.CodeRequestedDataNotPresent, nil
	case id == 0:
		idx = 0
	case id == 0xffff:
		idx = len(v.sdrs) - 1
	case int(id) <= len(v.sdrs):
		idx = int(id) - 1
	default:
		return nil, types.CodeRequestedDataNotPresent, nil
	}
	rec := v.sdrs[idx]
	if offset >= len(rec) {
		return nil, types.CodeParameterOutOfRange, nil
	}
	if count == 0xff || offset+count > len(rec) {
		count = len(rec) - offset
	}
	next := uint16(0xffff)
	if idx+1 < len(v.sdrs) {
		next = uint16(idx + 2)
	}
	out := []byte{byte(next), byte(next >> 8)}
	return append(out, rec[offset:offset+count]...), types.CodeOK, nil
}

func (s *Server) sensorOf(req []byte) (*view, *sensor, types.CompletionCode) {
	if len(req) < 1 {
		return nil, nil, types.CodeRequestDataTruncated
	}
	v, cc := s.viewOrFail()
	if cc != types.CodeOK {
		return nil, nil, cc
	}
	i, ok := v.byNumber[req[0]]
	if !ok {
		return nil, nil, types.CodeRequestedDataNotPresent
	}
	return v, &v.sensors[i], types.CodeOK
}

func (s *Server) getSensorReading(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	v, sn, cc := s.sensorOf(req)
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	return sn.reading(v), types.CodeOK, nil
}

func (s *Server) getSensorThresholds(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	_, sn, cc := s.sensorOf(req)
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	if !sn.analog {
		return nil, types.CodeInvalidCommandForLUN, nil
	}
	return sn.thresholds(), types.CodeOK, nil
}

func (s *Server) getSensorHysteresis(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	_, sn, cc := s.sensorOf(req)
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	if !sn.analog {
		return nil, types.CodeInvalidCommandForLUN, nil
	}
	return []byte{0, 0}, types.CodeOK, nil // no hysteresis
}

// ---- FRU: 0 = the enclosure, N = node N ----

func (s *Server) fru(req []byte) ([]byte, types.CompletionCode) {
	if len(req) < 1 {
		return nil, types.CodeRequestDataTruncated
	}
	v, cc := s.viewOrFail()
	if cc != types.CodeOK {
		return nil, cc
	}
	f, ok := v.assets[int(req[0])]
	if !ok {
		return nil, types.CodeRequestedDataNotPresent
	}
	return fruImage(f), types.CodeOK
}

func (s *Server) getFRUAreaInfo(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	img, cc := s.fru(req)
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	return []byte{byte(len(img)), byte(len(img) >> 8), 0x00}, types.CodeOK, nil // accessed by bytes
}

func (s *Server) readFRUData(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 4 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	img, cc := s.fru(req)
	if cc != types.CodeOK {
		return nil, cc, nil
	}
	off := int(binary.LittleEndian.Uint16(req[1:]))
	n := int(req[3])
	if off >= len(img) {
		return nil, types.CodeParameterOutOfRange, nil
	}
	n = min(n, len(img)-off)
	return append([]byte{byte(n)}, img[off:off+n]...), types.CodeOK, nil
}
