package redfish

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"cmcd/accounts"
	"cmcd/firmware"
	"cmcd/syncsel"
	"cmcd/timesrc"
)

// Defaults.
const (
	// MaxBody is the largest request body accepted (413 above it).
	MaxBody = 64 << 10
	// DefaultSessionTimeout is the idle time after which a session ends.
	DefaultSessionTimeout = 30 * time.Minute
	// MaxSessions bounds the number of open sessions.
	MaxSessions = 64
)

// Options configure a Server.
type Options struct {
	Accounts       *accounts.Store
	Engine         *syncsel.Engine
	Log            *slog.Logger
	SessionTimeout time.Duration    // idle timeout; 0 means DefaultSessionTimeout
	Now            func() time.Time // clock for sessions; nil means time.Now
	Tree           TreeOptions      // board, images, network: see TreeOptions
	SSEKeepAlive   time.Duration    // event stream keep-alive; 0 means DefaultSSEKeepAlive
	SensorPoll     time.Duration    // health-change polling; 0 means DefaultSensorPoll
	TimeSource     *timesrc.Service // the region time source (timesrc.go); nil: none
	// Firmware is the firmware update service behind UpdateService
	// uploads, SimpleUpdate, TaskService, the Manager's
	// ActiveSoftwareImage and the S5 keep-or-restore choice (update.go).
	// Nil: updates are not offered.
	Firmware *firmware.Service
	// Pair is the redundant pair (pair.go): both modules' Managers, the
	// ForceFailover action, Oem.Cmcd.Pair. Nil: a single CMC.
	Pair PairView
}

// Server is the Redfish service; it is an http.Handler.
type Server struct {
	acct   *accounts.Store
	eng    *syncsel.Engine
	log    *slog.Logger
	now    func() time.Time
	routes []*route
	tree   treeState
	ts     *timesrc.Service // nil: no time source

	mu       sync.Mutex
	sessions map[string]*session // by tokenKey of the token
	timeout  time.Duration
	onSess   func() // sessions hook (sessionrep.go); nil: none

	events *eventHub // EventService (events.go); Close stops it
	logs   *logCache // serialized node log collections (logcache.go)

	fw    *firmware.Service // nil: no updates (update.go)
	tasks taskStore

	pair PairView // nil: no pair (pair.go)
}

// New returns a Server answering from o.Engine's running store and
// authenticating against o.Accounts.
func New(o Options) *Server {
	s := &Server{acct: o.Accounts, eng: o.Engine, log: o.Log, now: o.Now, timeout: o.SessionTimeout,
		sessions: map[string]*session{}, ts: o.TimeSource, fw: o.Firmware, pair: o.Pair}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.timeout <= 0 {
		s.timeout = DefaultSessionTimeout
	}
	s.routes = s.table()
	s.initTree(o.Tree)
	s.events = newEventHub(s, o)
	s.logs = newLogCache()
	return s
}

// op is one method of a route with the privilege it needs. open ops answer
// without authentication.
type op struct {
	priv accounts.Privilege
	open bool
	fn   func(c *ctx) error
}

// route is one URI pattern ("{name}" segments match anything) with its
// representation (GET) and its other methods.
type route struct {
	pattern string
	segs    []string
	get     func(c *ctx) (any, error) // nil: no GET
	getPriv accounts.Privilege
	getOpen bool
	ops     map[string]op // PATCH, POST, DELETE
	// version, when set, is what the ETag covers instead of the whole
	// body: the writable state of a resource whose body also carries
	// live readings (the Manager's clock and sync state), so that an
	// If-Match taken from a GET stays valid while readings change.
	// If-None-Match is not answered with 304 on such a route.
	version func(doc any) any
	// maxBody, when set, is the body limit of the route's methods instead
	// of MaxBody (firmware uploads).
	maxBody func() int64
}

func (rt *route) allow() string {
	var m []string
	if rt.get != nil {
		m = append(m, "GET", "HEAD")
	}
	for k := range rt.ops {
		m = append(m, k)
	}
	sort.Strings(m)
	return strings.Join(m, ", ")
}

func (rt *route) match(path string) (map[string]string, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) != len(rt.segs) {
		return nil, false
	}
	var params map[string]string
	for i, p := range rt.segs {
		if strings.HasPrefix(p, "{") {
			if segs[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[strings.Trim(p, "{}")] = segs[i]
		} else if p != segs[i] {
			return nil, false
		}
	}
	return params, true
}

// ctx is one request being served.
type ctx struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	route   *route
	params  map[string]string
	account accounts.Account // the authenticated account; zero when open
	session *session         // the session used, if any
	authed  bool
}

func (c *ctx) param(k string) string { return c.params[k] }

