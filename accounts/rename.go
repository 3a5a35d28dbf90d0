package accounts

import (
	"fmt"
	"slices"
)

// Rename changes an account's user name (IPMI Set User Name). The IPMI
// user ID, role, password and state stay; the sealed password is re-sealed
// under the new name (the name is bound into it). Failed-login state and
// the verified-password cache of the old name are dropped.
func (s *Store) Rename(user, newName string) (Account, error) {
	if err := checkUsername(newName); err != nil {
		return Account{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if user == newName {
		i := s.find(user)
		if i < 0 {
			return Account{}, notFound(user)
		}
		return s.account(s.data.Accounts[i]), nil
	}
	if s.find(newName) >= 0 {
		return Account{}, fmt.Errorf("%w: %q", ErrExists, newName)
	}
	i := s.find(user)
	if i < 0 {
		return Account{}, notFound(user)
	}
	pw, err := s.unseal(user, s.data.Accounts[i].Secret)
	if err != nil {
		return Account{}, fmt.Errorf("accounts: %q: %v", user, err)
	}
	defer clear(pw)
	next := slices.Clone(s.data.Accounts)
	next[i].Username, next[i].Secret = newName, s.seal(newName, string(pw))
	out, err := s.commit(next, newName)
	if err != nil {
		return Account{}, err
	}
	delete(s.fails, user)
	delete(s.cache, user)
	return s.account(out[newName]), nil
}
