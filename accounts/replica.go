package accounts

import (
	"errors"
	"fmt"
	"slices"

	"golang.org/x/crypto/bcrypt"
)

// Replication of the account store between the two modules of a CMC pair
// (package pair, daemon/pair.go). Each module seals IPMI secrets under its
// own device.key, so a module cannot use the other's accounts.json: the
// pair carries each account's bcrypt hash and its clear password, and the
// receiving module re-seals the password under its own key. The caller
// must only ever move an export sealed (the pair seals every replicated
// value under the pair key, which the witness does not have).

// ReplicaAccount is one account in portable form.
type ReplicaAccount struct {
	Username string `json:"username"`
	UserID   uint8  `json:"ipmiUserId"`
	Role     Role   `json:"role"`
	Enabled  bool   `json:"enabled"`
	Hash     string `json:"bcrypt"`
	Password string `json:"password"` // in clear: seal before it leaves the process
}

// Replica is the whole account list in portable form, ordered by IPMI
// user ID.
type Replica struct {
	Accounts []ReplicaAccount `json:"accounts"`
}

// Export returns every account with its clear password.
func (s *Store) Export() (Replica, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Replica{Accounts: make([]ReplicaAccount, 0, len(s.data.Accounts))}
	for _, r := range s.data.Accounts {
		pw, err := s.unseal(r.Username, r.Secret)
		if err != nil {
			return Replica{}, fmt.Errorf("accounts: export %q: %v", r.Username, err)
		}
		out.Accounts = append(out.Accounts, ReplicaAccount{Username: r.Username, UserID: r.UserID, Role: r.Role,
			Enabled: r.Enabled, Hash: r.Hash, Password: string(pw)})
	}
	return out, nil
}

// ErrBadReplica marks an import refused because the replica is malformed.
var ErrBadReplica = errors.New("bad account replica")

// Import makes the store's accounts those of rep, sealing each password
// under this store's device key. The whole replica is checked first (names,
// passwords, IPMI user IDs, roles, hashes, that the hash is of the
// password, and that an enabled Administrator remains); a bad one changes
// nothing. Unchanged accounts keep their version (ETag), so importing the
// same replica again writes nothing and reports changed=false. The change
// is one crash-safe write of accounts.json.
func (s *Store) Import(rep Replica) (changed bool, err error) {
	names := map[string]bool{}
	ids := map[uint8]bool{}
	for _, a := range rep.Accounts {
		switch {
		case checkUsername(a.Username) != nil:
			return false, fmt.Errorf("%w: account %q: bad user name", ErrBadReplica, a.Username)
		case names[a.Username]:
			return false, fmt.Errorf("%w: account %q appears twice", ErrBadReplica, a.Username)
		case a.UserID < MinUserID || a.UserID > MaxUserID || ids[a.UserID]:
			return false, fmt.Errorf("%w: account %q: bad or duplicate IPMI user ID %d", ErrBadReplica, a.Username, a.UserID)
		case !a.Role.Valid():
			return false, fmt.Errorf("%w: account %q: unknown role %q", ErrBadReplica, a.Username, a.Role)
		case checkPassword(a.Password) != nil:
			return false, fmt.Errorf("%w: account %q: bad password", ErrBadReplica, a.Username)
		}
		if _, err := bcrypt.Cost([]byte(a.Hash)); err != nil {
			return false, fmt.Errorf("%w: account %q: bad password hash: %v", ErrBadReplica, a.Username, err)
		}
		names[a.Username], ids[a.UserID] = true, true
	}
	if enabledAdmins(toRecords(rep)) == 0 {
		return false, fmt.Errorf("%w: no enabled Administrator", ErrBadReplica)
	}
	// The hash must be of the password (bcrypt runs outside the lock; only
	// for accounts whose hash is new to this store).
	s.mu.Lock()
	known := map[string]string{}
	for _, r := range s.data.Accounts {
		known[r.Username] = r.Hash
	}
	s.mu.Unlock()
	for _, a := range rep.Accounts {
		if known[a.Username] == a.Hash {
			continue
		}
		s.bcryptSem <- struct{}{}
		err := bcrypt.CompareHashAndPassword([]byte(a.Hash), []byte(a.Password))
		<-s.bcryptSem
		if err != nil {
			return false, fmt.Errorf("%w: account %q: the hash is not of the password", ErrBadReplica, a.Username)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	var next []record
	var touched, newPassword []string
	for _, a := range rep.Accounts {
		nr := record{Username: a.Username, UserID: a.UserID, Role: a.Role, Enabled: a.Enabled, Hash: a.Hash}
		if i := s.find(a.Username); i >= 0 {
			old := s.data.Accounts[i]
			pw, err := s.unseal(old.Username, old.Secret)
			if err == nil && old.UserID == a.UserID && old.Role == a.Role && old.Enabled == a.Enabled &&
				old.Hash == a.Hash && string(pw) == a.Password {
				next = append(next, old) // unchanged: same version, same secret
				continue
			}
		}
		nr.Secret = s.seal(a.Username, a.Password)
		next = append(next, nr)
		touched = append(touched, a.Username)
		if known[a.Username] != a.Hash {
			newPassword = append(newPassword, a.Username)
		}
	}
	var gone []string
	for _, r := range s.data.Accounts {
		if !names[r.Username] {
			gone = append(gone, r.Username)
		}
	}
	if len(touched) == 0 && len(gone) == 0 {
		return false, nil
	}
	slices.SortFunc(next, func(a, b record) int { return int(a.UserID) - int(b.UserID) })
	if _, err := s.commit(next, touched...); err != nil {
		return false, err
	}
	for _, u := range append(touched, gone...) {
		delete(s.cache, u)
		delete(s.fails, u)
	}
	for _, u := range append(newPassword, gone...) { // the initial password no longer opens it
		if err := s.dropInitialPassword(u); err != nil {
			return true, err
		}
	}
	return true, nil
}

func toRecords(rep Replica) []record {
	out := make([]record, len(rep.Accounts))
	for i, a := range rep.Accounts {
		out[i] = record{Username: a.Username, Role: a.Role, Enabled: a.Enabled}
	}
	return out
}
