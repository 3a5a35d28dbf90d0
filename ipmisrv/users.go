package ipmisrv

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/types"

	"cmcd/accounts"
)

// User management over IPMI (IPMI 2.0 section 22.26-22.30) on the account
// store shared with Redfish: Get/Set User Access (the role: privilege 4
// Administrator, 3 Operator, 2 ReadOnly), Get/Set User Name (a rename of
// an existing account; accounts are created over Redfish, so a name for
// an empty user ID is refused with CCh), Set User Password (set, test,
// enable, disable; passwords follow the account policy, 8 to 20 bytes).
// The registry requires Administrator for the Set commands and Operator
// for the Get commands.
//
// # The redundant pair
//
// A WriteGate (SetWriteGate) decides over every command that changes
// state — the Set User commands, Chassis Control and Clear SEL: a module
// that is not Writable (the standby) answers D5h ("cannot execute command
// in present state"), as its Redfish service answers 503. After an
// account change the gate's Replicate runs before the answer is sent, so
// an acknowledged change is on a quorum (H3); if it cannot be replicated
// the gate reverts it and the command gets D5h too.

// WriteGate decides over state-changing commands (nil fields: allowed,
// nothing to replicate).
type WriteGate struct {
	Writable  func() bool
	Replicate func(ctx context.Context) error
}

// codeNotInPresentState is D5h: cannot execute command, or request
// parameter(s), not supported in present state.
const codeNotInPresentState = types.CompletionCode(0xD5)

func (s *Server) gate() WriteGate {
	if g := s.wgate.Load(); g != nil {
		return *g
	}
	return WriteGate{}
}

// SetWriteGate installs the redundant pair's write gate.
func (s *Server) SetWriteGate(g WriteGate) { s.wgate.Store(&g) }

// gated refuses fn on a module that does not take writes.
func (s *Server) gated(fn handlerFunc) handlerFunc {
	return func(ctx context.Context, h *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
		if g := s.gate(); g.Writable != nil && !g.Writable() {
			s.o.Log.Info("ipmi: write refused on the standby module", "user", userName(h))
			return nil, codeNotInPresentState, nil
		}
		return fn(ctx, h, req)
	}
}

