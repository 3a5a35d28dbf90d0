package accounts

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func openTest(t *testing.T, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, append([]Option{WithBcryptCost(bcrypt.MinCost)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCreate(t *testing.T, s *Store, user, pw string, role Role) Account {
	t.Helper()
	a, err := s.Create(user, pw, role)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestPolicy(t *testing.T) {
	s := openTest(t, t.TempDir())
	for _, c := range []struct {
		user, pw string
		role     Role
		rule     string // in the error message; "" = accepted
	}{
		{"alice", "12345678", RoleOperator, ""},
		{"Bob.x_y-Z9", "12345678901234567890", RoleReadOnly, ""},
		{"sixteen-chars-ok", "with space ~!@#$%", RoleAdministrator, ""},
		{"", "12345678", RoleOperator, "1 to 16 characters"},
		{"seventeen-chars-x", "12345678", RoleOperator, "1 to 16 characters"},
		{"bad name", "12345678", RoleOperator, "letters, digits"},
		{"bad/name", "12345678", RoleOperator, "letters, digits"},
		{"bädname", "12345678", RoleOperator, "letters, digits"},
		{"carol", "1234567", RoleOperator, "8 to 20 characters"},
		{"carol", "123456789012345678901", RoleOperator, "8 to 20 characters"},
		{"carol", "pässwörd1", RoleOperator, "printable ASCII"},
		{"carol", "tab\tinside", RoleOperator, "printable ASCII"},
		{"carol", "12345678", "Root", "not one of Administrator"},
		{"carol", "12345678", "", "not one of Administrator"},
	} {
		_, err := s.Create(c.user, c.pw, c.role)
		switch {
		case c.rule == "" && err != nil:
			t.Errorf("Create(%q, %q, %q): %v", c.user, c.pw, c.role, err)
		case c.rule != "" && (!errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), c.rule)):
			t.Errorf("Create(%q, %q, %q) = %v, want ErrPolicy naming %q", c.user, c.pw, c.role, err, c.rule)
		}
	}
	if _, err := s.SetPassword("alice", "short"); !errors.Is(err, ErrPolicy) {
		t.Errorf("SetPassword short: %v", err)
	}
	if _, err := s.SetRole("alice", "Guest"); !errors.Is(err, ErrPolicy) {
		t.Errorf("SetRole bogus: %v", err)
	}
	if _, err := s.Create("alice", "12345678", RoleOperator); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate Create: %v", err)
	}
	for _, err := range []error{
		s.Delete("nobody"),
		func() error { _, err := s.SetPassword("nobody", "12345678"); return err }(),
		func() error { _, err := s.SetRole("nobody", RoleOperator); return err }(),
		func() error { _, err := s.SetEnabled("nobody", false); return err }(),
		func() error { _, err := s.Get("nobody"); return err }(),
		func() error { _, _, _, err := s.IPMICredentials("nobody"); return err }(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown account: %v, want ErrNotFound", err)
		}
	}
}

func TestUserIDs(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	for i := range 14 {
		a := mustCreate(t, s, fmt.Sprintf("u%d", i), "password1", RoleOperator)
		if a.UserID != uint8(i+2) {
			t.Fatalf("u%d got user ID %d, want %d", i, a.UserID, i+2)
		}
	}
	if _, err := s.Create("u14", "password1", RoleOperator); !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "2..15") {
		t.Fatalf("15th account: %v, want ErrPolicy about IDs 2..15", err)
	}
	if err := s.Delete("u3"); err != nil { // ID 5
		t.Fatal(err)
	}
	if a := mustCreate(t, s, "new", "password1", RoleOperator); a.UserID != 5 {
		t.Errorf("new account got ID %d, want the freed 5", a.UserID)
	}
	s = openTest(t, dir)
	for _, a := range s.List() {
		if want := map[string]uint8{"u0": 2, "u12": 14, "new": 5, "u13": 15}[a.Username]; want != 0 && a.UserID != want {
			t.Errorf("after reopen %s has ID %d, want %d", a.Username, a.UserID, want)
		}
	}
}

