package accounts

import "time"

// Lockout reports the lockout policy in force (WithLockout): an account is
// locked for duration after maxFailures failed logins within window;
// maxFailures 0 means lockout is off. The Redfish AccountService shows it.
func (s *Store) Lockout() (maxFailures int, window, duration time.Duration) {
	return s.maxFail, s.failWindow, s.lockout
}
