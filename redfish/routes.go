package redfish

import (
	"strings"

	"cmcd/accounts"
)

// Privileges, named as the Redfish privilege registry does.
const (
	login     = accounts.PrivLogin
	configMgr = accounts.PrivConfigureManager
	configUsr = accounts.PrivConfigureUsers
	configCmp = accounts.PrivConfigureComponents
)

// table declares every route with the privilege each method needs, beside
// its handler.
func (s *Server) table() []*route {
	rs := []*route{
		// Open URIs (R2): answer without authentication.
		{pattern: "/redfish", get: s.getVersions, getOpen: true},
		{pattern: "/redfish/v1/", get: s.getServiceRoot, getOpen: true},
		{pattern: "/redfish/v1/$metadata", get: s.getMetadata, getOpen: true},
		{pattern: "/redfish/v1/odata", get: s.getODataService, getOpen: true},

		// SessionService.
		{pattern: "/redfish/v1/SessionService", get: s.getSessionService, getPriv: login,
			ops: map[string]op{"PATCH": {priv: configMgr, fn: s.patchSessionService}}},
		{pattern: sessionsURI, get: s.getSessions, getPriv: login,
			ops: map[string]op{"POST": {open: true, fn: s.createSession}}},
		// DELETE of another user's session additionally needs ConfigureUsers
		// (checked in the handler).
		{pattern: sessionsURI + "/{id}", get: s.getSession, getPriv: login,
			ops: map[string]op{"DELETE": {priv: login, fn: s.deleteSession}}},

		// AccountService (accountservice.go). Members: own account with
		// Login/ConfigureSelf, every account with ConfigureUsers (checked in
		// the handlers).
		{pattern: accountServiceURI, get: s.getAccountService, getPriv: login},
		{pattern: accountsURI, get: s.getAccounts, getPriv: login,
			ops: map[string]op{"POST": {priv: configUsr, fn: s.postAccount}}},
		{pattern: accountsURI + "/{id}", get: s.getAccount, getPriv: login,
			ops: map[string]op{"PATCH": {priv: login, fn: s.patchAccount}, "DELETE": {priv: configUsr, fn: s.deleteAccount}}},
		{pattern: rolesURI, get: s.getRoles, getPriv: login},
		{pattern: rolesURI + "/{id}", get: s.getRole, getPriv: login},

		// EventService (events.go): SSE only; the subscriptions are the open
		// streams (own ones, or all with ConfigureManager; checked in the
		// handlers).
		{pattern: eventServiceURI, get: s.getEventService, getPriv: login},
		{pattern: sseURI, get: s.getSSE, getPriv: login},
		{pattern: subscriptionsURI, get: s.getSubscriptions, getPriv: login},
		{pattern: subscriptionsURI + "/{id}", get: s.getSubscription, getPriv: login,
			ops: map[string]op{"DELETE": {priv: login, fn: s.deleteSubscription}}},
		// Message registries (registry.go).
		{pattern: registriesURI, get: s.getRegistries, getPriv: login},
		{pattern: registriesURI + "/{id}", get: s.getRegistryFile, getPriv: login},
		{pattern: registriesURI + "/" + cmcdRegistry + "/Registry", get: s.getCmcdRegistry, getPriv: login},

		// Chassis.
		{pattern: "/redfish/v1/Chassis", get: s.getChassisCollection, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}", get: s.storeCached(s.getChassis, chassisCats), getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/PowerSubsystem", get: s.getPowerSubsystem, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/PowerSubsystem/PowerSupplies", get: s.getPowerSupplies, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/PowerSubsystem/PowerSupplies/{id}", get: s.getPowerSupply, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/ThermalSubsystem", get: s.getThermalSubsystem, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/ThermalSubsystem/Fans", get: s.getFans, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/ThermalSubsystem/Fans/{id}", get: s.getFan, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/Power", get: s.getPower, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/Thermal", get: s.getThermal, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/LogServices", get: s.getNodeLogServices, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/LogServices/{log}", get: s.getNodeLogService, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/LogServices/{log}/Entries", get: s.getNodeLogEntriesCached(), getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/LogServices/{log}/Entries/{id}", get: s.getNodeLogEntry, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/LogServices/{log}/Actions/LogService.ClearLog",
			ops: map[string]op{"POST": {priv: configCmp, fn: s.postNodeClearLog}}},
		{pattern: "/redfish/v1/Chassis/{ch}/Sensors", get: s.getSensors, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/Sensors/{id}", get: s.getSensor, getPriv: login},
		{pattern: "/redfish/v1/Chassis/{ch}/Actions/Chassis.Reset",
			ops: map[string]op{"POST": {priv: configCmp, fn: s.postChassisReset}}},

		// The CMC's Manager, with the sync API (R6) under Oem.Cmcd.
		{pattern: "/redfish/v1/Managers", get: s.getManagers, getPriv: login},
		{pattern: "/redfish/v1/Managers/CMC", get: s.getManager, getPriv: login, version: managerVersion,
			ops: map[string]op{"PATCH": {priv: configMgr, fn: s.patchManager}}},
		{pattern: "/redfish/v1/Managers/CMC/Actions/Oem/Cmcd.SyncNow", ops: map[string]op{"POST": {priv: configMgr, fn: s.postSyncNow}}},
		{pattern: "/redfish/v1/Managers/CMC/LogServices", get: s.getManagerLogServices, getPriv: login},
		{pattern: "/redfish/v1/Managers/CMC/LogServices/EventLog", get: s.getEventLogService, getPriv: login},
		{pattern: "/redfish/v1/Managers/CMC/LogServices/EventLog/Entries", get: s.getEventLogEntries, getPriv: login},
		{pattern: "/redfish/v1/Managers/CMC/LogServices/EventLog/Entries/{id}", get: s.getEventLogEntry, getPriv: login},
		{pattern: "/redfish/v1/Managers/CMC/LogServices/EventLog/Actions/LogService.ClearLog",
			ops: map[string]op{"POST": {priv: configMgr, fn: s.postClearEventLog}}},
		{pattern: "/redfish/v1/Managers/CMC/NetworkProtocol", get: s.getNetworkProtocol, getPriv: login,
			ops: map[string]op{"PATCH": {priv: configMgr, fn: s.patchNetworkProtocol}}},
		// The time source (timesrc.go): report ConfigureComponents, command ConfigureManager.
		{pattern: timeSourceURI, get: s.getTimeSource, getPriv: login},
		{pattern: timeClientsURI, get: s.getTimeClients, getPriv: login},
		{pattern: timeReportURI, ops: map[string]op{"POST": {priv: configCmp, fn: s.postTimeReport}}},
		{pattern: timeCommandURI, ops: map[string]op{"POST": {priv: configMgr, fn: s.postTimeCommand}}},
		{pattern: "/redfish/v1/Managers/CMC/EthernetInterfaces", get: s.getEthernetInterfaces, getPriv: login},
		{pattern: "/redfish/v1/Managers/CMC/EthernetInterfaces/{id}", get: s.getEthernetInterface, getPriv: login},
		// The redundant pair (pair.go): the other module's Manager, ForceFailover.
		{pattern: forceFailoverURI, ops: map[string]op{"POST": {priv: configMgr, fn: s.postForceFailover}}},
		{pattern: "/redfish/v1/Managers/{mgr}", get: s.getPeerManager, getPriv: login},

		// UpdateService: the two image slots' inventory.
		{pattern: "/redfish/v1/UpdateService", get: s.getUpdateService, getPriv: login},
		{pattern: "/redfish/v1/UpdateService/FirmwareInventory", get: s.getFirmwareInventory, getPriv: login},
		{pattern: "/redfish/v1/UpdateService/FirmwareInventory/{id}", get: s.getSoftwareInventory, getPriv: login},
	}
	rs = append(rs, s.updateRoutes()...) // TaskService, uploads, S5 (update.go)
	for _, r := range rs {
		r.segs = strings.Split(strings.Trim(r.pattern, "/"), "/")
	}
	return rs
}
