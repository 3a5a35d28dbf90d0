package redfish

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Session replication (the redundant pair, SPEC H3/D3). A session is kept
// under the SHA-256 of its token, never the token itself, so the session
// list can be exported to the other module (inside a value sealed under
// the pair key): the standby then accepts the same X-Auth-Token after a
// takeover, a logout on the active ends the session on both, and the
// standby's own idle expiry keeps working from the replicated last use.
//
// The hook set with SetSessionsHook is called (under the server's lock: it
// must not block or call back) whenever the list changes: a login, a
// logout, an expiry, sessions ended with their account, a new
// SessionTimeout, and when a session's last use has moved on by more than
// a tenth of the timeout since it was last reported. A session therefore
// expires on the other module at most timeout/10 earlier than it would
// have here, never later; use does not cost one replication per request.

// tokenKey is the key a session is kept under: hex SHA-256 of the token.
func tokenKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// SessionRecord is one session as replicated: TokenSHA256 is the hex
// SHA-256 of the X-Auth-Token.
type SessionRecord struct {
	ID          string    `json:"id"`
	TokenSHA256 string    `json:"tokenSha256"`
	User        string    `json:"user"`
	Created     time.Time `json:"created"`
	LastUsed    time.Time `json:"lastUsed"`
}

// SessionState is the replicated session state: the idle timeout and the
// live sessions ordered by creation.
type SessionState struct {
	TimeoutSeconds int             `json:"timeoutSeconds"`
	Sessions       []SessionRecord `json:"sessions"`
}

// SetSessionsHook sets the function told about session changes (nil: none).
func (s *Server) SetSessionsHook(fn func()) {
	s.mu.Lock()
	s.onSess = fn
	s.mu.Unlock()
}

func (s *Server) sessionsChangedLocked() {
	if s.onSess != nil {
		s.onSess()
	}
}

// usedLocked reports a session's refreshed last use once it has moved on
// by a tenth of the timeout.
func (s *Server) usedLocked(sess *session) {
	if sess.lastUsed.Sub(sess.pubUsed) >= s.timeout/10 {
		sess.pubUsed = sess.lastUsed
		s.sessionsChangedLocked()
	}
}

// ExportSessions returns the session state (expired sessions left out).
func (s *Server) ExportSessions() SessionState {
	list := s.sessionList()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := SessionState{TimeoutSeconds: int(s.timeout / time.Second), Sessions: make([]SessionRecord, 0, len(list))}
	for _, sess := range list {
		st.Sessions = append(st.Sessions, SessionRecord{ID: sess.id, TokenSHA256: sess.key, User: sess.user,
			Created: sess.created.UTC(), LastUsed: sess.lastUsed.UTC()})
	}
	return st
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// ImportSessions makes the server's sessions exactly st's (and its idle
// timeout st's). A malformed state is refused whole and changes nothing.
// Sessions already idle past the timeout are dropped as expired.
func (s *Server) ImportSessions(st SessionState) error {
	if st.TimeoutSeconds < 30 || st.TimeoutSeconds > 86400 {
		return fmt.Errorf("redfish: replicated sessions: timeout %d s outside 30..86400", st.TimeoutSeconds)
	}
	if len(st.Sessions) > MaxSessions {
		return fmt.Errorf("redfish: replicated sessions: %d sessions, at most %d", len(st.Sessions), MaxSessions)
	}
	next := make(map[string]*session, len(st.Sessions))
	ids := map[string]bool{}
	for i, r := range st.Sessions {
		switch {
		case !isHex(r.TokenSHA256, 64):
			return fmt.Errorf("redfish: replicated session %d: tokenSha256 is not 64 hex digits", i)
		case !isHex(r.ID, 16) || ids[r.ID]:
			return fmt.Errorf("redfish: replicated session %d: id %q is not 16 hex digits or is repeated", i, r.ID)
		case r.User == "":
			return fmt.Errorf("redfish: replicated session %s: no user", r.ID)
		case next[r.TokenSHA256] != nil:
			return fmt.Errorf("redfish: replicated session %s: token repeated", r.ID)
		}
		ids[r.ID] = true
		next[r.TokenSHA256] = &session{id: r.ID, key: r.TokenSHA256, user: r.User, created: r.Created,
			lastUsed: r.LastUsed, pubUsed: r.LastUsed}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timeout = time.Duration(st.TimeoutSeconds) * time.Second
	// A session used here since (a read served by this module) keeps its
	// later use.
	for k, sess := range next {
		if old := s.sessions[k]; old != nil && old.lastUsed.After(sess.lastUsed) {
			sess.lastUsed = old.lastUsed
		}
	}
	hook := s.onSess
	s.onSess = nil // an import is not a local change
	s.sessions = next
	s.expireLocked(s.now())
	s.onSess = hook
	return nil
}

// TouchSession refreshes the idle timer of token's session as a request
// authenticated with it would; false when no live session has that token.
// The pair's active module calls it for a read it routes to the standby
// (daemon/pairload.go), so the session's use is seen and replicated here.
func (s *Server) TouchSession(token string) bool { return s.lookupSession(token) != nil }
