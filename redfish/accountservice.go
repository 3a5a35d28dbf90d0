package redfish

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"cmcd/accounts"
)

// AccountService (R2): the one account store of package accounts, shared
// with IPMI, seen through Redfish. Accounts are addressed by their stable
// IPMI user ID (2..15), so a member URI never changes while the account
// lives; the user name cannot be changed (create another account instead).
//
// Privileges: everyone with Login reads the service and the roles, and sees
// their own account; ConfigureUsers sees and manages every account. A user
// holding only ConfigureSelf may PATCH their own Password and nothing else.
// The last enabled Administrator cannot be deleted, disabled or demoted
// (409, accounts.ErrLastAdmin). The lockout figures are the accounts
// package's settings, fixed when the daemon starts, so AccountService is
// read-only.

const (
	accountServiceURI = "/redfish/v1/AccountService"
	accountsURI       = accountServiceURI + "/Accounts"
	rolesURI          = accountServiceURI + "/Roles"
)

// Base registry messages used only here, copied from Base.1.22.1.json.
var accountMessages = map[string]baseMessage{
	"ResourceAlreadyExists":            {"The requested resource of type %1 with the property %2 with the value '%3' already exists.", "Critical", "Do not repeat the create operation as the resource was already created."},
	"PropertyValueFormatError":         {"The value '%1' for the property %2 is not a format that the property can accept.", "Warning", "Correct the value for the property in the request body and resubmit the request if the operation failed."},
	"PropertyValueResourceConflict":    {"The property '%1' with the requested value of '%2' could not be written because the value conflicts with the state or configuration of the resource at '%3'.", "Warning", "None."},
	"CreateLimitReachedForResource":    {"The create operation failed because the resource has reached the limit of possible resources.", "Critical", "Either delete resources and resubmit the request if the operation failed or do not resubmit the request."},
	"CreateFailedMissingReqProperties": {"The create operation failed because the required property %1 was missing from the request.", "Critical", "Correct the body to include the required property with a valid value and resubmit the request if the operation failed."},
	"EventSubscriptionLimitExceeded":   {"The event subscription failed due to the number of simultaneous subscriptions exceeding the limit of the implementation.", "Critical", "Reduce the number of other subscriptions before trying to establish the event subscription or increase the limit of simultaneous subscriptions, if supported."},
}

func init() {
	for k, v := range accountMessages {
		baseMessages[k] = v
	}
}

func (s *Server) getAccountService(c *ctx) (any, error) {
	maxFail, window, lockout := s.acct.Lockout()
	return obj{
		"@odata.id":                         accountServiceURI,
		"@odata.type":                       "#AccountService.v1_18_1.AccountService",
		"Id":                                "AccountService",
		"Name":                              "Account Service",
		"Description":                       "Local accounts, shared by Redfish and IPMI",
		"Status":                            status("OK"),
		"ServiceEnabled":                    true,
		"LocalAccountAuth":                  "Enabled",
		"HTTPBasicAuth":                     "Enabled",
		"AccountLockoutThreshold":           maxFail,
		"AccountLockoutDuration":            int(lockout.Seconds()),
		"AccountLockoutCounterResetAfter":   int(window.Seconds()),
		"AccountLockoutCounterResetEnabled": true,
		"MinPasswordLength":                 accounts.MinPasswordLen,
		"MaxPasswordLength":                 accounts.MaxPasswordLen,
		"PasswordGuidanceMessage": "Passwords are " + strconv.Itoa(accounts.MinPasswordLen) + " to " +
			strconv.Itoa(accounts.MaxPasswordLen) + " printable ASCII characters (the IPMI 2.0 limit).",
		"SupportedAccountTypes": []string{"Redfish", "IPMI"},
		"Accounts":              odataID(accountsURI),
		"Roles":                 odataID(rolesURI),
	}, nil
}

// ---- roles ----

