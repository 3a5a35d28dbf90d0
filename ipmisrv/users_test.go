package ipmisrv_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"cmcd/accounts"
	"cmcd/ipmisrv"
)

// TestIPMIUserCommands: ipmitool's user commands act on the account store
// shared with Redfish — list, set password (old refused, new logs in),
// test password, disable/enable, role by privilege, rename — an Operator
// may not change users, and the policy's refusals change nothing. With
// the redundant pair's write gate every change is replicated before the
// answer; a standby refuses the writes (D5h) and changes nothing; a change
// that cannot be replicated is answered D5h.
func TestIPMIUserCommands(t *testing.T) {
	f := newFixture(t, 1, 0, nil)
	var replicated atomic.Int32
	var standby atomic.Bool
	var failRep atomic.Bool
	f.srv.SetWriteGate(ipmisrv.WriteGate{
		Writable: func() bool { return !standby.Load() },
		Replicate: func(context.Context) error {
			if failRep.Load() {
				return errors.New("no quorum")
			}
			replicated.Add(1)
			return nil
		},
	})
	r, err := f.acct.Get("reader")
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.Itoa(int(r.UserID))

	out := f.ipmitool("17", "user", "list", "1")
	for _, want := range []string{"admin", "oper", "reader", "ADMINISTRATOR", "OPERATOR", "USER"} {
		if !strings.Contains(out, want) {
			t.Fatalf("user list lacks %q:\n%s", want, out)
		}
	}

	f.ipmitool("17", "user", "set", "password", id, "New-reader-pw1", "20")
	if replicated.Load() != 1 {
		t.Fatalf("replicated %d times after set password", replicated.Load())
	}
	if _, err := f.ipmitoolAs("17", "reader", readerPW, "-L", "USER", "mc", "info"); err == nil {
		t.Fatal("old password still logs in over IPMI")
	}
	if _, err := f.acct.Authenticate("reader", "New-reader-pw1", "test"); err != nil {
		t.Fatalf("new password on the account store: %v", err)
	}
	if _, err := f.ipmitoolAs("17", "reader", "New-reader-pw1", "-L", "USER", "mc", "info"); err != nil {
		t.Fatalf("new password over IPMI: %v", err)
	}
	if out := f.ipmitool("17", "user", "test", id, "20", "New-reader-pw1"); !strings.Contains(out, "Success") {
		t.Fatalf("user test: %s", out)
	}
	if out, err := f.ipmitoolAs("17", "admin", adminPW, "user", "test", id, "20", "wrong-password"); err == nil && !strings.Contains(out, "Failure") {
		t.Fatalf("user test with a wrong password: %s", out)
	}

	f.ipmitool("17", "user", "disable", id)
	if a, _ := f.acct.Get("reader"); a.Enabled {
		t.Fatal("disable over IPMI left the account enabled")
	}
	f.ipmitool("17", "user", "enable", id)
	f.ipmitool("17", "user", "priv", id, "3", "1")
	if a, _ := f.acct.Get("reader"); !a.Enabled || a.Role != accounts.RoleOperator {
		t.Fatalf("after enable and priv 3: %+v", a)
	}
	f.ipmitool("17", "user", "set", "name", id, "reader2")
	if _, err := f.acct.Get("reader2"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if _, err := f.ipmitoolAs("17", "reader2", "New-reader-pw1", "-L", "OPERATOR", "mc", "info"); err != nil {
		t.Fatalf("renamed user over IPMI: %v", err)
	}
	if n := replicated.Load(); n != 5 {
		t.Fatalf("replicated %d times, want 5 (password, disable, enable, priv, name)", n)
	}

	// Refusals change nothing.
	if _, err := f.ipmitoolAs("17", "admin", adminPW, "user", "set", "password", id, "short", "20"); err == nil {
		t.Fatal("a 5-byte password accepted")
	}
	if _, err := f.ipmitoolAs("17", "oper", operPW, "user", "set", "password", id, "Oper-sets-it1", "20"); err == nil {
		t.Fatal("an Operator set a password")
	}
	if _, err := f.acct.Authenticate("reader2", "New-reader-pw1", "test"); err != nil {
		t.Fatalf("password changed by a refused command: %v", err)
	}

	// Standby: writes refused with D5h, nothing changed, nothing replicated.
	standby.Store(true)
	n := replicated.Load()
	out, err = f.ipmitoolAs("17", "admin", adminPW, "user", "set", "password", id, "Standby-pw-123", "20")
	if err == nil || !strings.Contains(err.Error(), "present state") {
		t.Fatalf("standby: password change %q, %v; want completion code D5h", out, err)
	}
	if _, err := f.ipmitoolAs("17", "admin", adminPW, "user", "disable", id); err == nil {
		t.Fatal("standby took a disable")
	}
	if _, err := f.acct.Authenticate("reader2", "New-reader-pw1", "test"); err != nil || replicated.Load() != n {
		t.Fatalf("standby changed the account (%v) or replicated (%d)", err, replicated.Load()-n)
	}
	// Reads still work on the standby.
	if out := f.ipmitool("17", "user", "list", "1"); !strings.Contains(out, "reader2") {
		t.Fatalf("user list on the standby:\n%s", out)
	}
	standby.Store(false)

	// A change that cannot be replicated is not acknowledged.
	failRep.Store(true)
	if _, err := f.ipmitoolAs("17", "admin", adminPW, "user", "disable", id); err == nil {
		t.Fatal("an unreplicated change was acknowledged")
	}
}
