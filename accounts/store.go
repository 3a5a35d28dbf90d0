package accounts

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/chacha20poly1305"
)

// Errors. Returned errors wrap one of these with a message naming the
// account and, for ErrPolicy, the rule that was broken; test with errors.Is.
var (
	ErrBadCredentials = errors.New("invalid user name or password")
	ErrLocked         = errors.New("account locked after repeated failed logins")
	ErrDisabled       = errors.New("account disabled")
	ErrRateLimited    = errors.New("too many failed logins from this address")
	ErrExists         = errors.New("account already exists")
	ErrNotFound       = errors.New("no such account")
	ErrPolicy         = errors.New("account policy violated")
	// ErrLastAdmin wraps ErrPolicy: the change would leave no enabled Administrator.
	ErrLastAdmin = fmt.Errorf("%w: the last enabled Administrator cannot be deleted, disabled or demoted; "+
		"create or enable another Administrator first", ErrPolicy)
	// ErrCorrupt is returned by Open when a file in the data directory cannot be used.
	ErrCorrupt = errors.New("account store corrupt")
)

// Policy limits. Passwords are at most 20 bytes and user names at most 16
// because IPMI 2.0 carries them in fields of that size.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 20
	MaxUsernameLen = 16
	MinUserID      = 2  // IPMI user 1 is the anonymous user, never used
	MaxUserID      = 15 // so at most 14 accounts
	// InitialAdmin is the account EnsureInitialAdmin creates.
	InitialAdmin = "admin"
)

// Defaults of the Options.
const (
	DefaultBcryptCost  = 10
	DefaultMaxFailures = 5
	DefaultFailWindow  = 5 * time.Minute
	DefaultLockout     = 5 * time.Minute
	DefaultCacheTTL    = 60 * time.Second
)

// Clock tells the time; tests pass a fake.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Account is a snapshot of one account, safe to keep and pass around.
type Account struct {
	Username string
	Role     Role
	Enabled  bool
	UserID   uint8  // IPMI user ID, 2..15, stable for the life of the account
	Version  uint64 // changes on every modification; never reused in this store
	Locked   bool   // locked out after failed logins, as of the call
}

// ETag is a strong entity tag derived from Version, for HTTP If-Match.
func (a Account) ETag() string { return `"` + strconv.FormatUint(a.Version, 10) + `"` }

// Option configures Open.
type Option func(*Store)

// WithBcryptCost sets the bcrypt cost of new hashes (default 10; tests use bcrypt.MinCost).
func WithBcryptCost(cost int) Option { return func(s *Store) { s.cost = cost } }

// WithClock sets the clock used for lockout, the limiter and the cache.
func WithClock(c Clock) Option { return func(s *Store) { s.clock = c } }

// WithLockout locks an account for lockout after maxFailures failed logins
// within window (defaults 5, 5m, 5m). maxFailures 0 disables lockout.
func WithLockout(maxFailures int, window, lockout time.Duration) Option {
	return func(s *Store) { s.maxFail, s.failWindow, s.lockout = maxFailures, window, lockout }
}

// WithCacheTTL sets how long a verified password is remembered (default 60s; 0 disables the cache).
func WithCacheTTL(ttl time.Duration) Option { return func(s *Store) { s.cacheTTL = ttl } }

// WithLimiter sets the per-source limiter Authenticate consults (default:
// NewLimiter(DefaultSourceFailures, DefaultSourceWindow, DefaultSourceBlock, clock)).
func WithLimiter(l *Limiter) Option { return func(s *Store) { s.limiter = l } }

// Store is the account store. It is safe for concurrent use.
type Store struct {
	dir        string
	cost       int
	clock      Clock
	maxFail    int
	failWindow time.Duration
	lockout    time.Duration
	cacheTTL   time.Duration
	limiter    *Limiter
	aead       cipher.AEAD
	dummyHash  []byte        // compared against for unknown users, so they take as long
	cacheKey   []byte        // per-process HMAC key of the verified-credential cache
	bcryptSem  chan struct{} // bounds concurrent bcrypt runs

	mu    sync.Mutex
	data  fileData              // exactly what accounts.json holds
	fails map[string]*failState // by user name; in memory only
	cache map[string]cacheEntry // by user name

	onChange func() // told after every committed change (SetChangeHook)
}

