package accounts

import (
	"errors"
	"testing"
)

// TestChangeHook: every committed change calls the hook once — create,
// password, role, enable, delete, and an Import that changes something —
// while a refused change and an idempotent Import do not.
func TestChangeHook(t *testing.T) {
	s := openTest(t, t.TempDir())
	n := 0
	s.SetChangeHook(func() { n++ })
	step := func(what string, want int, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if n != want {
			t.Fatalf("%s: hook called %d times in all, want %d", what, n, want)
		}
	}
	mustCreate(t, s, "alice", "password-1", RoleAdministrator)
	step("create", 1, nil)
	_, err := s.SetPassword("alice", "password-2")
	step("password", 2, err)
	_, err = s.SetEnabled("alice", true)
	step("enable", 3, err)
	mustCreate(t, s, "bob", "password-3", RoleOperator)
	_, err = s.SetRole("bob", RoleReadOnly)
	step("role", 5, err)
	if _, err := s.SetPassword("alice", "short"); !errors.Is(err, ErrPolicy) {
		t.Fatalf("short password: %v", err)
	}
	step("refused change", 5, nil)
	step("delete", 6, s.Delete("bob"))

	other := openTest(t, t.TempDir())
	m := 0
	other.SetChangeHook(func() { m++ })
	rep, err := s.Export()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Import(rep); err != nil || m != 1 {
		t.Fatalf("import: %v, hook %d", err, m)
	}
	if changed, err := other.Import(rep); err != nil || changed || m != 1 {
		t.Fatalf("idempotent import: changed %v, %v, hook %d", changed, err, m)
	}
}

// TestRename: the IPMI user ID, role and password stay; the old name no
// longer logs in, the new one does (Redfish and the IPMI key); a taken or
// invalid name is refused and changes nothing.
func TestRename(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustCreate(t, s, "alice", "password-1", RoleOperator)
	b := mustCreate(t, s, "bob", "password-2", RoleReadOnly)
	if _, err := s.Rename("bob", "alice"); !errors.Is(err, ErrExists) {
		t.Fatalf("rename onto alice: %v", err)
	}
	if _, err := s.Rename("bob", "bad name"); !errors.Is(err, ErrPolicy) {
		t.Fatalf("bad name: %v", err)
	}
	a, err := s.Rename("bob", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if a.UserID != b.UserID || a.Role != RoleReadOnly || a.Username != "carol" || a.Version <= b.Version {
		t.Fatalf("renamed %+v from %+v", a, b)
	}
	if _, err := s.Authenticate("bob", "password-2", "t"); err == nil {
		t.Fatal("old name still logs in")
	}
	if _, err := s.Authenticate("carol", "password-2", "t"); err != nil {
		t.Fatal(err)
	}
	pw, _, id, err := s.IPMICredentials("carol")
	if err != nil || string(pw) != "password-2" || id != b.UserID {
		t.Fatalf("IPMI credentials %q %d %v", pw, id, err)
	}
}