// body decodes the request body as one JSON object, keeping its raw values.
func (c *ctx) body() (map[string]json.RawMessage, error) {
	var raw bytes.Buffer
	if _, err := raw.ReadFrom(c.r.Body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, errMalformed
	}
	var m map[string]json.RawMessage
	d := json.NewDecoder(&raw)
	if err := d.Decode(&m); err != nil || m == nil || d.More() {
		return nil, errMalformed
	}
	return m, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, after := withAfter(w, r)
	defer after()
	h := w.Header()
	h.Set("OData-Version", "4.0")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	c := &ctx{s: s, w: w, r: r}
	path := r.URL.Path
	if path == "/redfish/v1" {
		path = "/redfish/v1/"
	}
	for _, rt := range s.routes {
		if p, ok := rt.match(path); ok {
			c.route, c.params = rt, p
			break
		}
	}
	limit := int64(MaxBody)
	if c.route != nil && c.route.maxBody != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
		limit = c.route.maxBody()
	}
	if r.ContentLength > limit {
		s.fail(c, errTooLarge)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if c.route != nil {
		h.Set("Allow", c.route.allow())
	}
	if v := r.Header.Get("OData-Version"); v != "" && v != "4.0" {
		s.fail(c, errorf(http.StatusPreconditionFailed, "HeaderInvalid", "OData-Version: "+v))
		return
	}
	// What the request needs: an open op answers without authentication.
	method := r.Method
	var need op
	var known bool
	if c.route != nil {
		switch method {
		case http.MethodGet, http.MethodHead:
			if c.route.get != nil {
				need, known = op{priv: c.route.getPriv, open: c.route.getOpen}, true
			}
		default:
			need, known = c.route.ops[method]
		}
	}
	if !(known && need.open) {
		if !s.authenticate(c) {
			s.unauthorized(c)
			return
		}
	} else {
		s.authenticate(c) // optional: a session on an open URI is still refreshed
	}
	if c.route == nil {
		s.fail(c, notFound("Resource", r.URL.Path))
		return
	}
	if !known {
		s.fail(c, errNotAllowed)
		return
	}
	if !need.open {
		if need.priv == "" {
			need.priv = accounts.PrivLogin
		}
		if !accounts.HasPrivilege(c.account.Role, need.priv) {
			s.fail(c, errForbidden)
			return
		}
	}
	for k := range r.URL.Query() {
		if strings.HasPrefix(k, "$") {
			s.fail(c, errorf(http.StatusNotImplemented, "QueryNotSupported"))
			return
		}
	}
	switch method {
	case http.MethodGet, http.MethodHead:
		s.serveGet(c)
	default:
		if im := r.Header.Get("If-Match"); im != "" && c.route.get != nil {
			cur, err := c.route.get(c)
			if err != nil {
				s.fail(c, err)
				return
			}
			if !etagMatches(im, c.route.etag(cur)) {
				s.fail(c, errPrecondition)
				return
			}
		}
		if err := need.fn(c); err != nil {
			s.fail(c, err)
		}
	}
}

func (s *Server) serveGet(c *ctx) {
	v, err := c.route.get(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if _, ok := v.(streamed); ok {
		return
	}
	if raw, ok := v.(rawDoc); ok {
		s.writeTagged(c, http.StatusOK, raw.contentType, raw.body, raw.etag)
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.fail(c, err)
		return
	}
	if c.route.version != nil {
		c.w.Header().Set("ETag", c.route.etag(v))
		c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
		c.w.WriteHeader(http.StatusOK)
		if c.r.Method != http.MethodHead {
			c.w.Write(b)
		}
		return
	}
	s.writeRaw(c, http.StatusOK, "application/json; charset=utf-8", b)
}

// etag is the ETag of doc, a representation of the route's resource.
func (rt *route) etag(doc any) string {
	if rt.version != nil {
		doc = rt.version(doc)
	}
	b, _ := json.Marshal(doc)
	return etagOf(b)
}

// rawDoc is a GET answer that is not JSON ($metadata).
type rawDoc struct {
	contentType string
	body        []byte
	etag        string // precomputed ETag of body; "" computes it
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// etagMatches reports whether an If-Match / If-None-Match list names tag.
func etagMatches(list, tag string) bool {
	for _, t := range strings.Split(list, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == tag {
			return true
		}
	}
	return false
}

func (s *Server) writeRaw(c *ctx, status int, ctype string, b []byte) {
	s.writeTagged(c, status, ctype, b, "")
}

func (s *Server) writeTagged(c *ctx, status int, ctype string, b []byte, tag string) {
	h := c.w.Header()
	if tag == "" {
		tag = etagOf(b)
	}
	h.Set("ETag", tag)
	if status == http.StatusOK && (c.r.Method == http.MethodGet || c.r.Method == http.MethodHead) {
		if inm := c.r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, tag) {
			c.w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	h.Set("Content-Type", ctype)
	c.w.WriteHeader(status)
	if c.r.Method != http.MethodHead {
		c.w.Write(b)
	}
}

// reply writes a JSON body with status (used by non-GET methods).
func (s *Server) reply(c *ctx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.w.WriteHeader(status)
	c.w.Write(b)
}

// fail writes err as a Redfish error; errors that are not *Error become
// 500 InternalError and are logged.
func (s *Server) fail(c *ctx, err error) {
	var e *Error
	if !errors.As(err, &e) {
		s.log.Error("redfish: internal error", "method", c.r.Method, "path", c.r.URL.Path, "err", err)
		e = errorf(http.StatusInternalServerError, "InternalError")
	}
	b, _ := json.Marshal(e.body())
	c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.w.WriteHeader(e.Status)
	if c.r.Method != http.MethodHead {
		c.w.Write(b)
	}
}

func (s *Server) unauthorized(c *ctx) {
	c.w.Header().Set("WWW-Authenticate", `Basic realm="cmcd", charset="UTF-8"`)
	s.fail(c, errNoSession)
}
