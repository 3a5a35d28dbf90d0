// Package redfish is cmcd's Redfish service (SPEC Part R, DMTF DSP0266): the
// router with per-route privileges, authentication (Basic and
// SessionService sessions against the accounts store), the protocol rules
// of R3 (ETags, If-Match/If-None-Match, Allow/405, OData-Version, Base
// registry errors, PATCH validation, request-size limit, query parameters
// rejected as unsupported), the resource tree of R1 built from the running
// image's data store, and the sync API of R6 under the Manager's
// Oem.Cmcd section.
//
// # Routes and privileges
//
// Every route is declared in routes.go with the privilege each of its
// methods needs, beside the handler. Requests without valid credentials
// get 401 except on the open URIs (/redfish, /redfish/v1/,
// /redfish/v1/$metadata, /redfish/v1/odata and POST of a session). A
// failed login (unknown user, wrong password, locked or disabled account,
// rate-limited source) always gets the same 401 body so that accounts
// cannot be enumerated; the distinct reasons go to the log.
//
// Sessions are kept under the SHA-256 of their X-Auth-Token, never the
// token itself; ExportSessions/ImportSessions and SetSessionsHook
// (sessionrep.go) let the redundant pair replicate them to the other
// module.
//
// # Protocol
//
// Every GET answers with a strong ETag, the hash of its body; If-None-Match
// gives 304, and If-Match on PATCH, DELETE and POST to a collection is compared
// with the ETag of the resource's current representation (412 on
// mismatch). The Manager's body carries its clock and the live sync state
// beside the writable sync configuration: its ETag covers the writable
// state only, so an If-Match taken from a GET stays valid while readings
// move, and its GET never answers 304. Every response carries OData-Version: 4.0 and, when the URI
// is a resource, Allow. Request bodies are limited to MaxBody bytes (413).
// $expand, $select, $filter, $top, $skip, only and excerpt are not
// supported (ProtocolFeaturesSupported says so) and a request carrying a
// "$" parameter gets 501 with QueryNotSupported; other unknown parameters
// are ignored, as DSP0266 requires.
//
// # Live sources beyond the store
//
// TreeOptions gives the service the board (node LogService.ClearLog and
// Chassis.Reset act on the node's BMC, then run a collection pass so the
// store follows), the image slots and their probes (FirmwareInventory,
// the Manager's ActiveSoftwareImage), the network interfaces
// (EthernetInterfaces) and the listeners (NetworkProtocol, updated by
// SetProtocols once they are bound).
//
// # Firmware updates
//
// Options.Firmware (update.go) adds UpdateService.MultipartHttpPushUri and
// SimpleUpdate (local paths only), one TaskService Task per update (202 +
// task monitor; 400 for a refused image; 503 + Retry-After while one
// runs), activation by PATCH of the Manager's Links.ActiveSoftwareImage,
// and the post-upgrade keep-or-restore choice (Oem.Cmcd.DataChoice and the
// #Cmcd.DataChoice action while it is pending).
//
// # Accounts
//
// AccountService (accountservice.go) shows the accounts package's store,
// the one shared with IPMI: a password set here is the IPMI password too.
// Accounts are addressed by their IPMI user ID; POST to Accounts creates
// (UserName, Password, RoleId required; Enabled optional), PATCH changes
// Password, RoleId, Enabled or Locked (false only: unlock), DELETE removes
// and ends the account's sessions. ConfigureUsers manages every account;
// with ConfigureSelf only one's own Password can be changed (the user's
// other sessions end). The last enabled Administrator cannot be deleted,
// disabled or demoted: 409. Lockout threshold, duration and password
// lengths are the accounts package's settings and read-only. Roles lists
// Administrator, Operator and ReadOnly with their AssignedPrivileges.
//
// # Events
//
// EventService (events.go) publishes sync rounds committed and rolled
// back, the backup image started, configuration changes and alarms (the
// sync engine's events, each with a link to its CMC event log entry) and
// health changes of PSUs, fans, nodes and node sensors (read from the
// running store when its fingerprint changes; the board reports health,
// cmcd keeps no thresholds of its own) as Redfish Events on
// ServerSentEventUri /redfish/v1/EventService/SSE. Messages come from the
// OEM registry Cmcd.1.0 (registry.go), served under /redfish/v1/Registries.
// Each SSE event has an id (a number that grows across restarts) and one
// Event; Last-Event-ID replays from the last SSERing events, and an
// EventsLost marker (without id) says when events asked for are gone.
// Keep-alive comments go out every SSEKeepAlive, when the stream's session
// (kept alive by the stream) and account are checked again. Publishing
// never blocks: a stream more than 64 events behind is ended with an
// EventsLost marker, a client that stops reading is cut after 10 s. At
// most SSEMaxStreams streams, SSEMaxStreamsPerUser per user (503
// EventSubscriptionLimitExceeded). $filter is not supported (501, and
// SSEFilterPropertiesSupported says so). Subscriptions lists the open
// streams (SubscriptionType SSE); DELETE of one ends it. Push (HTTP POST)
// subscriptions are not supported: POST to Subscriptions is 405.
//
// # Time source
//
// With Options.TimeSource (timesrc.go), the Manager's NetworkProtocol NTP
// section shows the live upstream set and PATCH of NTP/NTPServers
// (ConfigureManager) replaces it, saved across restarts (bad entry: 400
// PropertyValueFormatError, nothing changed); Managers/CMC/Oem/Cmcd/TimeSource
// and its Clients show the time source; the Manager's OEM actions
// #Cmcd.TimeReport (ConfigureComponents) and #Cmcd.TimeCommand
// (ConfigureManager) are its report channel and commands. TimeEventLog
// routes its events into the CMC event log, whence they reach SSE as
// Cmcd registry messages (TimePolicyDecision, TimeSourceAlarm, ...).
//
// # The redundant pair
//
// With Options.Pair (pair.go; the daemon's view over pair.Node is
// daemon/pairrf.go, FakePair stands in for tests) the Managers collection
// lists both modules: this module's Manager stays at Managers/CMC (the
// module answering: through the floating address, the active one), the
// other module's is Managers/CMC-<its module ID>. Both are
// EnclosureManager with Status.State Enabled (active), StandbySpare
// (standby) or UnavailableOffline with Health null (not heard from, or
// fenced), one Redundancy entry (Mode Failover, RedundancySet both,
// ActiveRedundancySet the active one; Health OK in sync, Warning behind,
// Critical when the other module is not heard), and Oem.Cmcd.Pair: role,
// term, leader, commit and applied index, in sync, floating address held,
// replicated-state fingerprint, uplink; on this module's Manager also the
// witness and whether it is reachable, whether both modules' replicated
// state agrees (null unless at the same applied index), the last
// takeover (time, previous active, reason) and the last fingerprint vote.
// What this module does not know of the other is null, never guessed.
//
// #Manager.ForceFailover (ConfigureManager) takes NewManager, a link to
// the other module's Manager (or its URI as a string, as gofish sends
// it). Refused: 400 ActionNotSupported without a pair,
// ActionParameterMissing / ActionParameterValueTypeError /
// ActionParameterValueNotInList for a missing, malformed or wrong
// target, ActionParameterUnknown for other parameters; 409
// ResourceInStandby on the standby (or while a hand-over is under way),
// 409 ActionParameterValueConflict when the other module does not answer,
// is not standby, has not applied this module's commit index or lost its
// management link (the Resolution says which). Accepted, it answers 200
// (Success and a Cmcd PairHandover message) and only then hands the role
// over: the answer travels over the floating address, which the
// hand-over moves, so it cannot come after it. AfterResponse lets work
// queued by a handler run once the answer left, also behind the pair's
// buffering write path. The client sees the other module answer at the
// floating address about half a second later (TestLabRedfishPairView).
//
// The pair's events (PairBecameActive, PairTakeover with its reason,
// PairBecameStandby, PairHandover, PairHandoverFailed, PairPeerFenced and
// the fingerprint vote's PairFingerprintVote) are CMC event log entries
// whose text is the Cmcd registry message (PairEventText); the event
// stream recovers their arguments from the text.
//
// # Answer cache
//
// The Chassis and node log Entries GETs are served from their serialized
// answers while the fingerprint sums of the store categories they are
// built from are unchanged (logcache.go); CMCD_REDFISH_LOG_CACHE=0 turns
// that off for comparison runs.
//
// # TLS
//
// EnsureCertificate creates on first start, and reuses afterwards, a
// self-signed ECDSA P-256 certificate in the data directory (key mode
// 0600), so that the service speaks TLS by default.
package redfish
