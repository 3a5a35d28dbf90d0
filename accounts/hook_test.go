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