func (s *Server) getRoles(c *ctx) (any, error) {
	var members []any
	for _, r := range accounts.Roles() {
		members = append(members, odataID(rolesURI+"/"+string(r)))
	}
	return collection(rolesURI, "#RoleCollection.RoleCollection", "Roles Collection", members), nil
}

func (s *Server) getRole(c *ctx) (any, error) {
	r := accounts.Role(c.param("id"))
	if !r.Valid() {
		return nil, notFound("Role", c.param("id"))
	}
	privs := []string{}
	for _, p := range accounts.Privileges(r) {
		privs = append(privs, string(p))
	}
	return obj{
		"@odata.id":          rolesURI + "/" + string(r),
		"@odata.type":        "#Role.v1_3_3.Role",
		"Id":                 string(r),
		"Name":               "User Role",
		"Description":        string(r) + " User Role",
		"RoleId":             string(r),
		"IsPredefined":       true,
		"AssignedPrivileges": privs,
	}, nil
}

// ---- accounts ----

func accountURI(a accounts.Account) string {
	return accountsURI + "/" + strconv.Itoa(int(a.UserID))
}

func accountDoc(a accounts.Account) obj {
	return obj{
		"@odata.id":    accountURI(a),
		"@odata.type":  "#ManagerAccount.v1_14_1.ManagerAccount",
		"Id":           strconv.Itoa(int(a.UserID)),
		"Name":         "User Account",
		"UserName":     a.Username,
		"RoleId":       string(a.Role),
		"Enabled":      a.Enabled,
		"Locked":       a.Locked,
		"Password":     nil,
		"AccountTypes": []string{"Redfish", "IPMI"},
		"Links":        obj{"Role": odataID(rolesURI + "/" + string(a.Role))},
		// Revision changes on every change of the account (the password
		// too), so the ETag, the hash of this body, does.
		"Oem": obj{"Cmcd": obj{"IPMIUserId": int(a.UserID), "Revision": a.Version}},
	}
}

// canManage reports whether c may read and change every account.
func (c *ctx) canManage() bool {
	return accounts.HasPrivilege(c.account.Role, accounts.PrivConfigureUsers)
}

// targetAccount is the account named by the {id} parameter. Without
// ConfigureUsers only one's own account is visible (403 otherwise).
func (c *ctx) targetAccount() (accounts.Account, error) {
	id := c.param("id")
	for _, a := range c.s.acct.List() {
		if strconv.Itoa(int(a.UserID)) == id {
			if a.Username != c.account.Username && !c.canManage() {
				return a, errForbidden
			}
			return a, nil
		}
	}
	return accounts.Account{}, notFound("ManagerAccount", id)
}

func (s *Server) getAccounts(c *ctx) (any, error) {
	var members []any
	for _, a := range s.acct.List() {
		if a.Username == c.account.Username || c.canManage() {
			members = append(members, odataID(accountURI(a)))
		}
	}
	return collection(accountsURI, "#ManagerAccountCollection.ManagerAccountCollection", "Accounts Collection", members), nil
}

func (s *Server) getAccount(c *ctx) (any, error) {
	a, err := c.targetAccount()
	if err != nil {
		return nil, err
	}
	return accountDoc(a), nil
}

// decodeProp decodes one property of a request body into dst, answering
// PropertyValueTypeError (the value hidden for passwords).
func decodeProp(body map[string]json.RawMessage, name string, dst any) (bool, error) {
	raw, ok := body[name]
	if !ok {
		return false, nil
	}
	if string(raw) == "null" || json.Unmarshal(raw, dst) != nil {
		return true, &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueTypeError",
			Args: []string{redact(name, raw), name}, Property: name}
	}
	return true, nil
}

