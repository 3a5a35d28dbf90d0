package ipmisrv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/clock"
	"github.com/bougou/go-ipmi/pkg/hal"
	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/accounts"
	"cmcd/board"
)

// Options configure the responder.
type Options struct {
	// Addr is the UDP address to answer on (board default ":623").
	Addr string
	// Accounts are the IPMI users (the same accounts as Redfish's).
	Accounts *accounts.Store
	// Data returns the store to read: the running image's (an
	// *syncsel.Engine's Store method). Called for every refresh, so a
	// take-over by the backup image is followed.
	Data func() Reader
	// Nodes powers the nodes for Chassis Control; nil refuses it.
	Nodes board.NodeSource
	// Refresh, if set, is called after a power change so that the store
	// shows the new state (the collector's Collect).
	Refresh func(ctx context.Context) error
	// StateDir holds StateFile (the data directory).
	StateDir string
	// MaxAge is how long one read of the store serves requests (1s when
	// zero): a client walking 1,000 SEL entries costs one store read.
	MaxAge time.Duration
	// Firmware is the version reported by Get Device ID ("1.0" style;
	// anything else reports 0.0).
	Firmware string
	// ManufacturerID is the IANA enterprise number Get Device ID reports;
	// DefaultManufacturerID when zero. It must not be 0: ipmitool takes 0
	// as "not known yet" and asks Get Device ID again before every SEL
	// entry it prints, doubling the time of a `sel list`.
	ManufacturerID uint32
	Log            *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// HandshakeTimeout: a login abandoned this long after RAKP message 1
	// counts as a failure (DefaultHandshakeTimeout when zero).
	HandshakeTimeout time.Duration
}

// DefaultManufacturerID is 32473, the IANA enterprise number reserved for
// documentation (RFC 5612): a board sets its vendor's own.
const DefaultManufacturerID = 32473

// Server is a running RMCP+ responder.
type Server struct {
	o      Options
	conn   *gate
	srv    *server.Server
	bmc    *bmc.BMC
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	st       state
	cur      *view
	selRsv   uint16
	sdrRsv   uint16
	power    *powerStats
	stateErr error

	wgate atomic.Pointer[WriteGate] // the redundant pair's write gate (users.go); nil: none
}

// Start validates the options, loads (or creates) the state file and
// serves on o.Addr until Close.
func Start(o Options) (*Server, error) {
	if o.Accounts == nil || o.Data == nil || o.StateDir == "" {
		return nil, errors.New("ipmisrv: Accounts, Data and StateDir are required")
	}
	if o.Addr == "" {
		return nil, errors.New("ipmisrv: no listen address")
	}
	if o.MaxAge == 0 {
		o.MaxAge = time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ManufacturerID == 0 {
		o.ManufacturerID = DefaultManufacturerID
	}
	if o.HandshakeTimeout == 0 {
		o.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	st, err := loadState(o.StateDir)
	if err != nil {
		return nil, err
	}
	sysGUID, _ := guidBytes(st.SystemGUID)
	s := &Server{o: o, st: st, done: make(chan struct{}), power: newPowerStats(time.Hour)}

	major, minor := firmwareRevision(o.Firmware)
	info := bmc.DeviceInfo{
		DeviceID: 0x20, DeviceRevision: 1, FirmwareMajor: major, FirmwareMinor: minor,
		IPMIVersion:             0x02, // IPMI 2.0, BCD digits in swapped nibbles (table 20-2)
		ManufacturerID:          o.ManufacturerID & 0xfffff,
		AdditionalDeviceSupport: 0x8f, // chassis device, FRU inventory, SEL, SDR repository, sensor device
	}
	// The RAKP exchange proves the System GUID (it is the managed system's).
	s.bmc = bmc.New(info, sysGUID, nilHAL{}, bmc.WithClock(clock.Real),
		bmc.WithCipherSuites([]types.CipherSuiteID{types.CipherSuiteID17, types.CipherSuiteID3}), bmc.WithV15Disabled())
	// User 1 is IPMI's anonymous (null) user: never allowed in.
	if err := s.bmc.Users.Update(1, func(u *bmc.User) error {
		u.Enabled = false
		u.ChannelAccess = map[uint8]bmc.UserChannelAccess{}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("ipmisrv: disabling the anonymous user: %w", err)
	}

	reg := handlers.NewRegistry()
	handlers.RegisterAppHandlers(reg)     // Get Channel Info, self test; the rest replaced below
	handlers.RegisterSessionHandlers(reg) // channel auth caps, cipher suites, privilege, close, session info
	s.register(reg)

	uc, err := listenPktinfo(o.Addr) // replies leave from the address asked (the pair's floating address too)
	if err != nil {
		return nil, fmt.Errorf("ipmisrv: %w", err)
	}
	s.conn = newGate(uc, s.bmc, o.Accounts, o.Log, o.HandshakeTimeout)
	s.srv = server.NewServer(s.bmc, s.conn, server.WithHandlerRegistry(reg),
		server.WithCipherSuites([]types.CipherSuiteID{types.CipherSuiteID17, types.CipherSuiteID3}), server.WithV15Disabled())
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ctx); err != nil && ctx.Err() == nil {
			o.Log.Error("ipmi responder stopped", "err", err)
		}
	}()
	go s.conn.sweepLoop(ctx)
	go s.samplePower(ctx)
	return s, nil
}

// Addr is the UDP address the responder answers on.
func (s *Server) Addr() *net.UDPAddr { return s.conn.LocalAddr().(*net.UDPAddr) }

// Close stops the responder.
func (s *Server) Close() error {
	s.cancel()
	err := s.srv.Close()
	<-s.done
	return err
}

// SystemGUID returns the GUID Get System GUID answers, in wire order.
func (s *Server) SystemGUID() [16]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, _ := guidBytes(s.st.SystemGUID)
	return g
}

