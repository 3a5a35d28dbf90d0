package simbmc

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/clock"
	"github.com/bougou/go-ipmi/pkg/command/storage"
	"github.com/bougou/go-ipmi/pkg/hal"
	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/transport/udp"
	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/board"
)

// Provider is the node a simulated BMC serves: the board.NodeSource calls
// for one slot.
type Provider interface {
	Node(ctx context.Context) (board.Node, error)
	SEL(ctx context.Context) ([]board.SELEntry, error)
	ClearSEL(ctx context.Context) error
	FRU(ctx context.Context) (board.FRU, error)
	SetPower(ctx context.Context, action board.PowerAction) error
}

// Slot adapts one slot of a board.NodeSource to a Provider.
func Slot(src board.NodeSource, slot int) Provider { return slotProvider{src, slot} }

type slotProvider struct {
	src  board.NodeSource
	slot int
}

func (p slotProvider) Node(ctx context.Context) (board.Node, error) { return p.src.Node(ctx, p.slot) }
func (p slotProvider) SEL(ctx context.Context) ([]board.SELEntry, error) {
	return p.src.SEL(ctx, p.slot)
}
func (p slotProvider) ClearSEL(ctx context.Context) error { return p.src.ClearSEL(ctx, p.slot) }
func (p slotProvider) FRU(ctx context.Context) (board.FRU, error) {
	return p.src.FRU(ctx, p.slot)
}
func (p slotProvider) SetPower(ctx context.Context, a board.PowerAction) error {
	return p.src.SetPower(ctx, p.slot, a)
}

// Config says where and to whom the simulated BMC answers.
type Config struct {
	// Addr is the UDP listen address; "127.0.0.1:0" (a free loopback
	// port) when empty.
	Addr     string
	User     string
	Password string
	// CipherSuites are the RMCP+ suites offered: 17 and 3 when empty.
	CipherSuites []types.CipherSuiteID
	// Name seeds the BMC's GUID.
	Name string
	// NodeMaxAge is how long one provider Node call serves sensor
	// readings and the power state (250ms when zero), so that a client
	// walking every sensor sees one consistent snapshot.
	NodeMaxAge time.Duration
	Logger     *slog.Logger
}

// BMC is a running simulated node BMC.
type BMC struct {
	p      Provider
	cfg    Config
	conn   *udp.Conn
	srv    *server.Server
	cancel context.CancelFunc
	done   chan struct{}

	sensors   []sensorDef
	byNumber  map[uint8]int
	sdrIDs    []uint16
	sdrAdded  time.Time
	mu        sync.Mutex
	node      board.Node
	nodeAt    time.Time
	selRsv    uint16
	selErased time.Time
	sel       [][]byte
	selAt     time.Time
}