// policyError turns an accounts error into a Redfish error for property
// prop of the account at uri.
func policyError(err error, prop, value, uri string) error {
	switch {
	case errors.Is(err, accounts.ErrLastAdmin):
		if prop == "" {
			return &Error{Status: http.StatusConflict, MessageID: "ResourceCannotBeDeleted", Resolution: err.Error()}
		}
		return &Error{Status: http.StatusConflict, MessageID: "PropertyValueResourceConflict",
			Args: []string{prop, value, uri}, Property: prop, Resolution: err.Error()}
	case errors.Is(err, accounts.ErrExists):
		return &Error{Status: http.StatusConflict, MessageID: "ResourceAlreadyExists",
			Args: []string{"ManagerAccount", "UserName", value}, Property: "UserName"}
	case errors.Is(err, accounts.ErrPolicy) && strings.Contains(err.Error(), "user IDs"):
		return &Error{Status: http.StatusConflict, MessageID: "CreateLimitReachedForResource", Resolution: err.Error()}
	case errors.Is(err, accounts.ErrPolicy):
		if prop == "Password" {
			value = "(hidden)"
		}
		return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueFormatError",
			Args: []string{value, prop}, Property: prop, Resolution: err.Error()}
	case errors.Is(err, accounts.ErrNotFound):
		return notFound("ManagerAccount", value)
	}
	return err
}

// roleProp reads and validates RoleId.
func roleProp(body map[string]json.RawMessage) (accounts.Role, bool, error) {
	var r string
	ok, err := decodeProp(body, "RoleId", &r)
	if err != nil || !ok {
		return "", ok, err
	}
	if !accounts.Role(r).Valid() {
		return "", true, &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueNotInList",
			Args: []string{r, "RoleId"}, Property: "RoleId",
			Resolution: "RoleId is one of Administrator, Operator, ReadOnly."}
	}
	return accounts.Role(r), true, nil
}

// postAccount creates an account (ConfigureUsers): UserName, Password and
// RoleId are required, Enabled is optional (default true).
func (s *Server) postAccount(c *ctx) error {
	body, err := c.body()
	if err != nil {
		return err
	}
	if err := checkWritable(body, accountDoc(accounts.Account{}), "UserName", "Password", "RoleId", "Enabled"); err != nil {
		return err
	}
	for _, k := range []string{"UserName", "Password", "RoleId"} {
		if _, ok := body[k]; !ok {
			return &Error{Status: http.StatusBadRequest, MessageID: "CreateFailedMissingReqProperties", Args: []string{k}, Property: k}
		}
	}
	var user, pass string
	var enabled bool
	if _, err := decodeProp(body, "UserName", &user); err != nil {
		return err
	}
	if _, err := decodeProp(body, "Password", &pass); err != nil {
		return err
	}
	role, _, err := roleProp(body)
	if err != nil {
		return err
	}
	hasEnabled, err := decodeProp(body, "Enabled", &enabled)
	if err != nil {
		return err
	}
	a, err := s.acct.Create(user, pass, role)
	if err != nil {
		prop, val := "UserName", user
		if errors.Is(err, accounts.ErrPolicy) && !strings.Contains(err.Error(), "user name") &&
			strings.Contains(err.Error(), "password") {
			prop = "Password"
		}
		return policyError(err, prop, val, accountsURI)
	}
	if hasEnabled && !enabled {
		if a, err = s.acct.SetEnabled(user, false); err != nil {
			return err
		}
	}
	s.log.Info("redfish: account created", "user", user, "role", role, "ipmiUserId", a.UserID, "by", c.account.Username)
	c.w.Header().Set("Location", accountURI(a))
	s.reply(c, http.StatusCreated, accountDoc(a))
	return nil
}