func TestCRUDPersistsAndVersions(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	admin := mustCreate(t, s, "root", "rootpass1", RoleAdministrator)
	op := mustCreate(t, s, "op", "oppass12", RoleOperator)
	etags := map[string]bool{admin.ETag(): true, op.ETag(): true}
	if len(etags) != 2 || admin.Version == 0 {
		t.Fatalf("versions %d %d must differ and be >0", admin.Version, op.Version)
	}
	check := func(a Account, err error) Account {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if etags[a.ETag()] {
			t.Fatalf("ETag %s reused after a modification", a.ETag())
		}
		etags[a.ETag()] = true
		return a
	}
	check(s.SetRole("op", RoleReadOnly))
	check(s.SetEnabled("op", false))
	check(s.SetPassword("op", "newpass12"))
	if err := s.Delete("op"); err != nil {
		t.Fatal(err)
	}
	op = check(s.Create("op", "oppass12", RoleOperator)) // re-created: must not get an old ETag
	if got, _ := s.Get("op"); got != op {
		t.Errorf("Get = %+v, want %+v", got, op)
	}

	s2 := openTest(t, dir)
	if got, want := fmt.Sprint(s2.List()), fmt.Sprint(s.List()); got != want {
		t.Errorf("after reopen List = %s, want %s", got, want)
	}
	if a, err := s2.Authenticate("op", "oppass12", ""); err != nil || a.Role != RoleOperator {
		t.Errorf("Authenticate after reopen: %+v %v", a, err)
	}
	if a := check(s2.SetEnabled("op", false)); a.Enabled {
		t.Error("SetEnabled(false) left it enabled")
	}
	if _, err := s2.Authenticate("op", "oppass12", ""); !errors.Is(err, ErrDisabled) {
		t.Errorf("disabled account: %v, want ErrDisabled", err)
	}
	if _, _, _, err := s2.IPMICredentials("op"); !errors.Is(err, ErrDisabled) {
		t.Errorf("IPMICredentials of disabled account: %v, want ErrDisabled", err)
	}
}

func TestHashing(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, WithBcryptCost(bcrypt.MinCost+1))
	mustCreate(t, s, "alice", "alicepass", RoleOperator)
	mustCreate(t, s, "bob", "alicepass", RoleOperator)
	var d fileData
	raw, _ := os.ReadFile(filepath.Join(dir, accountsFile))
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	for _, r := range d.Accounts {
		if cost, err := bcrypt.Cost([]byte(r.Hash)); err != nil || cost != bcrypt.MinCost+1 {
			t.Errorf("%s: hash cost %d %v, want %d", r.Username, cost, err, bcrypt.MinCost+1)
		}
		if bcrypt.CompareHashAndPassword([]byte(r.Hash), []byte("alicepass")) != nil {
			t.Errorf("%s: stored hash does not match the password", r.Username)
		}
	}
	if d.Accounts[0].Hash == d.Accounts[1].Hash || d.Accounts[0].Secret == d.Accounts[1].Secret {
		t.Error("equal passwords must give different hashes and secrets (salt, nonce)")
	}
	if _, err := Open(t.TempDir(), WithBcryptCost(bcrypt.MinCost-1)); err == nil {
		t.Error("bcrypt cost below the minimum accepted")
	}
	if s, err := Open(t.TempDir()); err != nil || s.cost != 10 || mustCost(s.dummyHash) != 10 {
		t.Errorf("default cost: %v", err)
	}
}

func mustCost(h []byte) int { c, _ := bcrypt.Cost(h); return c }

// filesContaining lists the files under dir whose bytes contain secret.
func filesContaining(t *testing.T, dir, secret string) []string {
	t.Helper()
	var hits []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if d.Type().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(secret)) {
				hits = append(hits, filepath.Base(p))
			}
		}
		return nil
	})
	return hits
}

func TestEncryptionAtRest(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	pw, created, err := s.EnsureInitialAdmin()
	if err != nil || !created {
		t.Fatal(err)
	}
	pws := map[string]string{"alice": "Al1ce-secret", "bob": "b0b-SECRET-pw", "carol": "carol pass 20 chars"}
	for u, p := range pws {
		mustCreate(t, s, u, p, RoleReadOnly)
	}
	if _, err := s.SetPassword("bob", "bob-second-pw"); err != nil {
		t.Fatal(err)
	}
	pws["bob"] = "bob-second-pw"
	pws["admin"] = pw
	if hits := filesContaining(t, dir, pw); len(hits) != 1 || hits[0] != InitialPasswordFile {
		t.Errorf("initial admin password found in %v, want only %s", hits, InitialPasswordFile)
	}
	if _, err := s.SetPassword("admin", "admin-changed"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, InitialPasswordFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s must go once the admin password changed: %v", InitialPasswordFile, err)
	}
	pws["admin"] = "admin-changed"
	for _, p := range append([]string{"Al1ce-secret", "b0b-SECRET-pw", "bob-second-pw", pw}, "admin-changed", "carol pass 20 chars") {
		if hits := filesContaining(t, dir, p); len(hits) > 0 {
			t.Errorf("clear password %q found in %v", p, hits)
		}
	}
	s = openTest(t, dir) // decrypts after reopen, with the key from disk
	for u, p := range pws {
		got, priv, id, err := s.IPMICredentials(u)
		a, _ := s.Get(u)
		if err != nil || string(got) != p || priv != IPMIPrivilege(a.Role) || id != a.UserID {
			t.Errorf("IPMICredentials(%s) = %q %d %d %v, want %q %d %d", u, got, priv, id, err, p, IPMIPrivilege(a.Role), a.UserID)
		}
	}
	for _, name := range []string{accountsFile, keyFile} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v %v, want 0600", name, st.Mode().Perm(), err)
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, keyFile)); st.Size() != 32 {
		t.Errorf("device.key holds %d bytes", st.Size())
	}
}