// replicated runs the gate's Replicate after an account change.
func (s *Server) replicated(ctx context.Context, what string) types.CompletionCode {
	g := s.gate()
	if g.Replicate == nil {
		return types.CodeOK
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := g.Replicate(ctx); err != nil {
		s.o.Log.Error("ipmi: account change not replicated; reverted", "change", what, "err", err)
		return codeNotInPresentState
	}
	return types.CodeOK
}

func (s *Server) registerUsers(r *handlers.Registry) {
	r.RegisterFunc(types.CommandGetUserAccess, s.getUserAccess)
	r.RegisterFunc(types.CommandGetUsername, s.getUserName)
	r.RegisterFunc(types.CommandSetUserAccess, s.gated(s.setUserAccess))
	r.RegisterFunc(types.CommandSetUsername, s.gated(s.setUserName))
	r.RegisterFunc(types.CommandSetUserPassword, s.setUserPassword) // gated per operation: a test writes nothing
	r.RegisterFunc(types.CommandChassisControl, s.gated(s.chassisControl))
	r.RegisterFunc(types.CommandClearSEL, s.gated(s.clearSEL))
}

// accountByID returns the account with IPMI user ID id.
func (s *Server) accountByID(id uint8) (accounts.Account, bool) {
	for _, a := range s.o.Accounts.List() {
		if a.UserID == id {
			return a, true
		}
	}
	return accounts.Account{}, false
}

// channelOK accepts the LAN channel (1) and "this channel" (Eh).
func channelOK(ch uint8) bool { return ch == 1 || ch == types.ChannelNumberSelf }

func userID(b byte) uint8 { return b & 0x3f }

func validID(id uint8) bool { return id >= 1 && id <= accounts.MaxUserID }

func (s *Server) getUserAccess(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 2 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	id := userID(req[1])
	if !channelOK(req[0]&0x0f) || !validID(id) {
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	enabled := 0
	for _, a := range s.o.Accounts.List() {
		if a.Enabled {
			enabled++
		}
	}
	status, access := uint8(0b10), uint8(0x0f) // disabled, no access
	if a, ok := s.accountByID(id); ok {
		if a.Enabled {
			status = 0b01
			access = 1<<4 | accounts.IPMIPrivilege(a.Role) // IPMI messaging enabled
		} else {
			access = accounts.IPMIPrivilege(a.Role)
		}
	}
	return []byte{accounts.MaxUserID, status<<6 | uint8(enabled)&0x3f, 0x01, access}, types.CodeOK, nil
}

func (s *Server) getUserName(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 1 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	id := userID(req[0])
	if !validID(id) {
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	name := make([]byte, 16)
	if id == 1 {
		return name, types.CodeOK, nil // the null user
	}
	a, ok := s.accountByID(id)
	if !ok {
		return nil, types.CodeRequestDataFieldInvalid, nil // "no such user" to enumerators
	}
	copy(name, a.Username)
	return name, types.CodeOK, nil
}

// policyCode maps an account store refusal to a completion code.
func (s *Server) policyCode(what string, err error) types.CompletionCode {
	s.o.Log.Warn("ipmi: "+what+" refused", "err", err)
	switch {
	case errors.Is(err, accounts.ErrPolicy), errors.Is(err, accounts.ErrExists), errors.Is(err, accounts.ErrNotFound):
		return types.CodeRequestDataFieldInvalid
	}
	return types.CodeUnspecifiedError
}

func (s *Server) setUserAccess(ctx context.Context, h *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 3 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	id := userID(req[1])
	if !channelOK(req[0]&0x0f) || id < accounts.MinUserID || id > accounts.MaxUserID || (len(req) >= 4 && req[3]&0x0f != 0) {
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	a, ok := s.accountByID(id)
	if !ok {
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	var role accounts.Role
	switch req[2] & 0x0f {
	case accounts.IPMIPrivAdministrator:
		role = accounts.RoleAdministrator
	case accounts.IPMIPrivOperator:
		role = accounts.RoleOperator
	case accounts.IPMIPrivUser:
		role = accounts.RoleReadOnly
	default: // callback, OEM, no access: not roles of this store
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	if role == a.Role {
		return nil, types.CodeOK, nil
	}
	if _, err := s.o.Accounts.SetRole(a.Username, role); err != nil {
		return nil, s.policyCode("set user access", err), nil
	}
	s.o.Log.Info("ipmi: user role changed", "user", a.Username, "role", role, "by", userName(h))
	return nil, s.replicated(ctx, "set user access"), nil
}

func (s *Server) setUserName(ctx context.Context, h *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 17 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	id := userID(req[0])
	name := string(bytes.TrimRight(req[1:17], "\x00"))
	a, ok := s.accountByID(id)
	if !ok { // user 1, or an empty ID: accounts are created over Redfish
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	if name == a.Username {
		return nil, types.CodeOK, nil
	}
	if _, err := s.o.Accounts.Rename(a.Username, name); err != nil {
		return nil, s.policyCode("set user name", err), nil
	}
	s.o.Log.Info("ipmi: user renamed", "from", a.Username, "to", name, "by", userName(h))
	return nil, s.replicated(ctx, "set user name"), nil
}

// Set User Password operations (table 22-42).
const (
	pwDisable = 0
	pwEnable  = 1
	pwSet     = 2
	pwTest    = 3
)

func (s *Server) setUserPassword(ctx context.Context, h *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
	if len(req) < 2 {
		return nil, types.CodeRequestDataTruncated, nil
	}
	id := userID(req[0])
	size := 16
	if req[0]&0x80 != 0 {
		size = 20
	}
	op := req[1] & 0x03
	a, ok := s.accountByID(id)
	if !ok {
		return nil, types.CodeRequestDataFieldInvalid, nil
	}
	var pw []byte
	if op == pwSet || op == pwTest {
		if len(req) < 2+size {
			return nil, types.CodeRequestDataTruncated, nil
		}
		pw = bytes.TrimRight(req[2:2+size], "\x00")
	}
	if op == pwTest {
		cur, _, _, err := s.o.Accounts.IPMICredentials(a.Username)
		if err != nil {
			return nil, types.CodeRequestDataFieldInvalid, nil
		}
		defer clear(cur)
		if len(cur) > size {
			return nil, types.CompletionCode(0x81), nil // wrong password size
		}
		if !bytes.Equal(cur, pw) {
			return nil, types.CompletionCode(0x80), nil // password test failed
		}
		return nil, types.CodeOK, nil
	}
	if g := s.gate(); g.Writable != nil && !g.Writable() {
		s.o.Log.Info("ipmi: write refused on the standby module", "user", userName(h))
		return nil, codeNotInPresentState, nil
	}
	var err error
	what := "set user password"
	switch op {
	case pwSet:
		_, err = s.o.Accounts.SetPassword(a.Username, string(pw))
	case pwEnable:
		what = "enable user"
		_, err = s.o.Accounts.SetEnabled(a.Username, true)
	case pwDisable:
		what = "disable user"
		_, err = s.o.Accounts.SetEnabled(a.Username, false)
	}
	if err != nil {
		return nil, s.policyCode(what, err), nil
	}
	s.o.Log.Info("ipmi: "+what, "user", a.Username, "by", userName(h))
	return nil, s.replicated(ctx, what), nil
}
