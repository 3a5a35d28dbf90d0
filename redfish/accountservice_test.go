package redfish

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stmcginnis/gofish"

	"cmcd/accounts"
)

// create POSTs an account as admin and returns its URI.
func (r *rig) createAccount(user, pass, role string) string {
	r.t.Helper()
	x := r.do("POST", accountsURI, r.admin(), fmt.Sprintf(`{"UserName":%q,"Password":%q,"RoleId":%q}`, user, pass, role))
	if x.StatusCode != http.StatusCreated {
		r.t.Fatalf("create %s: %s\n%s", user, x.Status, x.body)
	}
	m := x.json(r.t)
	validatePayload(r.t, x, m)
	loc := x.Header.Get("Location")
	if loc == "" || m["@odata.id"] != loc || m["UserName"] != user || m["RoleId"] != role || m["Enabled"] != true {
		r.t.Fatalf("create %s: Location %q body %s", user, loc, x.body)
	}
	if strings.Contains(string(x.body), pass) {
		r.t.Fatalf("create answer holds the password: %s", x.body)
	}
	return loc
}

func TestAccountServiceReadOnlyDocs(t *testing.T) {
	r := newRig(t)
	root := r.get("/redfish/v1/", auth{})
	if root["AccountService"].(map[string]any)["@odata.id"] != accountServiceURI {
		t.Fatalf("service root: %v", root["AccountService"])
	}
	svc := r.get(accountServiceURI, r.reader())
	maxFail, window, lockout := r.acct.Lockout()
	if svc["AccountLockoutThreshold"] != float64(maxFail) || svc["AccountLockoutDuration"] != lockout.Seconds() ||
		svc["AccountLockoutCounterResetAfter"] != window.Seconds() ||
		svc["MinPasswordLength"] != float64(accounts.MinPasswordLen) || svc["MaxPasswordLength"] != float64(accounts.MaxPasswordLen) {
		t.Errorf("AccountService figures differ from the accounts store's: %v", svc)
	}
	// The lockout settings are fixed at start: PATCH is not a method here.
	x := r.do("PATCH", accountServiceURI, r.admin(), `{"AccountLockoutThreshold":3}`)
	expectError(t, x, 405, "OperationNotAllowed")
	if x.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("Allow %q", x.Header.Get("Allow"))
	}
	roles := r.get(rolesURI, r.reader())
	if roles["Members@odata.count"] != float64(3) {
		t.Fatalf("roles: %v", roles)
	}
	for _, role := range accounts.Roles() {
		m := r.get(rolesURI+"/"+string(role), r.reader())
		var got []string
		for _, p := range m["AssignedPrivileges"].([]any) {
			got = append(got, p.(string))
		}
		var want []string
		for _, p := range accounts.Privileges(role) {
			want = append(want, string(p))
		}
		if !slices.Equal(got, want) || m["RoleId"] != string(role) {
			t.Errorf("role %s: %v, want %v", role, got, want)
		}
	}
	expectError(t, r.do("GET", rolesURI+"/Superuser", r.admin(), ""), 404, "ResourceNotFound")
	// Every account payload validates.
	for _, m := range r.get(accountsURI, r.admin())["Members"].([]any) {
		r.get(m.(map[string]any)["@odata.id"].(string), r.admin())
	}
}

