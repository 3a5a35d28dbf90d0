package redfish

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"sort"
	"time"

	"cmcd/accounts"
)

// session is one Redfish login session.
type session struct {
	id       string
	key      string // tokenKey of the X-Auth-Token: the token itself is never kept
	user     string
	created  time.Time
	lastUsed time.Time
	pubUsed  time.Time // lastUsed as last reported to the sessions hook (sessionrep.go)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// authenticate fills c.account from the X-Auth-Token header or Basic
// credentials. It reports false when there are none or they are not valid.
func (s *Server) authenticate(c *ctx) bool {
	if tok := c.r.Header.Get("X-Auth-Token"); tok != "" {
		sess := s.lookupSession(tok)
		if sess == nil {
			return false
		}
		a, err := s.acct.Get(sess.user)
		if err != nil || !a.Enabled {
			s.dropSession(sess.key)
			return false
		}
		c.account, c.session, c.authed = a, sess, true
		return true
	}
	user, pass, ok := c.r.BasicAuth()
	if !ok {
		return false
	}
	a, err := s.acct.Authenticate(user, pass, c.r.RemoteAddr)
	if err != nil {
		s.log.Warn("redfish: Basic authentication refused", "user", user, "source", c.r.RemoteAddr, "err", err)
		return false
	}
	c.account, c.authed = a, true
	return true
}

// lookupSession returns the live session of token, refreshing its idle
// timer, or nil; expired sessions are removed.
func (s *Server) lookupSession(token string) *session {
	key := tokenKey(token)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expireLocked(now)
	// The map is keyed by the token's SHA-256: looking up a hash leaks
	// nothing about the token through timing.
	sess := s.sessions[key]
	if sess == nil {
		return nil
	}
	sess.lastUsed = now
	s.usedLocked(sess)
	return sess
}

func (s *Server) expireLocked(now time.Time) {
	for t, sess := range s.sessions {
		if now.Sub(sess.lastUsed) >= s.timeout {
			s.log.Info("redfish: session expired", "id", sess.id, "user", sess.user)
			delete(s.sessions, t)
			s.sessionsChangedLocked()
		}
	}
}

func (s *Server) dropSession(key string) {
	s.mu.Lock()
	delete(s.sessions, key)
	s.sessionsChangedLocked()
	s.mu.Unlock()
}

// sessionList returns the live sessions ordered by creation.
func (s *Server) sessionList() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(s.now())
	out := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].created.Before(out[j].created) })
	return out
}

func (s *Server) sessionByID(id string) *session {
	for _, sess := range s.sessionList() {
		if sess.id == id {
			return sess
		}
	}
	return nil
}

const sessionsURI = "/redfish/v1/SessionService/Sessions"

// createSession is POST .../Sessions (open): log in with UserName and
// Password.
func (s *Server) createSession(c *ctx) error {
	body, err := c.body()
	if err != nil {
		return err
	}
	var user, pass string
	for _, f := range []struct {
		name string
		dst  *string
	}{{"UserName", &user}, {"Password", &pass}} {
		raw, ok := body[f.name]
		if !ok {
			return &Error{Status: http.StatusBadRequest, MessageID: "PropertyMissing", Args: []string{f.name}, Property: f.name}
		}
		if json.Unmarshal(raw, f.dst) != nil {
			return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueTypeError",
				Args: []string{redact(f.name, raw), f.name}, Property: f.name}
		}
	}
	for k := range body {
		if k != "UserName" && k != "Password" && k != "Context" {
			return &Error{Status: http.StatusBadRequest, MessageID: "PropertyUnknown", Args: []string{k}, Property: k}
		}
	}
	a, err := s.acct.Authenticate(user, pass, c.r.RemoteAddr)
	if err != nil {
		s.log.Warn("redfish: login refused", "user", user, "source", c.r.RemoteAddr, "err", err)
		s.unauthorizedLogin(c)
		return nil
	}
	now := s.now()
	token := randomHex(32)
	sess := &session{id: randomHex(8), key: tokenKey(token), user: a.Username, created: now, lastUsed: now, pubUsed: now}
	s.mu.Lock()
	s.expireLocked(now)
	if len(s.sessions) >= MaxSessions {
		// Drop the least recently used session rather than refuse logins.
		var oldest *session
		for _, o := range s.sessions {
			if oldest == nil || o.lastUsed.Before(oldest.lastUsed) {
				oldest = o
			}
		}
		delete(s.sessions, oldest.key)
	}
	s.sessions[sess.key] = sess
	s.sessionsChangedLocked()
	s.mu.Unlock()
	s.log.Info("redfish: session created", "id", sess.id, "user", a.Username, "source", c.r.RemoteAddr)
	loc := sessionsURI + "/" + sess.id
	c.w.Header().Set("X-Auth-Token", token)
	c.w.Header().Set("Location", loc)
	s.reply(c, http.StatusCreated, s.sessionDoc(sess))
	return nil
}