func TestCorruptFilesAreReported(t *testing.T) {
	good := t.TempDir()
	s := openTest(t, good)
	mustCreate(t, s, "alice", "alicepass", RoleAdministrator)
	mustCreate(t, s, "bob", "bobpass12", RoleOperator)
	raw, _ := os.ReadFile(filepath.Join(good, accountsFile))
	key, _ := os.ReadFile(filepath.Join(good, keyFile))
	var d fileData
	json.Unmarshal(raw, &d)
	edit := func(f func(*fileData)) []byte {
		var c fileData
		json.Unmarshal(raw, &c)
		f(&c)
		b, _ := json.Marshal(c)
		return b
	}
	otherKey := bytes.Repeat([]byte{7}, 32)
	for name, c := range map[string]struct {
		accounts, key []byte
		want          string
	}{
		"truncated": {raw[:len(raw)/2], key, "unexpected end"},
		"empty":     {[]byte{}, key, "unexpected end"},
		"garbage":   {[]byte("\x00\x01garbage"), key, "invalid character"},
		"trailing":  {append(append([]byte{}, raw...), "{}"...), key, "invalid character"},
		"format":    {edit(func(d *fileData) { d.Format = 2 }), key, "format 2"},
		"dup id":    {edit(func(d *fileData) { d.Accounts[1].UserID = d.Accounts[0].UserID }), key, "duplicate IPMI user ID"},
		"id 1":      {edit(func(d *fileData) { d.Accounts[0].UserID = 1 }), key, "IPMI user ID 1"},
		"dup name":  {edit(func(d *fileData) { d.Accounts[1].Username = "alice" }), key, "twice"},
		"role":      {edit(func(d *fileData) { d.Accounts[0].Role = "God" }), key, "unknown role"},
		"hash":      {edit(func(d *fileData) { d.Accounts[0].Hash = "plain" }), key, "bad password hash"},
		"version":   {edit(func(d *fileData) { d.Accounts[0].Version = d.Generation + 1 }), key, "version"},
		"swapped": {edit(func(d *fileData) {
			d.Accounts[0].Secret, d.Accounts[1].Secret = d.Accounts[1].Secret, d.Accounts[0].Secret
		}), key, "does not decrypt"},
		"other key":     {raw, otherKey, "does not decrypt"},
		"short key":     {raw, key[:16], "holds 16 bytes"},
		"missing key":   {raw, nil, "device.key is missing"},
		"bit flip":      {edit(func(d *fileData) { d.Accounts[0].Secret = flipBit(d.Accounts[0].Secret, 30) }), key, "does not decrypt"},
		"bad user name": {edit(func(d *fileData) { d.Accounts[0].Username = "a b" }), key, "bad user name"},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, accountsFile), c.accounts, 0o600)
		if c.key != nil {
			os.WriteFile(filepath.Join(dir, keyFile), c.key, 0o600)
		}
		_, err := Open(dir, WithBcryptCost(bcrypt.MinCost))
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: Open = %v, want ErrCorrupt naming the file and %q", name, err, c.want)
		}
		after, _ := os.ReadFile(filepath.Join(dir, accountsFile))
		afterKey, kerr := os.ReadFile(filepath.Join(dir, keyFile))
		if !bytes.Equal(after, c.accounts) || (c.key == nil) != errors.Is(kerr, fs.ErrNotExist) || (c.key != nil && !bytes.Equal(afterKey, c.key)) {
			t.Errorf("%s: a corrupt store must be left exactly as it was", name)
		}
	}
	// Fields a newer firmware may add are ignored (image rollback).
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, keyFile), key, 0o600)
	os.WriteFile(filepath.Join(dir, accountsFile), bytes.Replace(raw, []byte(`"format"`), []byte(`"future": [1], "format"`), 1), 0o600)
	if s, err := Open(dir, WithBcryptCost(bcrypt.MinCost)); err != nil || len(s.List()) != 2 {
		t.Errorf("unknown field: %v", err)
	}
	// A crash mid-write leaves a temporary file; it is ignored and removed.
	os.WriteFile(filepath.Join(dir, accountsFile+tmpSuffix), []byte("{half"), 0o600)
	if _, err := Open(dir, WithBcryptCost(bcrypt.MinCost)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, accountsFile+tmpSuffix)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("stale temporary file left behind")
	}
}

func flipBit(b64 string, i int) string {
	b, _ := base64.StdEncoding.DecodeString(b64)
	b[i] ^= 1
	return base64.StdEncoding.EncodeToString(b)
}

