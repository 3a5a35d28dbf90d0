package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// as sends a request through the floating address with Basic auth as
// user (a longer timeout than the polling client: bcrypt on a loaded
// machine), retrying only when no answer came (a takeover under way).
func (l *lab) as(user, pw, method, path, body string) (int, []byte) {
	l.t.Helper()
	code, _, b := l.retried(method, path, body, func(req *http.Request) { req.SetBasicAuth(user, pw) })
	return code, b
}

// retried sends a request through the floating address from the client
// namespace (5 s timeout), auth set by auth, retrying only when no answer
// came (a takeover under way); it fails the test after 20 tries.
func (l *lab) retried(method, path, body string, auth func(*http.Request)) (int, http.Header, []byte) {
	l.t.Helper()
	c := l.clientInTimeout("C", 5*time.Second)
	var lastErr error
	for i := 0; i < 20; i++ {
		req, _ := http.NewRequest(method, "http://"+vipAddr+":8080"+path, strings.NewReader(body))
		auth(req)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			lastErr = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return resp.StatusCode, resp.Header, b
	}
	l.t.Fatalf("%s %s: %v", method, path, lastErr)
	return 0, nil, nil
}

// ipmiAs runs ipmitool from the client namespace against module m's own
// address (RAKP proves the account's IPMI key on that module), or with m
// "VIP" against the floating address (the active answers from it:
// ipmisrv replies from the address asked).
func (l *lab) ipmiAs(m, user, pw string) error {
	host := l.ip[m]
	if m == "VIP" {
		host = vipAddr
	}
	cmd := exec.Command("ip", "netns", "exec", l.ns("C"), "ipmitool", "-I", "lanplus", "-C", "17", "-H", host,
		"-U", user, "-P", pw, "-L", "OPERATOR", "-N", "1", "-R", "3", "mc", "info")
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	if !strings.Contains(string(out), "Device ID") {
		return fmt.Errorf("unexpected answer: %s", out)
	}
	return nil
}

type voteReport struct {
	Reason   string
	Replicas []struct {
		ID     string
		Weight int
		Matrix map[string]string
	}
	Outcomes []struct {
		Category string
		Majority bool
		Sample   string
		Disagree []string
	}
	Converged bool
}

// vote reads (or with POST runs) the fingerprint vote on the active.
func (l *lab) vote(method string) voteReport {
	l.t.Helper()
	code, body := l.as("admin", l.pw, method, "/cmcd/pair/vote", "")
	if code != 200 {
		l.t.Fatalf("%s /cmcd/pair/vote: %d %s", method, code, body)
	}
	var r voteReport
	if err := json.Unmarshal(body, &r); err != nil {
		l.t.Fatal(err)
	}
	return r
}

func weights(r voteReport) string {
	var out []string
	for _, x := range r.Replicas {
		out = append(out, fmt.Sprintf("%s=%d", x.ID, x.Weight))
	}
	return strings.Join(out, " ")
}

func (l *lab) kill(m string) {
	syscall.Kill(-l.procs[m].Process.Pid, syscall.SIGKILL)
	l.procs[m].Process.Wait()
}

// TestLabAccountsAndD4 (accounts replication, D4): an account created on
// the active A through the floating address logs in on B after A is
// killed — Redfish Basic auth through the floating address and IPMI RAKP
// with the key B re-sealed under its own device key, on B's own address
// and through the floating address. Its password changed
// while B is active (and a write made there) flows back to A: after B is
// killed, A is active again, takes the new password (Redfish and IPMI),
// refuses the old one, and holds the write.
func TestLabAccountsAndD4(t *testing.T) {
	if _, err := exec.LookPath("ipmitool"); err != nil {
		t.Fatal("ipmitool not found: run scripts/install-deps.sh")
	}
	l := newLab(t)
	l.ipmi = true
	defer l.dumpLogs()
	l.form()

	code, body := l.as("admin", l.pw, "POST", "/redfish/v1/AccountService/Accounts",
		`{"UserName":"ops","Password":"ops-pass-123","RoleId":"Operator"}`)
	if code != http.StatusCreated {
		t.Fatalf("create account: %d %s", code, body)
	}
	if err := validate(t, body); err != nil {
		t.Fatalf("account: %v", err)
	}
	// V2-V4: the vote on demand sees both data areas of both modules, the
	// active's running area weighing most.
	if r := l.vote("POST"); weights(r) != "A/primary=3 A/backup=2 B/primary=2 B/backup=2" || len(r.Outcomes) == 0 {
		t.Fatalf("vote on demand: replicas %s, %d outcomes", weights(r), len(r.Outcomes))
	} else {
		t.Logf("vote on demand: converged %v, %+v", r.Converged, r.Outcomes)
	}
	var acc struct{ Id string }
	json.Unmarshal(body, &acc)
	if code, body := l.as("ops", "ops-pass-123", "GET", "/redfish/v1/Managers/CMC", ""); code != 200 {
		t.Fatalf("ops on A: %d %s", code, body)
	}
	l.agree("A", "B")

	l.kill("A")
	l.waitActive("B", 30*time.Second)
	if code, body := l.as("ops", "ops-pass-123", "GET", "/redfish/v1/Managers/CMC", ""); code != 200 {
		t.Fatalf("account created on A, Basic auth on B: %d %s", code, body)
	}
	// The vote ran after the takeover (A is down: B's two areas vote).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := l.vote("GET")
		if r.Reason == "takeover" && weights(r) == "B/primary=3 B/backup=2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no takeover vote on B: %+v", r)
		}
	}
	if err := l.ipmiAs("B", "ops", "ops-pass-123"); err != nil {
		t.Fatalf("account created on A, IPMI on B: %v", err)
	}
	if err := l.ipmiAs("B", "ops", "wrong-pass-1"); err == nil {
		t.Fatal("IPMI on B accepts a wrong password")
	}
	if err := l.ipmiAs("VIP", "ops", "ops-pass-123"); err != nil {
		t.Fatalf("IPMI through the floating address (B active): %v", err)
	}

	// D4: changes accepted while B is active.
	code, body = l.as("admin", l.pw, "PATCH", "/redfish/v1/AccountService/Accounts/"+acc.Id, `{"Password":"ops-pass-new"}`)
	if code != 200 {
		t.Fatalf("PATCH password on B: %d %s", code, body)
	}
	acked := l.writes(700, 5)
	l.start("A")
	l.agree("A", "B")
	l.kill("B")
	l.waitActive("A", 30*time.Second)
	if code, body := l.as("ops", "ops-pass-new", "GET", "/redfish/v1/Managers/CMC", ""); code != 200 {
		t.Fatalf("password changed on B, Basic auth on A: %d %s", code, body)
	}
	if code, _ := l.as("ops", "ops-pass-123", "GET", "/redfish/v1/Managers/CMC", ""); code != http.StatusUnauthorized {
		t.Fatalf("old password on A: %d, want 401", code)
	}
	if err := l.ipmiAs("A", "ops", "ops-pass-new"); err != nil {
		t.Fatalf("password changed on B, IPMI on A: %v", err)
	}
	if err := l.ipmiAs("VIP", "ops", "ops-pass-new"); err != nil {
		t.Fatalf("IPMI through the floating address (A active): %v", err)
	}
	l.checkWrites(acked)
}
