package accounts

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// failState counts one account's recent failed logins. In memory only: a
// restart forgets it, and failed logins never cost a flash write.
type failState struct {
	n           int
	first       time.Time // start of the current counting window
	lockedUntil time.Time
}

// cacheEntry remembers that user's password, as HMAC-SHA256 under the
// per-process key, verified against the account at Version version.
type cacheEntry struct {
	mac     [sha256.Size]byte
	version uint64
	expires time.Time
}

// locked reports whether user is locked out at now. Callers hold s.mu.
func (s *Store) locked(user string, now time.Time) bool {
	f := s.fails[user]
	return f != nil && now.Before(f.lockedUntil)
}

// fail counts a failed login of an existing account. Callers hold s.mu.
func (s *Store) fail(user string, now time.Time) {
	if s.maxFail <= 0 {
		return
	}
	f := s.fails[user]
	if f == nil {
		f = &failState{}
		s.fails[user] = f
	}
	if f.n == 0 || now.Sub(f.first) >= s.failWindow {
		f.n, f.first = 0, now
	}
	f.n++
	if f.n >= s.maxFail {
		f.n, f.lockedUntil = 0, now.Add(s.lockout)
		delete(s.cache, user)
	}
}

func (s *Store) mac(password string) (m [sha256.Size]byte) {
	h := hmac.New(sha256.New, s.cacheKey)
	h.Write([]byte(password))
	copy(m[:], h.Sum(nil))
	return m
}

// Authenticate checks a password for a Redfish login (session or Basic
// auth) from source, the client's address ("host" or "host:port"). In
// order it refuses: a rate-limited source (ErrRateLimited), a wrong
// password or unknown user (both ErrBadCredentials, at the same bcrypt
// cost), a locked account (ErrLocked) and, only after the right password, a
// disabled one (ErrDisabled). Failures count toward the account's lockout
// and the source's limit. Callers must answer all of them alike on the wire
// (HTTP 401): the distinct errors are for the log.
//
// A password verified within the cache TTL for the same, unmodified account
// is accepted without running bcrypt again (see the package doc).
func (s *Store) Authenticate(user, password, source string) (Account, error) {
	if err := s.limiter.Allow(source); err != nil {
		return Account{}, err
	}
	mac := s.mac(password)
	s.mu.Lock()
	now := s.clock.Now()
	hash := s.dummyHash
	if i := s.find(user); i >= 0 {
		r := s.data.Accounts[i]
		e, ok := s.cache[user]
		if ok && e.version == r.Version && now.Before(e.expires) && hmac.Equal(e.mac[:], mac[:]) &&
			r.Enabled && !s.locked(user, now) {
			delete(s.fails, user)
			a := s.account(r)
			s.mu.Unlock()
			return a, nil
		}
		hash = []byte(r.Hash)
	}
	s.mu.Unlock()

	s.bcryptSem <- struct{}{}
	match := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	<-s.bcryptSem

	s.mu.Lock()
	defer s.mu.Unlock()
	now = s.clock.Now()
	i := s.find(user)
	if i < 0 || s.data.Accounts[i].Hash != string(hash) {
		// Unknown user, or the password changed (or the account was
		// replaced) while we compared: nothing was verified.
		s.limiter.Failure(source)
		return Account{}, fmt.Errorf("%w (user %q)", ErrBadCredentials, user)
	}
	r := s.data.Accounts[i]
	switch {
	case s.locked(user, now):
		s.limiter.Failure(source)
		return Account{}, fmt.Errorf("%w: %q", ErrLocked, user)
	case !match:
		s.fail(user, now)
		s.limiter.Failure(source)
		return Account{}, fmt.Errorf("%w (user %q)", ErrBadCredentials, user)
	case !r.Enabled:
		return Account{}, fmt.Errorf("%w: %q", ErrDisabled, user)
	}
	delete(s.fails, user)
	if s.cacheTTL > 0 {
		s.cache[user] = cacheEntry{mac: mac, version: r.Version, expires: now.Add(s.cacheTTL)}
	}
	return s.account(r), nil
}

// RecordAuthResult lets a login checked elsewhere (the IPMI RAKP exchange,
// which verifies an HMAC keyed with the password from IPMICredentials)
// count toward user's lockout and source's limit like Authenticate does.
func (s *Store) RecordAuthResult(user, source string, ok bool) {
	if !ok {
		s.limiter.Failure(source)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.find(user) < 0 {
		return
	}
	if ok {
		delete(s.fails, user)
	} else {
		s.fail(user, s.clock.Now())
	}
}

// Unlock lifts a lockout of user (Redfish: PATCH Locked=false).
func (s *Store) Unlock(user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.find(user) < 0 {
		return notFound(user)
	}
	delete(s.fails, user)
	return nil
}

// Limiter returns the per-source limiter Authenticate uses, so the IPMI
// responder can share it.
func (s *Store) Limiter() *Limiter { return s.limiter }