// Start builds the BMC's SDR repository from the provider's current
// sensors and serves it on cfg.Addr until Close.
func Start(ctx context.Context, p Provider, cfg Config) (*BMC, error) {
	if cfg.User == "" || cfg.Password == "" {
		return nil, errors.New("simbmc: a user and password are required (no anonymous or null users)")
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if len(cfg.CipherSuites) == 0 {
		cfg.CipherSuites = []types.CipherSuiteID{types.CipherSuiteID17, types.CipherSuiteID3}
	}
	for _, cs := range cfg.CipherSuites {
		if cs != types.CipherSuiteID17 && cs != types.CipherSuiteID3 {
			return nil, fmt.Errorf("simbmc: cipher suite %d not allowed (17 and 3 only)", cs)
		}
	}
	if cfg.NodeMaxAge == 0 {
		cfg.NodeMaxAge = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := &BMC{p: p, cfg: cfg, byNumber: map[uint8]int{}, done: make(chan struct{}), sdrAdded: time.Now()}
	n, err := p.Node(ctx)
	if err != nil {
		return nil, fmt.Errorf("simbmc: reading the node to serve: %w", err)
	}
	b.node, b.nodeAt = n, time.Now()
	for _, s := range n.Sensors {
		if _, dup := b.byNumber[s.Number]; dup {
			continue
		}
		b.byNumber[s.Number] = len(b.sensors)
		b.sensors = append(b.sensors, defineSensor(s))
		b.sdrIDs = append(b.sdrIDs, uint16(len(b.sensors)))
	}

	guid := sha256.Sum256([]byte("cmcd-simbmc/" + cfg.Name))
	var g [16]byte
	copy(g[:], guid[:])
	info := bmc.DeviceInfo{
		DeviceID: 0x20, DeviceRevision: 1, FirmwareMajor: 1, FirmwareMinor: 0, IPMIVersion: 0x20,
		ManufacturerID: 0x000157, ProductID: 0x0c3d,
		AdditionalDeviceSupport: 0x8f, // chassis, FRU, SEL, SDR repository, sensors
	}
	bm := bmc.New(info, g, &halImpl{b: b}, bmc.WithClock(clock.Real), bmc.WithCipherSuites(cfg.CipherSuites),
		bmc.WithV15Disabled())
	user, err := bm.Users.Add(2, cfg.User)
	if err != nil {
		return nil, fmt.Errorf("simbmc: %w", err)
	}
	user.SetPassword([]byte(cfg.Password))
	user.Enabled = true
	user.ChannelAccess[1] = bmc.UserChannelAccess{MaxPrivilege: bmc.PrivilegeLevelAdministrator, Enabled: true}

	reg := handlers.NewRegistry()
	handlers.RegisterAllHandlers(reg)
	b.register(reg)

	conn, err := udp.Listen(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("simbmc: %w", err)
	}
	b.conn = conn
	b.srv = server.NewServer(bm, conn, server.WithHandlerRegistry(reg), server.WithCipherSuites(cfg.CipherSuites),
		server.WithV15Disabled())
	sctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() {
		defer close(b.done)
		if err := b.srv.Serve(sctx); err != nil && sctx.Err() == nil {
			cfg.Logger.Warn("simulated BMC stopped", "addr", b.Addr().String(), "err", err)
		}
	}()
	return b, nil
}

// Addr is the UDP address the BMC answers on.
func (b *BMC) Addr() *net.UDPAddr { return b.conn.LocalAddr().(*net.UDPAddr) }

// Close stops serving.
func (b *BMC) Close() error {
	b.cancel()
	err := b.srv.Close()
	<-b.done
	return err
}

// current returns the node, read again when older than NodeMaxAge.
func (b *BMC) current(ctx context.Context) (board.Node, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if time.Since(b.nodeAt) < b.cfg.NodeMaxAge {
		return b.node, nil
	}
	n, err := b.p.Node(ctx)
	if err != nil {
		return board.Node{}, err
	}
	b.node, b.nodeAt = n, time.Now()
	return n, nil
}

func (b *BMC) forget() {
	b.mu.Lock()
	b.nodeAt = time.Time{}
	b.mu.Unlock()
}

// selRecords returns the provider's SEL as 16-byte records with record IDs
// that are unique and valid (the provider's own where they are). One
// provider SEL call serves NodeMaxAge, so that a client walking the SEL
// entry by entry costs the provider one read.
func (b *BMC) selRecords(ctx context.Context) ([][]byte, error) {
	b.mu.Lock()
	if b.sel != nil && time.Since(b.selAt) < b.cfg.NodeMaxAge {
		recs := b.sel
		b.mu.Unlock()
		return recs, nil
	}
	b.mu.Unlock()
	entries, err := b.p.SEL(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[uint16]bool{}
	useOwn := true
	for _, e := range entries {
		if e.RecordID == 0 || e.RecordID == 0xffff || seen[e.RecordID] {
			useOwn = false
			break
		}
		seen[e.RecordID] = true
	}
	out := make([][]byte, len(entries))
	for i, e := range entries {
		id := uint16(i + 1)
		if useOwn {
			id = e.RecordID
		}
		out[i] = selRecord(e, id)
	}
	b.mu.Lock()
	b.sel, b.selAt = out, time.Now()
	b.mu.Unlock()
	return out, nil
}

// register adds the handlers go-ipmi's reference server lacks (sensor
// readings, the SEL) and replaces Get SDR Repository Info, whose stock
// version reports "now" as the last change and so defeats SDR caching.
func (b *BMC) register(r *handlers.Registry) {
	r.RegisterFunc(types.CommandGetSDRRepoInfo, b.getSDRRepoInfo)
	r.RegisterFunc(types.CommandGetSensorReading, b.getSensorReading)
	r.RegisterFunc(types.CommandGetSensorThresholds, b.getSensorThresholds)
	r.RegisterFunc(types.CommandGetSELInfo, b.getSELInfo)
	r.RegisterFunc(types.CommandReserveSEL, b.reserveSEL)
	r.RegisterFunc(types.CommandGetSELEntry, b.getSELEntry)
	r.RegisterFunc(types.CommandClearSEL, b.clearSEL)
	r.RegisterFunc(types.CommandGetSELTime, b.getSELTime)
	r.RegisterFunc(types.CommandSetSELTime, b.setSELTime)
}

func (b *BMC) getSDRRepoInfo(ctx context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	resp := &storage.GetSDRRepoInfoResponse{
		SDRVersion:             0x51,
		RecordCount:            uint16(len(b.sensors)),
		FreeSpaceBytes:         0,
		MostRecentAdditionTime: b.sdrAdded,
		MostRecentEraseTime:    time.Unix(0, 0),
		SDROperationSupport:    storage.SDROperationSupport{SupportReserveSDRRepo: true},
	}
	return resp.Pack(), types.CodeOK, nil
}

func (b *BMC) getSensorReading(ctx context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 1 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	i, found := b.byNumber[req[0]]
	if !found {
		return nil, types.CodeRequestedDataNotPresent, nil
	}
	def := b.sensors[i]
	n, err := b.current(ctx)
	if err != nil {
		return nil, types.CodeUnspecifiedError, err
	}
	var s *board.Sensor
	for k := range n.Sensors {
		if n.Sensors[k].Number == def.number {
			s = &n.Sensors[k]
			break
		}
	}
	if s == nil {
		// The sensor went away: "reading unavailable".
		return []byte{0, 0xe0, 0, 0}, types.CodeOK, nil
	}
	out := []byte{def.raw(s.Value), 0xc0, 0, 0x80}
	if def.discrete {
		states := uint16(s.Value)
		out[0], out[2], out[3] = 0, byte(states), byte(states>>8)&0x7f|0x80
		return out, types.CodeOK, nil
	}
	switch s.Health {
	case board.HealthCritical:
		out[2] = 0x18 // at or above upper non-critical and critical
	case board.HealthWarning:
		out[2] = 0x08 // at or above upper non-critical
	}
	return out, types.CodeOK, nil
}

func (b *BMC) getSensorThresholds(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 1 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	i, found := b.byNumber[req[0]]
	if !found {
		return nil, types.CodeRequestedDataNotPresent, nil
	}
	return b.sensors[i].thresholds(), types.CodeOK, nil
}

func (b *BMC) getSELInfo(ctx context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	entries, err := b.selRecords(ctx)
	if err != nil {
		return nil, types.CodeUnspecifiedError, err
	}
	var added uint32
	for _, r := range entries {
		added = max(added, binary.LittleEndian.Uint32(r[3:]))
	}
	b.mu.Lock()
	erased := b.selErased
	b.mu.Unlock()
	out := make([]byte, 14)
	out[0] = 0x51
	binary.LittleEndian.PutUint16(out[1:], uint16(len(entries)))
	free := 0
	if len(entries) < 1024 {
		free = (1024 - len(entries)) * 16
	}
	binary.LittleEndian.PutUint16(out[3:], uint16(min(free, 0xfffe)))
	binary.LittleEndian.PutUint32(out[5:], added)
	binary.LittleEndian.PutUint32(out[9:], unixOrZero(erased))
	out[13] = 0x02 // Reserve SEL supported
	return out, types.CodeOK, nil
}

func unixOrZero(t time.Time) uint32 {
	if t.IsZero() || t.Unix() <= 0 {
		return 0
	}
	return uint32(t.Unix())
}

func (b *BMC) reserveSEL(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	b.mu.Lock()
	b.selRsv++
	if b.selRsv == 0 {
		b.selRsv = 1
	}
	id := b.selRsv
	b.mu.Unlock()
	return []byte{byte(id), byte(id >> 8)}, types.CodeOK, nil
}

func (b *BMC) validReservation(id uint16) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return id == b.selRsv && id != 0
}

func (b *BMC) getSELEntry(ctx context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 6 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	rsv := binary.LittleEndian.Uint16(req[0:])
	id := binary.LittleEndian.Uint16(req[2:])
	offset, count := int(req[4]), int(req[5])
	if offset > 0 && !b.validReservation(rsv) {
		return nil, types.CodeReservationCanceled, nil
	}
	if offset >= 16 {
		return nil, types.CodeParameterOutOfRange, nil
	}
	recs, err := b.selRecords(ctx)
	if err != nil {
		return nil, types.CodeUnspecifiedError, err
	}
	idx := -1
	switch {
	case len(recs) == 0:
	case id == 0:
		idx = 0
	case id == 0xffff:
		idx = len(recs) - 1
	default:
		idx = sort.Search(len(recs), func(i int) bool { return binary.LittleEndian.Uint16(recs[i]) >= id })
		if idx == len(recs) || binary.LittleEndian.Uint16(recs[idx]) != id {
			// IDs need not be sorted: fall back to a scan.
			idx = -1
			for i, r := range recs {
				if binary.LittleEndian.Uint16(r) == id {
					idx = i
					break
				}
			}
		}
	}
	if idx < 0 {
		return nil, types.CodeRequestedDataNotPresent, nil
	}
	next := uint16(0xffff)
	if idx+1 < len(recs) {
		next = binary.LittleEndian.Uint16(recs[idx+1])
	}
	if count == 0xff || offset+count > 16 {
		count = 16 - offset
	}
	out := []byte{byte(next), byte(next >> 8)}
	return append(out, recs[idx][offset:offset+count]...), types.CodeOK, nil
}

func (b *BMC) clearSEL(ctx context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 6 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	if !b.validReservation(binary.LittleEndian.Uint16(req[0:])) {
		return nil, types.CodeReservationCanceled, nil
	}
	if req[2] != 'C' || req[3] != 'L' || req[4] != 'R' {
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	switch req[5] {
	case 0x00: // get erasure status
	case 0xaa: // initiate erase
		if err := b.p.ClearSEL(ctx); err != nil {
			return nil, types.CodeUnspecifiedError, err
		}
		b.mu.Lock()
		b.selErased = time.Now()
		b.sel = nil
		b.mu.Unlock()
	default:
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	return []byte{0x01}, types.CodeOK, nil // erasure completed
}

func (b *BMC) getSELTime(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
	out := make([]byte, 4)
	binary.LittleEndian.PutUint32(out, uint32(time.Now().Unix()))
	return out, types.CodeOK, nil
}

func (b *BMC) setSELTime(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 4 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	// The SEL clock is the host's; setting it is accepted and ignored.
	return nil, types.CodeOK, nil
}

// halImpl is the hardware the reference server's stock handlers see:
// chassis power and the FRU and SDR stores.
type halImpl struct{ b *BMC }

func (h *halImpl) Chassis() hal.ChassisHAL           { return chassisHAL{h.b} }
func (h *halImpl) Sensors() hal.SensorHAL            { return nil }
func (h *halImpl) Storage() hal.StorageHAL           { return storageHAL{h.b} }
func (h *halImpl) Network() hal.NetworkHAL           { return nil }
func (h *halImpl) GPIO() hal.GPIOHAL                 { return nil }
func (h *halImpl) I2C() hal.I2CHAL                   { return nil }
func (h *halImpl) Console() hal.ConsoleHAL           { return nil }
func (h *halImpl) Close() error                      { return nil }
func (s storageHAL) FRU() hal.FRUStore               { return fruStore(s) }
func (s storageHAL) SDR() hal.SDRStore               { return sdrStore(s) }
func (c chassisHAL) ColdReset(context.Context) error { return hal.ErrNotSupported }
func (c chassisHAL) WarmReset(context.Context) error { return hal.ErrNotSupported }

type storageHAL struct{ b *BMC }

type chassisHAL struct{ b *BMC }

func (c chassisHAL) PowerState(ctx context.Context) (bool, error) {
	n, err := c.b.current(ctx)
	if err != nil {
		return false, err
	}
	return n.Power == board.PowerOn, nil
}

func (c chassisHAL) SetPower(ctx context.Context, on bool) error {
	action := board.ActionOff
	if on {
		action = board.ActionOn
	}
	defer c.b.forget()
	return c.b.p.SetPower(ctx, action)
}

func (c chassisHAL) PowerCycle(ctx context.Context) error {
	defer c.b.forget()
	return c.b.p.SetPower(ctx, board.ActionCycle)
}

func (c chassisHAL) Identify(context.Context, uint8) error        { return hal.ErrNotSupported }
func (c chassisHAL) IntrusionState(context.Context) (bool, error) { return false, hal.ErrNotSupported }
func (c chassisHAL) SetBootFlags(context.Context, *types.BootOptionParam_BootFlags) error {
	return hal.ErrNotSupported
}
func (c chassisHAL) GetBootFlags(context.Context) (*types.BootOptionParam_BootFlags, error) {
	return nil, hal.ErrNotSupported
}
func (c chassisHAL) SetBootInfoAcknowledge(context.Context, *types.BootOptionParam_BootInfoAcknowledge) error {
	return hal.ErrNotSupported
}
func (c chassisHAL) GetBootInfoAcknowledge(context.Context) (*types.BootOptionParam_BootInfoAcknowledge, error) {
	return nil, hal.ErrNotSupported
}

type fruStore struct{ b *BMC }

func (f fruStore) Read(ctx context.Context, id uint8) ([]byte, error) {
	if id != 0 {
		return nil, hal.ErrNotFound
	}
	fru, err := f.b.p.FRU(ctx)
	if err != nil {
		return nil, err
	}
	return fruImage(fru), nil
}
func (f fruStore) Write(context.Context, uint8, []byte) error { return hal.ErrNotSupported }
func (f fruStore) Delete(context.Context, uint8) error        { return hal.ErrNotSupported }
func (f fruStore) DeviceIDs(context.Context) ([]uint8, error) { return []uint8{0}, nil }

type sdrStore struct{ b *BMC }

func (s sdrStore) Read(_ context.Context, id uint16) ([]byte, error) {
	if id == 0 || int(id) > len(s.b.sensors) {
		return nil, hal.ErrNotFound
	}
	rec := append([]byte(nil), s.b.sensors[id-1].record...)
	binary.LittleEndian.PutUint16(rec, id)
	return rec, nil
}
func (s sdrStore) Write(context.Context, uint16, []byte) error { return hal.ErrNotSupported }
func (s sdrStore) Delete(context.Context, uint16) error        { return hal.ErrNotSupported }
func (s sdrStore) RecordIDs(context.Context) ([]uint16, error) {
	return append([]uint16(nil), s.b.sdrIDs...), nil
}
