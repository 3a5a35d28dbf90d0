package ipmisrv_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"cmcd/accounts"
)

// TestRefused: cipher suites other than 17 and 3, IPMI v1.5, wrong
// passwords, unknown, anonymous and disabled users are all refused; a
// user gets at most its role's privilege, and with privilege 0 ("the
// highest available") exactly that.
func TestRefused(t *testing.T) {
	need(t, "ipmitool", "bmc-info")
	f := newFixture(t, 1, 0, nil)
	for _, c := range []struct {
		name                string
		suite, user, pw, lv string
	}{
		{"cipher suite 0", "0", "admin", adminPW, ""},
		{"cipher suite 1", "1", "admin", adminPW, ""},
		{"cipher suite 2", "2", "admin", adminPW, ""},
		{"wrong password", "17", "admin", "Wrong-pass-000", ""},
		{"wrong password, suite 3", "3", "admin", "Wrong-pass-000", ""},
		{"unknown user", "17", "nobody", adminPW, ""},
		{"anonymous user", "17", "", "", ""},
		{"null user with a password", "17", "", adminPW, ""},
		{"ReadOnly as ADMINISTRATOR", "17", "reader", readerPW, "ADMINISTRATOR"},
		{"Operator as ADMINISTRATOR", "17", "oper", operPW, "ADMINISTRATOR"},
	} {
		args := []string{"mc", "info"}
		if c.lv != "" {
			args = append([]string{"-L", c.lv}, args...)
		}
		if out, err := f.ipmitoolAs(c.suite, c.user, c.pw, args...); err == nil {
			t.Errorf("%s: accepted:\n%s", c.name, out)
		}
	}
	// IPMI v1.5 (ipmitool -I lan), with every authentication type.
	for _, auth := range []string{"NONE", "MD5", "PASSWORD", "MD2"} {
		out, err := run("ipmitool", "-I", "lan", "-A", auth, "-H", "127.0.0.1", "-p", strconv.Itoa(f.port), "-U", "admin",
			"-P", adminPW, "-N", "1", "-R", "1", "mc", "info")
		if err == nil {
			t.Errorf("IPMI v1.5 (-A %s) accepted:\n%s", auth, out)
		}
	}
	// The roles' privileges: ReadOnly = USER, Operator = OPERATOR.
	if _, err := f.ipmitoolAs("17", "reader", readerPW, "-L", "USER", "mc", "info"); err != nil {
		t.Errorf("reader as USER: %v", err)
	}
	if _, err := f.ipmitoolAs("17", "oper", operPW, "-L", "OPERATOR", "sel", "info"); err != nil {
		t.Errorf("oper as OPERATOR: %v", err)
	}
	// A disabled account is refused; enabled again it works.
	if _, err := f.acct.SetEnabled("oper", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ipmitoolAs("17", "oper", operPW, "-L", "OPERATOR", "mc", "info"); err == nil {
		t.Error("disabled account accepted")
	}
	if _, err := f.acct.SetEnabled("oper", true); err != nil {
		t.Fatal(err)
	}
	// A changed password applies at the next login (the key comes from the
	// account store at every RAKP exchange).
	if _, err := f.acct.SetPassword("reader", "New-read-pass-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.ipmitoolAs("17", "reader", readerPW, "-L", "USER", "mc", "info"); err == nil {
		t.Error("old password accepted after a change")
	}
	if _, err := f.ipmitoolAs("17", "reader", "New-read-pass-1", "-L", "USER", "mc", "info"); err != nil {
		t.Errorf("new password: %v", err)
	}
	// FreeIPMI asks for the "highest available" privilege at Open Session
	// (no opensesspriv workaround needed); a reader gets a USER session.
	out, err := run("ipmi-chassis", "-h", "127.0.0.1:"+strconv.Itoa(f.port), "-u", "reader", "-p", "New-read-pass-1",
		"-l", "USER", "-I", "17", "--driver-type=LAN_2_0", "--get-chassis-status")
	if err != nil || !strings.Contains(out, "System Power") {
		t.Errorf("ipmi-chassis as reader/USER: %v\n%s", err, out)
	}
	if out, err := run("ipmi-chassis", "-h", "127.0.0.1:"+strconv.Itoa(f.port), "-u", "reader", "-p", "New-read-pass-1",
		"-l", "ADMIN", "-I", "17", "--driver-type=LAN_2_0", "--get-chassis-status"); err == nil {
		t.Errorf("ipmi-chassis as reader/ADMIN accepted:\n%s", out)
	}
	// Wrong passwords show as abandoned handshakes (the client gives up at
	// RAKP message 2), logged after the fixture's 1s handshake timeout.
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(f.logs.String(), `msg="ipmi login failed" user=admin`); {
		if time.Now().After(deadline) {
			t.Fatalf("failed logins not logged:\n%s", tail(f.logs.String(), 2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, pw := range []string{adminPW, operPW, readerPW, "New-read-pass-1"} {
		if strings.Contains(f.logs.String(), pw) {
			t.Fatal("a password appears in the log")
		}
	}
}

// TestRateLimited: repeated failed logins from one source get that source
// refused, even with the right password, until the block ends; the
// account itself is locked after its own failures.
func TestRateLimited(t *testing.T) {
	need(t, "ipmitool")
	lim := accounts.NewLimiter(4, time.Minute, time.Minute, nil)
	f := newFixture(t, 1, 0, lim)
	if _, err := f.ipmitoolAs("17", "admin", adminPW, "mc", "info"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, err := f.ipmitoolAs("17", "nobody"+strconv.Itoa(i), "Wrong-pass-000", "mc", "info"); err == nil {
			t.Fatal("unknown user accepted")
		}
	}
	// Abandoned handshakes count after the fixture's 1s handshake timeout.
	deadline := time.Now().Add(20 * time.Second)
	for lim.Allow("127.0.0.1") == nil {
		if time.Now().After(deadline) {
			t.Fatalf("source never rate-limited:\n%s", tail(f.logs.String(), 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	start := time.Now()
	out, err := f.ipmitoolAs("17", "admin", adminPW, "mc", "info")
	if err == nil {
		t.Fatalf("rate-limited source accepted:\n%s", out)
	}
	if !strings.Contains(err.Error(), "insufficient resources") || time.Since(start) > 10*time.Second {
		t.Errorf("refusal: %v (after %s)", err, time.Since(start))
	}
	if !strings.Contains(f.logs.String(), "source rate-limited") {
		t.Error("rate limiting not logged")
	}
	if lim.Allow("127.0.0.2") != nil {
		t.Error("an unrelated source is limited")
	}
	// Account lockout (5 failures, shared with Redfish) applies to IPMI.
	f2 := newFixture(t, 1, 0, accounts.NewLimiter(0, 0, 0, nil))
	for i := 0; i < 5; i++ {
		if _, err := f2.ipmitoolAs("17", "oper", "Wrong-pass-000", "-L", "OPERATOR", "mc", "info"); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	deadline = time.Now().Add(20 * time.Second)
	for {
		_, _, _, err := f2.acct.IPMICredentials("oper")
		if errors.Is(err, accounts.ErrLocked) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("account not locked after 5 IPMI failures: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := f2.ipmitoolAs("17", "oper", operPW, "-L", "OPERATOR", "mc", "info"); err == nil {
		t.Error("locked account accepted with the right password")
	}
}
