package accounts

import "slices"

// Role is one of the three DMTF standard Redfish roles.
type Role string

// The standard roles (Redfish Role resources Administrator, Operator, ReadOnly).
const (
	RoleAdministrator Role = "Administrator"
	RoleOperator      Role = "Operator"
	RoleReadOnly      Role = "ReadOnly"
)

// Privilege is a Redfish standard privilege (Privileges.PrivilegeType).
type Privilege string

// The Redfish standard privileges.
const (
	PrivLogin               Privilege = "Login"
	PrivConfigureManager    Privilege = "ConfigureManager"
	PrivConfigureUsers      Privilege = "ConfigureUsers"
	PrivConfigureSelf       Privilege = "ConfigureSelf"
	PrivConfigureComponents Privilege = "ConfigureComponents"
)

// IPMI channel privilege levels (IPMI 2.0 table 22-28) the roles map to.
const (
	IPMIPrivUser          uint8 = 2
	IPMIPrivOperator      uint8 = 3
	IPMIPrivAdministrator uint8 = 4
)

// AssignedPrivileges of the standard roles, as DMTF defines them (see the
// Role mockups under shared/redfish/mockups/*/AccountService/Roles).
var rolePrivileges = map[Role][]Privilege{
	RoleAdministrator: {PrivLogin, PrivConfigureManager, PrivConfigureUsers, PrivConfigureSelf, PrivConfigureComponents},
	RoleOperator:      {PrivLogin, PrivConfigureSelf, PrivConfigureComponents},
	RoleReadOnly:      {PrivLogin, PrivConfigureSelf},
}

// Roles returns the standard roles, most privileged first.
func Roles() []Role { return []Role{RoleAdministrator, RoleOperator, RoleReadOnly} }

// Valid reports whether r is one of the standard roles.
func (r Role) Valid() bool { _, ok := rolePrivileges[r]; return ok }

// Privileges returns the AssignedPrivileges of role r (nil for an unknown role).
func Privileges(r Role) []Privilege { return slices.Clone(rolePrivileges[r]) }

// HasPrivilege reports whether role r holds privilege p. Unknown roles hold nothing.
func HasPrivilege(r Role, p Privilege) bool { return slices.Contains(rolePrivileges[r], p) }

// IPMIPrivilege returns the IPMI privilege level of role r:
// Administrator→4 (ADMINISTRATOR), Operator→3 (OPERATOR), ReadOnly→2 (USER),
// and 0 for an unknown role.
func IPMIPrivilege(r Role) uint8 {
	switch r {
	case RoleAdministrator:
		return IPMIPrivAdministrator
	case RoleOperator:
		return IPMIPrivOperator
	case RoleReadOnly:
		return IPMIPrivUser
	}
	return 0
}