// patchAccount changes Password (own account with ConfigureSelf, any with
// ConfigureUsers), RoleId, Enabled and Locked (false only: unlock), all
// with ConfigureUsers. Everything is validated before anything changes.
func (s *Server) patchAccount(c *ctx) error {
	a, err := c.targetAccount()
	if err != nil {
		return err
	}
	body, err := c.body()
	if err != nil {
		return err
	}
	if err := checkWritable(body, accountDoc(a), "Password", "RoleId", "Enabled", "Locked"); err != nil {
		return err
	}
	if !c.canManage() {
		// ConfigureSelf: the own password only.
		for k := range body {
			if k != "Password" {
				return errForbidden
			}
		}
	}
	var pass string
	var enabled, locked bool
	hasPass, err := decodeProp(body, "Password", &pass)
	if err != nil {
		return err
	}
	role, hasRole, err := roleProp(body)
	if err != nil {
		return err
	}
	hasEnabled, err := decodeProp(body, "Enabled", &enabled)
	if err != nil {
		return err
	}
	hasLocked, err := decodeProp(body, "Locked", &locked)
	if err != nil {
		return err
	}
	if hasLocked && locked {
		return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueNotInList",
			Args: []string{"true", "Locked"}, Property: "Locked",
			Resolution: "Accounts are locked only by failed logins; PATCH Locked to false to unlock."}
	}
	uri := accountURI(a)
	if hasPass && (len(pass) < accounts.MinPasswordLen || len(pass) > accounts.MaxPasswordLen) {
		return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueFormatError",
			Args: []string{"(hidden)", "Password"}, Property: "Password",
			Resolution: "Passwords are 8 to 20 printable ASCII characters."}
	}
	// The last-administrator rule, checked before anything changes.
	if a.Role == accounts.RoleAdministrator && a.Enabled && ((hasRole && role != a.Role) || (hasEnabled && !enabled)) {
		admins := 0
		for _, o := range s.acct.List() {
			if o.Role == accounts.RoleAdministrator && o.Enabled {
				admins++
			}
		}
		if admins == 1 {
			prop, val := "RoleId", string(role)
			if hasEnabled && !enabled {
				prop, val = "Enabled", "false"
			}
			return policyError(accounts.ErrLastAdmin, prop, val, uri)
		}
	}
	if hasRole && role != a.Role {
		if _, err := s.acct.SetRole(a.Username, role); err != nil {
			return policyError(err, "RoleId", string(role), uri)
		}
	}
	if hasEnabled && enabled != a.Enabled {
		if _, err := s.acct.SetEnabled(a.Username, enabled); err != nil {
			return policyError(err, "Enabled", strconv.FormatBool(enabled), uri)
		}
	}
	if hasPass {
		if _, err := s.acct.SetPassword(a.Username, pass); err != nil {
			return policyError(err, "Password", "", uri)
		}
		// Other sessions of this user end with the old password.
		s.dropSessionsOf(a.Username, c.session)
	}
	if hasLocked {
		if err := s.acct.Unlock(a.Username); err != nil {
			return policyError(err, "Locked", "false", uri)
		}
	}
	if hasEnabled && !enabled {
		s.dropSessionsOf(a.Username, nil)
	}
	s.log.Info("redfish: account changed", "user", a.Username, "properties", sortedKeys(body), "by", c.account.Username)
	now, err := s.acct.Get(a.Username)
	if err != nil {
		return err
	}
	s.reply(c, http.StatusOK, accountDoc(now))
	return nil
}

// deleteAccount removes an account (ConfigureUsers) and ends its sessions.
func (s *Server) deleteAccount(c *ctx) error {
	a, err := c.targetAccount()
	if err != nil {
		return err
	}
	if err := s.acct.Delete(a.Username); err != nil {
		return policyError(err, "", a.Username, accountURI(a))
	}
	s.dropSessionsOf(a.Username, nil)
	s.log.Info("redfish: account deleted", "user", a.Username, "by", c.account.Username)
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// dropSessionsOf ends every session of user except keep.
func (s *Server) dropSessionsOf(user string, keep *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t, sess := range s.sessions {
		if sess.user == user && sess != keep {
			delete(s.sessions, t)
			s.sessionsChangedLocked()
		}
	}
}
