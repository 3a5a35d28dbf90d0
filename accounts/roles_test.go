package accounts

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRolePrivileges(t *testing.T) {
	want := map[Role][]Privilege{
		RoleAdministrator: {"Login", "ConfigureManager", "ConfigureUsers", "ConfigureSelf", "ConfigureComponents"},
		RoleOperator:      {"Login", "ConfigureSelf", "ConfigureComponents"},
		RoleReadOnly:      {"Login", "ConfigureSelf"},
	}
	all := []Privilege{PrivLogin, PrivConfigureManager, PrivConfigureUsers, PrivConfigureSelf, PrivConfigureComponents}
	for _, r := range Roles() {
		if got := Privileges(r); !slices.Equal(got, want[r]) {
			t.Errorf("Privileges(%s) = %v, want %v", r, got, want[r])
		}
		for _, p := range all {
			if got := HasPrivilege(r, p); got != slices.Contains(want[r], p) {
				t.Errorf("HasPrivilege(%s, %s) = %v", r, p, got)
			}
		}
	}
	if HasPrivilege("Root", PrivLogin) || Role("Root").Valid() || Privileges("Root") != nil {
		t.Error("unknown role must hold no privileges")
	}
	p := Privileges(RoleAdministrator)
	p[0] = "Broken"
	if !HasPrivilege(RoleAdministrator, PrivLogin) {
		t.Error("Privileges must return a copy")
	}
}

// The DMTF mockups shipped in shared/redfish are the reference, when present.
func TestRolePrivilegesMatchDMTFMockup(t *testing.T) {
	for _, r := range Roles() {
		path := filepath.Join("..", "..", "shared", "redfish", "mockups", "public-bladed", "AccountService", "Roles", string(r), "index.json")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Skipf("DMTF mockups not available: %v", err)
		}
		var doc struct{ AssignedPrivileges []Privilege }
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(Privileges(r), doc.AssignedPrivileges) {
			t.Errorf("%s: %v, DMTF mockup says %v", r, Privileges(r), doc.AssignedPrivileges)
		}
	}
}

func TestIPMIPrivilege(t *testing.T) {
	for r, want := range map[Role]uint8{RoleAdministrator: 4, RoleOperator: 3, RoleReadOnly: 2, "Bogus": 0} {
		if got := IPMIPrivilege(r); got != want {
			t.Errorf("IPMIPrivilege(%s) = %d, want %d", r, got, want)
		}
	}
}