func TestInitialAdmin(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	pw, created, err := s.EnsureInitialAdmin()
	if err != nil || !created || len(pw) != 16 || strings.Trim(pw, unambiguous) != "" {
		t.Fatalf("EnsureInitialAdmin = %q %v %v", pw, created, err)
	}
	path := filepath.Join(dir, InitialPasswordFile)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want mode 0600", path, st, err)
	}
	if b, _ := os.ReadFile(path); string(b) != pw+"\n" {
		t.Errorf("file holds %q, want %q", b, pw)
	}
	a, err := s.Authenticate(InitialAdmin, pw, "")
	if err != nil || a.Role != RoleAdministrator || a.UserID != 2 || !a.Enabled {
		t.Fatalf("login as initial admin: %+v %v", a, err)
	}
	mtime := st.ModTime()
	for _, s := range []*Store{s, openTest(t, dir)} {
		if pw2, created, err := s.EnsureInitialAdmin(); err != nil || created || pw2 != "" {
			t.Errorf("second EnsureInitialAdmin = %q %v %v, want nothing done", pw2, created, err)
		}
	}
	if st, _ := os.Stat(path); !st.ModTime().Equal(mtime) {
		t.Error("initial-admin-password rewritten")
	}
	if b, _ := os.ReadFile(path); string(b) != pw+"\n" {
		t.Error("initial-admin-password changed")
	}
	// Not all the same: the passwords come from crypto/rand.
	if pw3, _, _ := openTest(t, t.TempDir()).EnsureInitialAdmin(); pw3 == pw {
		t.Error("two stores got the same initial password")
	}
	// Deleting the initial admin removes the file with its password.
	mustCreate(t, s, "root2", "root2pass", RoleAdministrator)
	if err := s.Delete(InitialAdmin); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still there after the admin was deleted", path)
	}
}

func TestLastAdmin(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustCreate(t, s, "a1", "password1", RoleAdministrator)
	mustCreate(t, s, "op", "password1", RoleOperator)
	refuse := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrLastAdmin) || !errors.Is(err, ErrPolicy) {
			t.Errorf("%s: %v, want ErrLastAdmin", what, err)
		}
	}
	before := s.List()
	refuse("delete", s.Delete("a1"))
	_, err := s.SetEnabled("a1", false)
	refuse("disable", err)
	_, err = s.SetRole("a1", RoleOperator)
	refuse("demote", err)
	if fmt.Sprint(s.List()) != fmt.Sprint(before) {
		t.Error("a refused change altered the store")
	}

	mustCreate(t, s, "a2", "password1", RoleAdministrator)
	if _, err := s.SetEnabled("a2", false); err != nil {
		t.Fatal(err)
	}
	refuse("delete while the other admin is disabled", s.Delete("a1"))
	if _, err := s.SetEnabled("a2", true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetRole("a1", RoleReadOnly); err != nil {
		t.Fatalf("demote with another admin: %v", err)
	}
	_, err = s.SetRole("a2", RoleOperator)
	refuse("demote the new last admin", err)
	if err := s.Delete("a1"); err != nil {
		t.Fatal(err)
	}
	refuse("delete the last", s.Delete("a2"))
}

func TestConcurrentUse(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	s := openTest(t, dir, WithClock(clock))
	mustCreate(t, s, "admin", "adminpass", RoleAdministrator)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := fmt.Sprintf("user%d", g)
			pw := "password0"
			if _, err := s.Create(user, pw, RoleReadOnly); err != nil {
				errs <- err
				return
			}
			for i := range 15 {
				var err error
				switch i % 5 {
				case 0:
					pw = fmt.Sprintf("password%d", i)
					_, err = s.SetPassword(user, pw)
				case 1:
					_, err = s.SetRole(user, Roles()[i%3])
				case 2:
					_, err = s.Authenticate(user, pw, fmt.Sprintf("10.0.0.%d:1000", g))
				case 3:
					_, _, _, err = s.IPMICredentials(user)
					s.List()
				case 4:
					_, err = s.Authenticate("admin", "adminpass", "")
					clock.Add(time.Second)
				}
				if err != nil {
					errs <- fmt.Errorf("%s step %d: %w", user, i, err)
				}
			}
			if g%2 == 0 {
				if err := s.Delete(user); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list := s.List()
	if len(list) != 4 {
		t.Errorf("%d accounts, want 4", len(list))
	}
	versions := map[uint64]bool{}
	for _, a := range list {
		if versions[a.Version] {
			t.Errorf("version %d shared", a.Version)
		}
		versions[a.Version] = true
	}
	if got, want := fmt.Sprint(openTest(t, dir).List()), fmt.Sprint(list); got != want {
		t.Errorf("on disk %s, in memory %s", got, want)
	}
}