func TestAccountLifecycle(t *testing.T) {
	r := newRig(t)
	opURI := r.createAccount("op1", "op1-password", "Operator")
	roURI := r.createAccount("ro1", "ro1-password", "ReadOnly")

	// Bad creations change nothing.
	before := len(r.acct.List())
	expectError(t, r.do("POST", accountsURI, r.admin(), `{"UserName":"op1","Password":"another-pw1","RoleId":"Operator"}`), 409, "ResourceAlreadyExists")
	expectError(t, r.do("POST", accountsURI, r.admin(), `{"UserName":"x1","Password":"another-pw1","RoleId":"Root"}`), 400, "PropertyValueNotInList")
	x := r.do("POST", accountsURI, r.admin(), `{"UserName":"x1","Password":"short","RoleId":"Operator"}`)
	expectError(t, x, 400, "PropertyValueFormatError")
	if strings.Contains(string(x.body), "short") {
		t.Errorf("error echoes the password: %s", x.body)
	}
	expectError(t, r.do("POST", accountsURI, r.admin(), `{"UserName":"bad name!","Password":"another-pw1","RoleId":"Operator"}`), 400, "PropertyValueFormatError")
	expectError(t, r.do("POST", accountsURI, r.admin(), `{"UserName":"x1","RoleId":"Operator"}`), 400, "CreateFailedMissingReqProperties")
	expectError(t, r.do("POST", accountsURI, r.admin(), `{"UserName":"x1","Password":"another-pw1","RoleId":"Operator","Shoe":1}`), 400, "PropertyUnknown")
	expectError(t, r.do("POST", accountsURI, r.admin(), `{"UserName":"x1","Password":"another-pw1","RoleId":"Operator","Id":"9"}`), 400, "PropertyNotWritable")
	expectError(t, r.do("POST", accountsURI, r.admin(), `{"UserName":"x1","Password":12345678,"RoleId":"Operator"}`), 400, "PropertyValueTypeError")
	if n := len(r.acct.List()); n != before {
		t.Fatalf("refused creations left %d accounts, want %d", n, before)
	}

	// ReadOnly: reads, cannot change anything, sees only its own account.
	rtok, _ := r.login("ro1", "ro1-password")
	ro := auth{token: rtok}
	r.get("/redfish/v1/Chassis", ro)
	expectError(t, r.do("PATCH", "/redfish/v1/Managers/CMC", ro, `{"Oem":{"Cmcd":{"Sync":{"Configuration":{"interval":"45s"}}}}}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("POST", accountsURI, ro, `{"UserName":"x2","Password":"another-pw1","RoleId":"Administrator"}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("PATCH", roURI, ro, `{"RoleId":"Administrator"}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("GET", opURI, ro, ""), 403, "InsufficientPrivilege")
	col := r.get(accountsURI, ro)
	if col["Members@odata.count"] != float64(1) || col["Members"].([]any)[0].(map[string]any)["@odata.id"] != roURI {
		t.Errorf("ReadOnly user sees %v", col["Members"])
	}

	// Operator: cannot manage users, may change its own password.
	op := auth{user: "op1", pass: "op1-password"}
	expectError(t, r.do("POST", accountsURI, op, `{"UserName":"x3","Password":"another-pw1","RoleId":"ReadOnly"}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("PATCH", roURI, op, `{"Password":"stolen-pw-1"}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("DELETE", roURI, op, ""), 403, "InsufficientPrivilege")
	expectError(t, r.do("PATCH", opURI, op, `{"RoleId":"Administrator"}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("PATCH", opURI, op, `{"Password":"tiny"}`), 400, "PropertyValueFormatError")
	etag := r.do("GET", opURI, op, "").Header.Get("ETag")
	x = r.do("PATCH", opURI, op, `{"Password":"op1-new-pass"}`, "If-Match", etag)
	if x.StatusCode != 200 {
		t.Fatalf("own password change: %s %s", x.Status, x.body)
	}
	validatePayload(t, x, x.json(t))
	// The ETag changed with the password: the old one is stale now.
	expectError(t, r.do("PATCH", opURI, r.admin(), `{"Enabled":true}`, "If-Match", etag), 412, "PreconditionFailed")
	expectError(t, r.do("GET", "/redfish/v1/Chassis", op, ""), 401, "NoValidSession") // 1st source failure
	r.get("/redfish/v1/Chassis", auth{user: "op1", pass: "op1-new-pass"})

	// An administrator's change of ro1's password reaches IPMI too (one store).
	if x := r.do("PATCH", roURI, r.admin(), `{"Password":"ro1-new-pass"}`); x.StatusCode != 200 {
		t.Fatalf("admin password change: %s %s", x.Status, x.body)
	}
	pw, _, _, err := r.acct.IPMICredentials("ro1")
	if err != nil || string(pw) != "ro1-new-pass" {
		t.Fatalf("IPMI credential after the change: %q %v", pw, err)
	}
	// ro1's session ended with the old password.
	expectError(t, r.do("GET", "/redfish/v1/Chassis", ro, ""), 401, "NoValidSession")

	// Lockout after N failures, visible as Locked, cleared by Locked=false.
	maxFail, _, _ := r.acct.Lockout()
	for i := 0; i < maxFail; i++ { // source failures 2..6
		expectError(t, r.do("GET", "/redfish/v1/Chassis", auth{user: "ro1", pass: "wrong-pass-1"}, ""), 401, "NoValidSession")
	}
	if m := r.get(roURI, r.admin()); m["Locked"] != true {
		t.Fatalf("after %d failures Locked = %v", maxFail, m["Locked"])
	}
	expectError(t, r.do("GET", "/redfish/v1/Chassis", auth{user: "ro1", pass: "ro1-new-pass"}, ""), 401, "NoValidSession") // 7
	if _, _, _, err := r.acct.IPMICredentials("ro1"); !errors.Is(err, accounts.ErrLocked) {
		t.Errorf("IPMI of a locked account: %v", err)
	}
	expectError(t, r.do("PATCH", roURI, r.admin(), `{"Locked":true}`), 400, "PropertyValueNotInList")
	x = r.do("PATCH", roURI, r.admin(), `{"Locked":false}`)
	if x.StatusCode != 200 || x.json(t)["Locked"] != false {
		t.Fatalf("unlock: %s %s", x.Status, x.body)
	}
	r.get("/redfish/v1/Chassis", auth{user: "ro1", pass: "ro1-new-pass"})

	// Role change and disable take effect on open sessions at once.
	otok, _ := r.login("op1", "op1-new-pass")
	if x := r.do("PATCH", opURI, r.admin(), `{"RoleId":"ReadOnly"}`); x.StatusCode != 200 {
		t.Fatalf("role change: %s %s", x.Status, x.body)
	}
	expectError(t, r.do("POST", "/redfish/v1/Managers/CMC/Actions/Oem/Cmcd.SyncNow", auth{token: otok}, `{}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("PATCH", opURI, r.admin(), `{"RoleId":"God"}`), 400, "PropertyValueNotInList")
	expectError(t, r.do("PATCH", opURI, r.admin(), `{"Enabled":"no"}`), 400, "PropertyValueTypeError")
	expectError(t, r.do("PATCH", opURI, r.admin(), `{"UserName":"op2"}`), 400, "PropertyNotWritable")
	if x := r.do("PATCH", opURI, r.admin(), `{"Enabled":false}`); x.StatusCode != 200 {
		t.Fatalf("disable: %s %s", x.Status, x.body)
	}
	expectError(t, r.do("GET", "/redfish/v1/Chassis", auth{token: otok}, ""), 401, "NoValidSession")
	if _, _, _, err := r.acct.IPMICredentials("op1"); !errors.Is(err, accounts.ErrDisabled) {
		t.Errorf("IPMI of a disabled account: %v", err)
	}

	// DELETE.
	if x := r.do("DELETE", roURI, r.admin(), ""); x.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %s %s", x.Status, x.body)
	}
	expectError(t, r.do("GET", roURI, r.admin(), ""), 404, "ResourceNotFound")
	if _, err := r.acct.Get("ro1"); !errors.Is(err, accounts.ErrNotFound) {
		t.Fatalf("ro1 still in the store: %v", err)
	}
}

// TestLastAdministrator: the last enabled Administrator cannot be deleted,
// disabled or demoted (409); with a second one, the initial admin can go,
// and changing its password removes initial-admin-password.
func TestLastAdministrator(t *testing.T) {
	r := newRig(t)
	admin, err := r.acct.Get("admin")
	if err != nil {
		t.Fatal(err)
	}
	uri := accountURI(admin)
	expectError(t, r.do("DELETE", uri, r.admin(), ""), 409, "ResourceCannotBeDeleted")
	expectError(t, r.do("PATCH", uri, r.admin(), `{"Enabled":false}`), 409, "PropertyValueResourceConflict")
	expectError(t, r.do("PATCH", uri, r.admin(), `{"RoleId":"Operator","Password":"never-set-1"}`), 409, "PropertyValueResourceConflict")
	r.get("/redfish/v1/Chassis", r.admin()) // nothing changed: the password still works
	pwFile := filepath.Join(r.acctDir, accounts.InitialPasswordFile)
	if _, err := os.Stat(pwFile); err != nil {
		t.Fatal(err)
	}
	if x := r.do("PATCH", uri, r.admin(), `{"Password":"admin-new-pw1"}`); x.StatusCode != 200 {
		t.Fatalf("admin password change: %s %s", x.Status, x.body)
	}
	if _, err := os.Stat(pwFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s after the password change: %v", accounts.InitialPasswordFile, err)
	}
	r.adminPW = "admin-new-pw1"
	uri2 := r.createAccount("admin2", "admin2-password", "Administrator")
	if x := r.do("DELETE", uri, auth{user: "admin2", pass: "admin2-password"}, ""); x.StatusCode != http.StatusNoContent {
		t.Fatalf("delete admin with a second administrator: %s %s", x.Status, x.body)
	}
	expectError(t, r.do("DELETE", uri2, auth{user: "admin2", pass: "admin2-password"}, ""), 409, "ResourceCannotBeDeleted")
}

// TestGofishAccounts creates and changes accounts with gofish (which sends
// the collection's and the account's ETags as If-Match).
func TestGofishAccounts(t *testing.T) {
	r := newRig(t)
	c, err := gofish.Connect(gofish.ClientConfig{Endpoint: r.ts.URL, Username: "admin", Password: r.adminPW})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	as, err := c.Service.AccountService()
	if err != nil {
		t.Fatal(err)
	}
	if as.AccountLockoutThreshold == nil || *as.AccountLockoutThreshold != 5 || as.MaxPasswordLength != 20 {
		t.Errorf("gofish AccountService: threshold %d, max length %d", as.AccountLockoutThreshold, as.MaxPasswordLength)
	}
	acc, err := as.CreateAccount("gf1", "gofish-pw-1", "ReadOnly")
	if err != nil {
		t.Fatal(err)
	}
	if acc.UserName != "gf1" || acc.RoleID != "ReadOnly" {
		t.Fatalf("gofish created %+v", acc)
	}
	roles, err := as.Roles()
	if err != nil || len(roles) != 3 {
		t.Fatalf("gofish roles: %d %v", len(roles), err)
	}
	accs, err := as.Accounts()
	if err != nil {
		t.Fatal(err)
	}
	var gf1 = accs[0]
	for _, a := range accs {
		if a.UserName == "gf1" {
			gf1 = a
		}
	}
	gf1.RoleID = "Operator"
	gf1.Password = "gofish-pw-2"
	if err := gf1.Update(); err != nil {
		t.Fatalf("gofish account Update: %v", err)
	}
	a, err := r.acct.Get("gf1")
	if err != nil || a.Role != accounts.RoleOperator {
		t.Fatalf("after gofish Update: %+v %v", a, err)
	}
	if _, err := r.acct.Authenticate("gf1", "gofish-pw-2", "127.0.0.1"); err != nil {
		t.Fatalf("new password: %v", err)
	}
}
