package ipmisrv

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/protocol"
	"github.com/bougou/go-ipmi/pkg/rmcpplus"
	"github.com/bougou/go-ipmi/pkg/transport"
	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/accounts"
)

// RMCP+ payload types of the session handshake (IPMI 2.0 table 13-16).
const (
	payloadOpenSessionRequest  = 0x10
	payloadOpenSessionResponse = 0x11
	payloadRAKP1               = 0x12
	payloadRAKP2               = 0x13
	payloadRAKP3               = 0x14
	payloadRAKP4               = 0x15
)

// DefaultHandshakeTimeout: a handshake that has not finished this long
// after RAKP message 1 counts as a failed login (a client that finds RAKP
// message 2 wrong, as with a wrong password, gives up without RAKP
// message 3).
const DefaultHandshakeTimeout = 5 * time.Second

// gate sits between go-ipmi's server and the UDP socket. It sees every
// handshake packet before the server does and every answer after, which
// is where the account store is brought in:
//
//   - Open Session requests from a source the accounts' Limiter blocks are
//     answered "insufficient resources" (status 01h) without a session;
//   - at RAKP message 1 the named account is looked up
//     (accounts.IPMICredentials) and installed, with its key and the IPMI
//     privilege of its role, as the server's user of that name, or removed
//     when it is unknown, disabled or locked (the server then answers as
//     for a wrong password, so names cannot be probed); a requested
//     privilege of 0 ("the highest available") is the account's own
//     maximum;
//   - RAKP message 4 tells the outcome, reported with RecordAuthResult so
//     lockout and per-source limits cover IPMI as they cover Redfish; a
//     handshake abandoned after RAKP message 2 counts as a failure.
type gate struct {
	transport.PacketConn
	bmc     *bmc.BMC
	acct    *accounts.Store
	log     *slog.Logger
	timeout time.Duration

	mu        sync.Mutex
	pending   map[uint32]*handshake // by BMC session ID
	byConsole map[consoleKey]uint32
	warned    map[string]time.Time
}

type consoleKey struct {
	addr    string
	console uint32
}

type handshake struct {
	user    string
	source  string
	started time.Time
}

func newGate(c transport.PacketConn, b *bmc.BMC, a *accounts.Store, log *slog.Logger, timeout time.Duration) *gate {
	return &gate{PacketConn: c, bmc: b, acct: a, log: log, timeout: timeout, pending: map[uint32]*handshake{},
		byConsole: map[consoleKey]uint32{}, warned: map[string]time.Time{}}
}

// LocalAddr is the socket's address.
func (g *gate) LocalAddr() net.Addr {
	return g.PacketConn.(interface{ LocalAddr() net.Addr }).LocalAddr()
}

// ReadFrom returns the next packet the server may see.
func (g *gate) ReadFrom(buf []byte) (int, net.Addr, error) {
	for {
		n, addr, err := g.PacketConn.ReadFrom(buf)
		if err != nil {
			return n, addr, err
		}
		if g.admit(buf[:n], addr) {
			return n, addr, nil
		}
	}
}

// WriteTo watches the server's handshake answers, then sends.
func (g *gate) WriteTo(pkt []byte, addr net.Addr) (int, error) {
	g.observe(pkt, addr)
	return g.PacketConn.WriteTo(pkt, addr)
}

func rmcpPlus(pkt []byte) (payloadType uint8, payload []byte, ok bool) {
	if len(pkt) < 5 || pkt[3]&0x1f != 0x07 || pkt[4] != 0x06 {
		return 0, nil, false
	}
	sid, _, pt, _, p, ok := protocol.ParseRMCPPlusHeader(pkt)
	if !ok || sid != 0 {
		return 0, nil, false
	}
	return pt & 0x3f, p, true
}

// admit inspects an inbound packet; false drops it (after answering).
func (g *gate) admit(pkt []byte, addr net.Addr) bool {
	pt, payload, ok := rmcpPlus(pkt)
	if !ok {
		return true
	}
	source := addr.String()
	switch pt {
	case payloadOpenSessionRequest:
		if err := g.acct.Limiter().Allow(source); err != nil {
			g.warnOnce(source, "ipmi login refused: source rate-limited", "source", source)
			var req rmcpplus.OpenSessionRequest
			if req.Unpack(payload) == nil {
				resp := &rmcpplus.OpenSessionResponse{MessageTag: req.MessageTag,
					RmcpStatusCode: types.RmcpStatusCode(0x01), RemoteConsoleSessionID: req.RemoteConsoleSessionID}
				_, _ = g.PacketConn.WriteTo(protocol.BuildRMCPPlusPacket(payloadOpenSessionResponse, 0, 0, 0, resp.Pack()), addr)
			}
			return false
		}
	case payloadRAKP1:
		var req rmcpplus.RAKPMessage1
		if req.Unpack(payload) != nil {
			return true
		}
		g.rakp1(&req, source)
	}
	return true
}