// DeviceGUID returns the GUID Get Device GUID answers, in wire order.
func (s *Server) DeviceGUID() [16]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, _ := guidBytes(s.st.DeviceGUID)
	return g
}

// current returns a view at most MaxAge old, reading the store again
// when needed (force: always).
func (s *Server) current(force bool) (*view, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	if !force && s.cur != nil && now.Sub(s.cur.at) < s.o.MaxAge && !now.Before(s.cur.at) {
		return s.cur, nil
	}
	r := s.o.Data()
	if r == nil {
		return nil, errors.New("no data store")
	}
	v, err := loadView(r, now, s.st.SELMarks)
	if err != nil {
		s.o.Log.Warn("ipmi responder: reading the store", "err", err)
		return nil, err
	}
	next := s.st
	dirty := false
	if d := fmt.Sprintf("%x", v.sdrSum); d != next.SDRDigest {
		next.SDRDigest, next.SDRChanged = d, now.Unix()
		dirty = true
		s.sdrRsv++ // a changed repository cancels SDR reservations
	}
	if dirty {
		if err := saveState(s.o.StateDir, next); err != nil {
			if s.stateErr == nil {
				s.o.Log.Error("ipmi responder: saving state", "err", err)
			}
			s.stateErr = err
		} else {
			s.stateErr = nil
		}
		s.st = next // the served state follows the data even if it could not be saved
	}
	s.cur = v
	return v, nil
}

// selView returns the current view with its SEL merged; clear marks
// that the merge dropped (see loadSEL) are saved.
func (s *Server) selView(force bool) (*view, error) {
	v, err := s.current(force)
	if err != nil {
		return nil, err
	}
	if err := v.ensureSEL(); err != nil {
		s.o.Log.Warn("ipmi responder: reading the SEL", "err", err)
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !maps.Equal(v.marks, s.st.SELMarks) && maps.Equal(v.marksIn, s.st.SELMarks) {
		next := s.st
		next.SELMarks = v.marks
		if err := saveState(s.o.StateDir, next); err != nil {
			s.o.Log.Error("ipmi responder: saving state", "err", err)
		}
		s.st = next
	}
	return v, nil
}

// invalidate makes the next request read the store again.
func (s *Server) invalidate() {
	s.mu.Lock()
	s.cur = nil
	s.mu.Unlock()
}

// firmwareRevision parses "1.2..." (an optional leading v) into the
// major and BCD minor revision of Get Device ID.
func firmwareRevision(v string) (uint8, uint8) {
	var major, minor int
	if len(v) > 0 && v[0] == 'v' {
		v = v[1:]
	}
	if n, _ := fmt.Sscanf(v, "%d.%d", &major, &minor); n < 1 || major < 0 || major > 127 || minor < 0 || minor > 99 {
		return 0, 0
	}
	return uint8(major), uint8(minor/10<<4 | minor%10)
}

// nilHAL: the responder answers every hardware command itself.
type nilHAL struct{}

func (nilHAL) Chassis() hal.ChassisHAL { return nil }
func (nilHAL) Sensors() hal.SensorHAL  { return nil }
func (nilHAL) Storage() hal.StorageHAL { return nil }
func (nilHAL) Network() hal.NetworkHAL { return nil }
func (nilHAL) GPIO() hal.GPIOHAL       { return nil }
func (nilHAL) I2C() hal.I2CHAL         { return nil }
func (nilHAL) Console() hal.ConsoleHAL { return nil }
func (nilHAL) Close() error            { return nil }