// unauthorizedLogin answers a refused login: the same 401 whatever the
// reason.
func (s *Server) unauthorizedLogin(c *ctx) { s.fail(c, errNoSession) }

func redact(name string, raw json.RawMessage) string {
	if name == "Password" {
		return "(hidden)"
	}
	return string(raw)
}

func (s *Server) sessionDoc(sess *session) map[string]any {
	return map[string]any{
		"@odata.id":   sessionsURI + "/" + sess.id,
		"@odata.type": "#Session.v1_8_0.Session",
		"Id":          sess.id,
		"Name":        "User Session",
		"UserName":    sess.user,
		"Password":    nil,
		"CreatedTime": sess.created.UTC().Format(time.RFC3339),
		"SessionType": "Redfish",
	}
}

// canSee reports whether c may see or end sess: its owner, or a user
// manager.
func (c *ctx) canSee(sess *session) bool {
	return sess.user == c.account.Username || accounts.HasPrivilege(c.account.Role, accounts.PrivConfigureUsers)
}

func (s *Server) getSession(c *ctx) (any, error) {
	sess := s.sessionByID(c.param("id"))
	if sess == nil || !c.canSee(sess) {
		return nil, notFound("Session", c.param("id"))
	}
	return s.sessionDoc(sess), nil
}

func (s *Server) deleteSession(c *ctx) error {
	sess := s.sessionByID(c.param("id"))
	if sess == nil || !c.canSee(sess) {
		return notFound("Session", c.param("id"))
	}
	s.dropSession(sess.key)
	s.log.Info("redfish: session deleted", "id", sess.id, "user", sess.user, "by", c.account.Username)
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) getSessions(c *ctx) (any, error) {
	var members []any
	for _, sess := range s.sessionList() {
		if c.canSee(sess) {
			members = append(members, odataID(sessionsURI+"/"+sess.id))
		}
	}
	return collection(sessionsURI, "#SessionCollection.SessionCollection", "Session Collection", members), nil
}

func (s *Server) getSessionService(c *ctx) (any, error) {
	s.mu.Lock()
	timeout := s.timeout
	s.mu.Unlock()
	return map[string]any{
		"@odata.id":      "/redfish/v1/SessionService",
		"@odata.type":    "#SessionService.v1_2_0.SessionService",
		"Id":             "SessionService",
		"Name":           "Session Service",
		"ServiceEnabled": true,
		"SessionTimeout": int(timeout / time.Second),
		"Status":         status("OK"),
		"Sessions":       odataID(sessionsURI),
	}, nil
}

// patchSessionService changes SessionTimeout (30..86400 seconds).
func (s *Server) patchSessionService(c *ctx) error {
	body, err := c.body()
	if err != nil {
		return err
	}
	cur, _ := s.getSessionService(c)
	if err := checkWritable(body, cur.(map[string]any), "SessionTimeout"); err != nil {
		return err
	}
	if raw, ok := body["SessionTimeout"]; ok {
		var n int
		if json.Unmarshal(raw, &n) != nil {
			return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueTypeError",
				Args: []string{string(raw), "SessionTimeout"}, Property: "SessionTimeout"}
		}
		if n < 30 || n > 86400 {
			return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueIncorrect",
				Args: []string{"SessionTimeout", string(raw)}, Property: "SessionTimeout",
				Resolution: "SessionTimeout is in seconds, from 30 to 86400."}
		}
		s.mu.Lock()
		s.timeout = time.Duration(n) * time.Second
		s.sessionsChangedLocked()
		s.mu.Unlock()
	}
	v, _ := s.getSessionService(c)
	s.reply(c, http.StatusOK, v)
	return nil
}

// checkWritable refuses properties of body other than the writable ones:
// PropertyNotWritable for properties of the current representation cur,
// PropertyUnknown for the rest.
func checkWritable(body map[string]json.RawMessage, cur map[string]any, writable ...string) error {
	keys := make([]string, 0, len(body))
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
outer:
	for _, k := range keys {
		for _, w := range writable {
			if k == w {
				continue outer
			}
		}
		if _, ok := cur[k]; ok {
			return &Error{Status: http.StatusBadRequest, MessageID: "PropertyNotWritable", Args: []string{k}, Property: k}
		}
		return &Error{Status: http.StatusBadRequest, MessageID: "PropertyUnknown", Args: []string{k}, Property: k}
	}
	return nil
}