// Open opens the account store in dir, creating dir, the device key and
// (on the first change) accounts.json as needed. It refuses, with ErrCorrupt,
// files it cannot trust rather than replacing them.
func Open(dir string, opts ...Option) (*Store, error) {
	s := &Store{
		dir: dir, cost: DefaultBcryptCost, clock: systemClock{},
		maxFail: DefaultMaxFailures, failWindow: DefaultFailWindow, lockout: DefaultLockout,
		cacheTTL:  DefaultCacheTTL,
		bcryptSem: make(chan struct{}, max(1, runtime.NumCPU()/2)),
		fails:     map[string]*failState{},
		cache:     map[string]cacheEntry{},
		data:      fileData{Format: fileFormat},
	}
	for _, o := range opts {
		o(s)
	}
	if s.cost < bcrypt.MinCost || s.cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("accounts: bcrypt cost %d outside %d..%d", s.cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	if s.limiter == nil {
		s.limiter = NewLimiter(DefaultSourceFailures, DefaultSourceWindow, DefaultSourceBlock, s.clock)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	for _, name := range []string{accountsFile, keyFile, InitialPasswordFile} {
		os.Remove(filepath.Join(dir, name+tmpSuffix)) // left by a crash mid-write
	}
	raw, err := os.ReadFile(filepath.Join(dir, accountsFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	key, err := loadKey(dir, err == nil)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	s.aead, _ = chacha20poly1305.NewX(key) // cannot fail: key size checked
	if raw != nil {
		if err := s.load(raw); err != nil {
			return nil, fmt.Errorf("accounts: %w: %s: %v; fix or restore it (or move it away to start "+
				"over with a new initial admin); it is never replaced automatically",
				ErrCorrupt, filepath.Join(dir, accountsFile), err)
		}
		os.Chmod(filepath.Join(dir, accountsFile), 0o600)
	}
	s.cacheKey = make([]byte, 32)
	rand.Read(s.cacheKey)
	s.dummyHash, _ = bcrypt.GenerateFromPassword(s.cacheKey[:16], s.cost)
	return s, nil
}

// load parses and checks accounts.json.
func (s *Store) load(raw []byte) error {
	var d fileData
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	if d.Format != fileFormat {
		return fmt.Errorf("format %d, this firmware reads format %d", d.Format, fileFormat)
	}
	seen := map[string]bool{}
	ids := map[uint8]bool{}
	for _, r := range d.Accounts {
		switch {
		case checkUsername(r.Username) != nil:
			return fmt.Errorf("account %q: bad user name", r.Username)
		case seen[r.Username]:
			return fmt.Errorf("account %q appears twice", r.Username)
		case r.UserID < MinUserID || r.UserID > MaxUserID || ids[r.UserID]:
			return fmt.Errorf("account %q: bad or duplicate IPMI user ID %d", r.Username, r.UserID)
		case !r.Role.Valid():
			return fmt.Errorf("account %q: unknown role %q", r.Username, r.Role)
		case r.Version == 0 || r.Version > d.Generation:
			return fmt.Errorf("account %q: version %d outside 1..%d", r.Username, r.Version, d.Generation)
		}
		if _, err := bcrypt.Cost([]byte(r.Hash)); err != nil {
			return fmt.Errorf("account %q: bad password hash: %v", r.Username, err)
		}
		if _, err := s.unseal(r.Username, r.Secret); err != nil {
			return fmt.Errorf("account %q: %v", r.Username, err)
		}
		seen[r.Username], ids[r.UserID] = true, true
	}
	slices.SortFunc(d.Accounts, func(a, b record) int { return int(a.UserID) - int(b.UserID) })
	s.data = d
	return nil
}

// commit makes next the stored account list: it stamps version on the
// records listed in changed, writes accounts.json and, once the new file is
// in place, adopts it in memory. Callers hold s.mu.
func (s *Store) commit(next []record, changed ...string) (map[string]record, error) {
	if enabledAdmins(next) == 0 && enabledAdmins(s.data.Accounts) > 0 {
		return nil, ErrLastAdmin
	}
	d := fileData{Format: fileFormat, Generation: s.data.Generation + 1, Accounts: next}
	out := map[string]record{}
	for i := range next {
		if slices.Contains(changed, next[i].Username) {
			next[i].Version = d.Generation
			out[next[i].Username] = next[i]
		}
	}
	raw, err := json.MarshalIndent(d, "", "\t")
	if err != nil {
		return nil, err
	}
	renamed, err := writeFileAtomic(s.dir, accountsFile, append(raw, '\n'))
	if renamed { // the file on disk is the new state now; mirror it even if the directory sync failed
		s.data = d
		if s.onChange != nil {
			s.onChange()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	return out, nil
}

func enabledAdmins(rs []record) int {
	n := 0
	for _, r := range rs {
		if r.Enabled && r.Role == RoleAdministrator {
			n++
		}
	}
	return n
}

// find returns the index of user's record, or -1. Callers hold s.mu.
func (s *Store) find(user string) int {
	return slices.IndexFunc(s.data.Accounts, func(r record) bool { return r.Username == user })
}

func notFound(user string) error { return fmt.Errorf("%w: %q", ErrNotFound, user) }

// account turns a record into an Account. Callers hold s.mu.
func (s *Store) account(r record) Account {
	return Account{Username: r.Username, Role: r.Role, Enabled: r.Enabled, UserID: r.UserID,
		Version: r.Version, Locked: s.locked(r.Username, s.clock.Now())}
}

func checkUsername(u string) error {
	if len(u) < 1 || len(u) > MaxUsernameLen {
		return fmt.Errorf("%w: user name must be 1 to %d characters, got %d", ErrPolicy, MaxUsernameLen, len(u))
	}
	for _, c := range []byte(u) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: user name %q may only hold letters, digits, '.', '_' and '-'", ErrPolicy, u)
		}
	}
	return nil
}

func checkPassword(p string) error {
	if len(p) < MinPasswordLen || len(p) > MaxPasswordLen {
		return fmt.Errorf("%w: password must be %d to %d characters (IPMI 2.0 limit), got %d",
			ErrPolicy, MinPasswordLen, MaxPasswordLen, len(p))
	}
	for _, c := range []byte(p) {
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("%w: password may only hold printable ASCII characters", ErrPolicy)
		}
	}
	return nil
}

func checkRole(r Role) error {
	if !r.Valid() {
		return fmt.Errorf("%w: role %q is not one of Administrator, Operator, ReadOnly", ErrPolicy, r)
	}
	return nil
}

// hash returns the bcrypt hash of password, sharing the CPU with Authenticate.
func (s *Store) hash(password string) (string, error) {
	s.bcryptSem <- struct{}{}
	defer func() { <-s.bcryptSem }()
	h, err := bcrypt.GenerateFromPassword([]byte(password), s.cost)
	return string(h), err
}

// Create adds an enabled account with the lowest free IPMI user ID.
func (s *Store) Create(user, password string, role Role) (Account, error) {
	if err := errors.Join(checkUsername(user), checkPassword(password), checkRole(role)); err != nil {
		return Account{}, err
	}
	h, err := s.hash(password)
	if err != nil {
		return Account{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.create(user, password, h, role)
}

// create adds an account. Callers hold s.mu and have checked the policy.
func (s *Store) create(user, password, hash string, role Role) (Account, error) {
	if s.find(user) >= 0 {
		return Account{}, fmt.Errorf("%w: %q", ErrExists, user)
	}
	id := uint8(MinUserID)
	for _, r := range s.data.Accounts { // sorted by UserID
		if r.UserID == id {
			id++
		}
	}
	if id > MaxUserID {
		return Account{}, fmt.Errorf("%w: all IPMI user IDs %d..%d are taken (at most %d accounts)",
			ErrPolicy, MinUserID, MaxUserID, MaxUserID-MinUserID+1)
	}
	next := append(slices.Clone(s.data.Accounts), record{Username: user, UserID: id, Role: role,
		Enabled: true, Hash: hash, Secret: s.seal(user, password)})
	slices.SortFunc(next, func(a, b record) int { return int(a.UserID) - int(b.UserID) })
	out, err := s.commit(next, user)
	if err != nil {
		return Account{}, err
	}
	delete(s.fails, user)
	return s.account(out[user]), nil
}

// Delete removes an account. Deleting the initial admin also removes the
// initial-admin-password file.
func (s *Store) Delete(user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(user)
	if i < 0 {
		return notFound(user)
	}
	if _, err := s.commit(slices.Delete(slices.Clone(s.data.Accounts), i, i+1)); err != nil {
		return err
	}
	delete(s.fails, user)
	delete(s.cache, user)
	return s.dropInitialPassword(user)
}

// update applies fn to user's record and commits it. Callers hold s.mu.
func (s *Store) update(user string, fn func(*record)) (Account, error) {
	i := s.find(user)
	if i < 0 {
		return Account{}, notFound(user)
	}
	next := slices.Clone(s.data.Accounts)
	fn(&next[i])
	out, err := s.commit(next, user)
	if err != nil {
		return Account{}, err
	}
	delete(s.cache, user)
	return s.account(out[user]), nil
}

// SetPassword changes user's password. Changing the initial admin's password
// removes the initial-admin-password file, which no longer holds it.
func (s *Store) SetPassword(user, password string) (Account, error) {
	if err := checkPassword(password); err != nil {
		return Account{}, err
	}
	h, err := s.hash(password)
	if err != nil {
		return Account{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.update(user, func(r *record) { r.Hash, r.Secret = h, s.seal(user, password) })
	if err != nil {
		return a, err
	}
	return a, s.dropInitialPassword(user)
}

// SetRole changes user's role.
func (s *Store) SetRole(user string, role Role) (Account, error) {
	if err := checkRole(role); err != nil {
		return Account{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.update(user, func(r *record) { r.Role = role })
}

// SetEnabled enables or disables user. A disabled account cannot log in by
// Redfish or IPMI.
func (s *Store) SetEnabled(user string, enabled bool) (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.update(user, func(r *record) { r.Enabled = enabled })
}

// Get returns user's account.
func (s *Store) Get(user string) (Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(user)
	if i < 0 {
		return Account{}, notFound(user)
	}
	return s.account(s.data.Accounts[i]), nil
}

// List returns all accounts, ordered by IPMI user ID.
func (s *Store) List() []Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Account, len(s.data.Accounts))
	for i, r := range s.data.Accounts {
		out[i] = s.account(r)
	}
	return out
}

// IPMICredentials returns what the IPMI RAKP exchange needs for user: the
// clear password (a fresh slice: zero it when done), the IPMI privilege
// limit of the user's role and the IPMI user ID. A disabled or locked
// account gets ErrDisabled or ErrLocked; an unknown one ErrNotFound. Check
// Limiter().Allow(source) before, and report the RAKP outcome with
// RecordAuthResult after, so lockout and rate limits cover IPMI too.
func (s *Store) IPMICredentials(user string) (password []byte, ipmiPriv uint8, userID uint8, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.find(user)
	if i < 0 {
		return nil, 0, 0, notFound(user)
	}
	r := s.data.Accounts[i]
	switch {
	case !r.Enabled:
		return nil, 0, 0, fmt.Errorf("%w: %q", ErrDisabled, user)
	case s.locked(user, s.clock.Now()):
		return nil, 0, 0, fmt.Errorf("%w: %q", ErrLocked, user)
	}
	pw, err := s.unseal(r.Username, r.Secret)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("accounts: %q: %v", user, err)
	}
	return pw, IPMIPrivilege(r.Role), r.UserID, nil
}

// EnsureInitialAdmin creates the account "admin" (Administrator) with a
// random 16-character password when the store has no accounts at all, and
// writes that password and a newline to <dir>/initial-admin-password (mode
// 0600, crash-safely) before the account is committed, so a crash never
// leaves an admin whose password nobody knows. It returns the password and created=true so the caller can
// log that it did so (never log the password itself). When any account
// exists it does nothing.
func (s *Store) EnsureInitialAdmin() (password string, created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.data.Accounts) > 0 {
		return "", false, nil
	}
	password = randomPassword(16)
	h, err := s.hash(password)
	if err != nil {
		return "", false, err
	}
	if _, err := writeFileAtomic(s.dir, InitialPasswordFile, []byte(password+"\n")); err != nil {
		return "", false, fmt.Errorf("accounts: initial admin password: %w", err)
	}
	if _, err := s.create(InitialAdmin, password, h, RoleAdministrator); err != nil {
		return "", false, err
	}
	return password, true, nil
}

// dropInitialPassword removes the initial-admin-password file once the
// password it holds is no longer valid. Callers hold s.mu.
func (s *Store) dropInitialPassword(user string) error {
	if user != InitialAdmin {
		return nil
	}
	if err := removeDurably(s.dir, InitialPasswordFile); err != nil {
		return fmt.Errorf("accounts: remove stale %s: %w", InitialPasswordFile, err)
	}
	return nil
}

// unambiguous is the alphabet of generated passwords: no 0/O, 1/l/I.
const unambiguous = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

func randomPassword(n int) string {
	b := make([]byte, n)
	for i := range b {
		k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(unambiguous))))
		b[i] = unambiguous[k.Int64()]
	}
	return string(b)
}

// SetChangeHook sets fn to be called after every committed change of the
// account list, whatever made it (Redfish, IPMI, Import): the redundant
// pair replicates the list from there. fn runs with the store locked: it
// must not block or call the store (send on a buffered channel).
func (s *Store) SetChangeHook(fn func()) {
	s.mu.Lock()
	s.onChange = fn
	s.mu.Unlock()
}