// rakp1 installs the named account as the server's user and notes the
// handshake.
func (g *gate) rakp1(req *rmcpplus.RAKPMessage1, source string) {
	name := string(req.Username)
	sess, err := g.bmc.Sessions.Get(req.ManagedSystemSessionID)
	if err != nil {
		return // the server answers "invalid session ID"
	}
	g.sweep(time.Now())
	g.mu.Lock()
	if _, dup := g.pending[sess.BMCID]; dup {
		g.mu.Unlock()
		return // a retransmission
	}
	g.pending[sess.BMCID] = &handshake{user: name, source: source, started: time.Now()}
	g.mu.Unlock()

	var priv uint8
	var pw []byte
	var uid uint8
	if name != "" {
		pw, priv, uid, err = g.acct.IPMICredentials(name)
	} else {
		err = errors.New("anonymous")
	}
	// Drop any stale entry of this name or ID (renamed, deleted, re-keyed).
	for id := uint8(2); id <= bmc.MaxUsers; id++ {
		if u, e := g.bmc.Users.Get(id); e == nil && (u.Name == name || (err == nil && id == uid)) {
			_ = g.bmc.Users.Delete(id)
		}
	}
	if err != nil {
		g.log.Debug("ipmi login: no usable account", "user", name, "source", source, "err", err)
		return
	}
	defer clear(pw)
	uerr := g.bmc.Users.Upsert(uid, func(u *bmc.User) error {
		u.Name = name
		u.SetPassword(pw)
		u.Enabled = true
		u.ChannelAccess = map[uint8]bmc.UserChannelAccess{1: {MaxPrivilege: bmc.PrivilegeLevel(priv), Enabled: true}}
		return nil
	})
	if uerr != nil {
		g.log.Warn("ipmi login: installing the account", "user", name, "err", uerr)
		return
	}
	if req.RequestedMaximumPrivilegeLevel == 0 {
		// "Highest available": the account's own maximum, not the channel's.
		sess.ProcMu.Lock()
		if bmc.PrivilegeLevel(priv) < sess.MaxPrivilege {
			sess.MaxPrivilege = bmc.PrivilegeLevel(priv)
		}
		sess.ProcMu.Unlock()
	}
}

// observe notes the server's handshake answers.
func (g *gate) observe(pkt []byte, addr net.Addr) {
	pt, payload, ok := rmcpPlus(pkt)
	if !ok {
		return
	}
	switch pt {
	case payloadOpenSessionResponse:
		var resp rmcpplus.OpenSessionResponse
		if resp.Unpack(payload) == nil && resp.RmcpStatusCode == 0 {
			g.mu.Lock()
			g.byConsole[consoleKey{addr.String(), resp.RemoteConsoleSessionID}] = resp.ManagedSystemSessionID
			g.mu.Unlock()
		}
	case payloadRAKP2:
		// An error here that is about the requested role (09h, 0Ah) is not a
		// credential failure: the password was never tested. Other errors
		// (0Dh: a disabled or anonymous name) are failed logins.
		if len(payload) < 8 || payload[1] == 0 {
			return
		}
		status := payload[1]
		h := g.finish(addr, binary.LittleEndian.Uint32(payload[4:8]))
		if h == nil {
			return
		}
		if status == 0x09 || status == 0x0a {
			g.log.Warn("ipmi login refused: privilege level not allowed for the user", "user", h.user, "source", h.source)
			return
		}
		g.result(h, false, status)
	case payloadRAKP4:
		if len(payload) < 8 {
			return
		}
		status := payload[1]
		if h := g.finish(addr, binary.LittleEndian.Uint32(payload[4:8])); h != nil {
			g.result(h, status == 0, status)
		}
	}
}

// finish ends the pending handshake of a console session.
func (g *gate) finish(addr net.Addr, console uint32) *handshake {
	key := consoleKey{addr.String(), console}
	g.mu.Lock()
	defer g.mu.Unlock()
	id, ok := g.byConsole[key]
	if !ok {
		return nil
	}
	h := g.pending[id]
	delete(g.pending, id)
	delete(g.byConsole, key)
	return h
}

func (g *gate) result(h *handshake, ok bool, status uint8) {
	if ok {
		g.acct.RecordAuthResult(h.user, h.source, true)
		g.log.Info("ipmi session opened", "user", h.user, "source", h.source)
		return
	}
	if h.user != "" {
		g.acct.RecordAuthResult(h.user, h.source, false)
	} else {
		g.acct.Limiter().Failure(h.source)
	}
	g.log.Warn("ipmi login failed", "user", h.user, "source", h.source, "status", status)
}

// sweep fails the handshakes abandoned after RAKP message 2.
func (g *gate) sweep(now time.Time) {
	var failed []*handshake
	g.mu.Lock()
	for id, h := range g.pending {
		if now.Sub(h.started) > g.timeout {
			failed = append(failed, h)
			delete(g.pending, id)
		}
	}
	for k, id := range g.byConsole {
		if _, ok := g.pending[id]; !ok {
			if _, err := g.bmc.Sessions.Get(id); err != nil {
				delete(g.byConsole, k)
			}
		}
	}
	g.mu.Unlock()
	for _, h := range failed {
		g.result(h, false, 0xff)
	}
}

func (g *gate) sweepLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.sweep(now)
		}
	}
}

// warnOnce logs msg at most once a minute per key.
func (g *gate) warnOnce(key, msg string, args ...any) {
	g.mu.Lock()
	last := g.warned[key]
	now := time.Now()
	if now.Sub(last) < time.Minute {
		g.mu.Unlock()
		return
	}
	g.warned[key] = now
	if len(g.warned) > 1024 {
		g.warned = map[string]time.Time{key: now}
	}
	g.mu.Unlock()
	g.log.Warn(msg, args...)
}
