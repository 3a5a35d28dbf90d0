package lab

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// withToken sends a request through the floating address with an
// X-Auth-Token (or, for a login, none), retrying only when no answer came.
func (l *lab) withToken(token, method, path, body string) (int, http.Header, []byte) {
	l.t.Helper()
	return l.retried(method, path, body, func(req *http.Request) {
		if token != "" {
			req.Header.Set("X-Auth-Token", token)
		}
	})
}

// ipmiCmd runs an ipmitool command from the client namespace against
// module m's own address as Administrator.
func (l *lab) ipmiCmd(m, user, pw string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.ns("C"), "ipmitool", "-I", "lanplus", "-C", "17", "-H", l.ip[m],
		"-U", user, "-P", pw, "-N", "1", "-R", "3"}, args...)...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%v: %s", err, out)
	}
	return string(out), nil
}

// TestLabSessionsAndIPMIAccounts (H3/D3 end to end, real `cmcd run` ×2 and
// `cmcd witness` in namespaces): a Redfish session created through the
// floating address on A keeps working through the floating address after
// A is SIGKILLed and B took over; its logout there ends it on both (A,
// restarted and then active again after B is killed, refuses the token).
// An IPMI password change on the active, followed at once by a SIGKILL
// of it, with no Redfish write in between, is on the new active (IPMI and
// Redfish); the standby refuses IPMI account writes (D5h).
func TestLabSessionsAndIPMIAccounts(t *testing.T) {
	if _, err := exec.LookPath("ipmitool"); err != nil {
		t.Fatal("ipmitool not found: run scripts/install-deps.sh")
	}
	l := newLab(t)
	l.ipmi = true
	defer l.dumpLogs()
	l.form()

	code, hdr, body := l.withToken("", "POST", "/redfish/v1/SessionService/Sessions",
		fmt.Sprintf(`{"UserName":"admin","Password":%q}`, l.pw))
	if code != http.StatusCreated {
		t.Fatalf("login through the floating address: %d %s", code, body)
	}
	if err := validate(t, body); err != nil {
		t.Fatalf("session: %v", err)
	}
	tok, loc := hdr.Get("X-Auth-Token"), hdr.Get("Location")
	if code, _, body := l.withToken(tok, "GET", "/redfish/v1/Managers/CMC", ""); code != 200 {
		t.Fatalf("token on A: %d %s", code, body)
	}

	// IPMI: the standby refuses, the active's change is acknowledged only
	// once committed on a quorum; A dies right after.
	if _, err := l.ipmiCmd("B", "admin", l.pw, "user", "set", "password", "2", "Ipmi-set-pw-1", "20"); err == nil ||
		!strings.Contains(err.Error(), "present state") {
		t.Fatalf("IPMI password change on the standby B: %v, want D5h", err)
	}
	if _, err := l.ipmiCmd("A", "admin", l.pw, "user", "set", "password", "2", "Ipmi-set-pw-1", "20"); err != nil {
		t.Fatalf("IPMI password change on the active A: %v", err)
	}
	l.kill("A")
	l.waitActive("B", 30*time.Second)
	if _, err := l.ipmiCmd("B", "admin", "Ipmi-set-pw-1", "mc", "info"); err != nil {
		t.Fatalf("password set over IPMI on A, IPMI on B: %v", err)
	}
	if code, _ := l.as("admin", "Ipmi-set-pw-1", "GET", "/redfish/v1/Managers/CMC", ""); code != 200 {
		t.Fatalf("password set over IPMI on A, Redfish on B: %d", code)
	}
	if code, _ := l.as("admin", l.pw, "GET", "/redfish/v1/Managers/CMC", ""); code != http.StatusUnauthorized {
		t.Fatalf("old password on B: %d, want 401", code)
	}
	l.pw = "Ipmi-set-pw-1" // for the lab's own helpers from here on

	// The session created on A works on B; its logout there ends it.
	if code, _, body := l.withToken(tok, "GET", loc, ""); code != 200 {
		t.Fatalf("A's session on B: %d %s", code, body)
	}
	if err := validate(t, mustGet(t, l, tok, loc)); err != nil {
		t.Fatalf("session on B: %v", err)
	}
	code, hdr, body = l.withToken("", "POST", "/redfish/v1/SessionService/Sessions", `{"UserName":"admin","Password":"Ipmi-set-pw-1"}`)
	if code != http.StatusCreated {
		t.Fatalf("login on B: %d %s", code, body)
	}
	tok2 := hdr.Get("X-Auth-Token")
	if code, _, body := l.withToken(tok, "DELETE", loc, ""); code != http.StatusNoContent {
		t.Fatalf("logout on B: %d %s", code, body)
	}
	l.start("A")
	l.agree("A", "B")
	l.kill("B")
	l.waitActive("A", 30*time.Second)
	if code, _, _ := l.withToken(tok, "GET", "/redfish/v1/Managers/CMC", ""); code != http.StatusUnauthorized {
		t.Fatalf("session ended on B, on A: %d, want 401", code)
	}
	if code, _, body := l.withToken(tok2, "GET", "/redfish/v1/Managers/CMC", ""); code != 200 {
		t.Fatalf("session created on B, on A: %d %s", code, body)
	}
}

func mustGet(t *testing.T, l *lab, tok, path string) []byte {
	t.Helper()
	code, _, body := l.withToken(tok, "GET", path, "")
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return body
}
