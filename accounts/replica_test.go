package accounts

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplicaRoundTrip: accounts exported from one module's store and
// imported into another (its own device key) log in there by Redfish
// (bcrypt) and give IPMI the same clear password; the receiving
// accounts.json never holds the password in clear and its secrets are
// sealed under its own key (they differ from the sender's); a second
// import of the same replica writes nothing.
func TestReplicaRoundTrip(t *testing.T) {
	da, db := t.TempDir(), t.TempDir()
	a, b := openTest(t, da), openTest(t, db)
	mustCreate(t, a, "admin", "admin-pass-1", RoleAdministrator)
	mustCreate(t, a, "ops", "ops-pass-123", RoleOperator)
	mustCreate(t, b, "admin", "b-own-admin!", RoleAdministrator)
	mustCreate(t, b, "stale", "stale-pass-1", RoleReadOnly) // not on A: removed by the import
	os.WriteFile(filepath.Join(db, InitialPasswordFile), []byte("b-own-admin!\n"), 0o600)

	rep, err := a.Export()
	if err != nil {
		t.Fatal(err)
	}
	changed, err := b.Import(rep)
	if err != nil || !changed {
		t.Fatalf("Import = %v, %v", changed, err)
	}
	for user, pw := range map[string]string{"admin": "admin-pass-1", "ops": "ops-pass-123"} {
		if _, err := b.Authenticate(user, pw, "192.0.2.1:1"); err != nil {
			t.Fatalf("%s on B: %v", user, err)
		}
		got, _, _, err := b.IPMICredentials(user)
		if err != nil || string(got) != pw {
			t.Fatalf("%s IPMI key on B: %q, %v", user, got, err)
		}
	}
	if _, err := b.Authenticate("admin", "b-own-admin!", "192.0.2.1:1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("B's old admin password: %v, want ErrBadCredentials", err)
	}
	if _, err := b.Get("stale"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stale account: %v", err)
	}
	if _, err := os.Stat(filepath.Join(db, InitialPasswordFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("B's initial-admin-password survives a replicated admin password")
	}
	fa, _ := os.ReadFile(filepath.Join(da, accountsFile))
	fb, _ := os.ReadFile(filepath.Join(db, accountsFile))
	if strings.Contains(string(fb), "admin-pass-1") || strings.Contains(string(fb), "ops-pass-123") {
		t.Fatal("clear password in B's accounts.json")
	}
	var ja, jb fileData
	json.Unmarshal(fa, &ja)
	json.Unmarshal(fb, &jb)
	if ja.Accounts[0].Secret == jb.Accounts[0].Secret || ja.Accounts[0].Hash != jb.Accounts[0].Hash {
		t.Fatal("B's secret is A's sealed blob, or the hash was not carried")
	}
	// B reopens with its own device key: the file is valid there.
	b2 := openTest(t, db)
	if got, _, _, err := b2.IPMICredentials("ops"); err != nil || string(got) != "ops-pass-123" {
		t.Fatalf("after reopen: %q %v", got, err)
	}
	ops, _ := b.Get("ops")
	if changed, err := b.Import(rep); err != nil || changed {
		t.Fatalf("second import: changed=%v err=%v", changed, err)
	}
	if again, _ := b.Get("ops"); again.ETag() != ops.ETag() {
		t.Fatalf("ETag moved on an identical import: %s -> %s", ops.ETag(), again.ETag())
	}

	// A change on A flows with its version bump; unchanged accounts keep theirs.
	adminBefore, _ := b.Get("admin")
	if _, err := a.SetPassword("ops", "ops-pass-new"); err != nil {
		t.Fatal(err)
	}
	rep, _ = a.Export()
	if changed, err := b.Import(rep); err != nil || !changed {
		t.Fatalf("import of a change: %v %v", changed, err)
	}
	if _, err := b.Authenticate("ops", "ops-pass-new", "192.0.2.1:1"); err != nil {
		t.Fatal(err)
	}
	if after, _ := b.Get("admin"); after.ETag() != adminBefore.ETag() {
		t.Fatal("untouched admin got a new version")
	}
}

// TestReplicaImportRefusesBadInput: a malformed replica is refused with
// ErrBadReplica and leaves the store and its file as they were.
func TestReplicaImportRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	mustCreate(t, s, "admin", "admin-pass-1", RoleAdministrator)
	good, _ := s.Export()
	h := good.Accounts[0].Hash
	before, _ := os.ReadFile(filepath.Join(dir, accountsFile))
	for name, rep := range map[string]Replica{
		"no admin":      {Accounts: []ReplicaAccount{{Username: "ro", UserID: 2, Role: RoleReadOnly, Enabled: true, Hash: h, Password: "admin-pass-1"}}},
		"empty":         {},
		"bad name":      {Accounts: []ReplicaAccount{{Username: "a b", UserID: 2, Role: RoleAdministrator, Enabled: true, Hash: h, Password: "admin-pass-1"}}},
		"bad id":        {Accounts: []ReplicaAccount{{Username: "admin", UserID: 1, Role: RoleAdministrator, Enabled: true, Hash: h, Password: "admin-pass-1"}}},
		"bad role":      {Accounts: []ReplicaAccount{{Username: "admin", UserID: 2, Role: "Root", Enabled: true, Hash: h, Password: "admin-pass-1"}}},
		"short pw":      {Accounts: []ReplicaAccount{{Username: "admin", UserID: 2, Role: RoleAdministrator, Enabled: true, Hash: h, Password: "short"}}},
		"bad hash":      {Accounts: []ReplicaAccount{{Username: "admin", UserID: 2, Role: RoleAdministrator, Enabled: true, Hash: "x", Password: "admin-pass-1"}}},
		"hash mismatch": {Accounts: []ReplicaAccount{{Username: "adm2", UserID: 3, Role: RoleAdministrator, Enabled: true, Hash: h, Password: "other-pass-1"}}},
		"duplicate id": {Accounts: []ReplicaAccount{{Username: "admin", UserID: 2, Role: RoleAdministrator, Enabled: true, Hash: h, Password: "admin-pass-1"},
			{Username: "b", UserID: 2, Role: RoleReadOnly, Enabled: true, Hash: h, Password: "admin-pass-1"}}},
	} {
		if _, err := s.Import(rep); !errors.Is(err, ErrBadReplica) {
			t.Errorf("%s: %v, want ErrBadReplica", name, err)
		}
	}
	after, _ := os.ReadFile(filepath.Join(dir, accountsFile))
	if string(before) != string(after) {
		t.Fatal("a refused import changed accounts.json")
	}
	if _, err := s.Authenticate("admin", "admin-pass-1", "192.0.2.1:1"); err != nil {
		t.Fatal(err)
	}
}
