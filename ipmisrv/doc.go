// Package ipmisrv makes cmcd an IPMI-over-LAN (RMCP+) endpoint (feature
// I2), so that `ipmitool -I lanplus` and FreeIPMI work against the CMC. It
// runs on go-ipmi's reference server (pkg/server, pkg/bmc session layer,
// pkg/handlers registry) and answers every data command itself from the
// running image's syncsel store: nothing is served from anywhere else.
//
// # Sessions and users
//
// Cipher suites 17 and 3 only; IPMI v1.5 (`ipmitool -I lan`) is refused;
// user 1, IPMI's anonymous/null user, is disabled. The users are the
// accounts package's (the same as Redfish's): at each RAKP message 1 the
// named account is looked up with accounts.IPMICredentials (its password,
// sealed at rest, is the RAKP key) and installed in the session layer with
// the IPMI privilege of its role (Administrator 4, Operator 3, ReadOnly
// 2); an unknown, disabled or locked account is removed, and the server
// then answers as for a wrong password (no user enumeration). The
// outcome of every login is reported with RecordAuthResult, so account
// lockout and the per-source Limiter are shared with Redfish; a login
// abandoned after RAKP message 2 (what clients do on a wrong password)
// counts as a failure after HandshakeTimeout. A source the Limiter blocks
// gets "insufficient resources" (status 01h) to its Open Session request.
// A refusal of the requested privilege (RAKP status 09h/0Ah) does not
// count against the account: no password was tested.
//
// Open Session with requested privilege 0 ("highest available", what
// FreeIPMI sends) is answered with the channel's real maximum,
// ADMINISTRATOR (an enabled Administrator always exists), since the user
// is only named at RAKP message 1; a RAKP message 1 with privilege 0 then
// gets the user's own maximum. FreeIPMI needs no workaround flag.
// The interception sits in a transport.PacketConn wrapper (auth.go)
// because go-ipmi's server calls its handshake handlers directly.
//
// # Commands
//
//   - Get Device ID (IPMI version 02h = 2.0, BCD), Get Device GUID and Get
//     System GUID (random RFC 4122 v4 GUIDs made once and kept in
//     StateFile, sent in IPMI order: the RFC byte string reversed; the
//     System GUID is also the one RAKP message 2 carries), Get Channel
//     Info.
//   - Chassis: the enclosure. System power is on when any present node is
//     on; power fault when a present PSU is not power-good or critical;
//     overload when the PSUs deliver more than their capacity; a fan in
//     critical health sets the cooling fault. Chassis Control (OPERATOR)
//     powers every present node on, off, or cycles the nodes that are on
//     (hard reset = cycle), through the board's node source, then has the
//     collector refresh the store.
//   - SEL: the CMC's merged event log, see below.
//   - SDR repository, Get Sensor Reading, Get Sensor Thresholds, Get
//     Sensor Hysteresis: see below.
//   - FRU: device 0 is the enclosure, device N node N (the asset records),
//     encoded in the Platform Management FRU format (common header,
//     chassis, board and product areas, 8-bit ASCII fields, zero
//     checksums); each node has a FRU Device Locator record so that `fru
//     print` and ipmi-fru find it.
//   - DCMI Get Power Reading, mode 01h: the chassis total (the sum of the
//     present PSUs' output power), with minimum, maximum and average over
//     the samples of the last hour (one a second); Get DCMI Capabilities
//     parameter 1.
//
// # The merged SEL
//
// The CMC's own event log (syncsel Events) and every node's stored SEL,
// ordered by time, then source, then sequence. Each source owns a block
// of record IDs: ID = 1 + source*3854 + seq%3854 (source 0 = CMC, N =
// node N; seq = the CMC event's ID or the node entry's collector
// sequence), so an entry keeps its ID across reads, restarts and other
// entries arriving (a source shows at most its newest 3854 entries).
// Node entries carry generator ID 80h+2N (node N's IPMB address in
// PICMG 3.0 numbering: slot 1 = 82h), CMC events 0020h with sensor number
// F0h: ConfigChanged as System Event/System Reconfigured,
// RoundCommitted as System Event/Entry added to Auxiliary Log (the sync
// journal), RoundRolledBack and critical alarms as Management Subsystem
// Health/Controller access degraded, BackupStarted as Management
// Subsystem Health/Management controller off-line; event data 2 carries
// the round's low byte. Get SEL Entry with an offset needs the current
// reservation; a new Reserve SEL cancels the previous one.
//
// Clear SEL (OPERATOR, with the current reservation) hides every entry
// the merged log holds at that moment: per source the highest sequence is
// recorded in StateFile (crash-safely, with the erase timestamp Get SEL
// Info reports). The stores' data is untouched: node SELs stay in the
// sync categories and on Redfish, and the nodes' own BMC SELs are not
// erased (clear a node's SEL on that node). A source whose sequence
// numbers restart below its mark (its stored log emptied and cmcd
// restarted) has its mark dropped. Set SEL Time is refused: the SEL clock
// is the CMC's system clock.
//
// # Sensors and SDRs
//
// Sensor numbers are fixed per component (PSU n: 10h+4(n-1): Status,
// Power Out, Vin, Temp; fan n: 30h+n-1; 40h Chassis Power, 41h Nodes
// Power, 42h Inlet Temp Max; node n: 50h+4(n-1): Power, Inlet, CPU Temp),
// all owned by the CMC (20h). Analog sensors have full SDRs, linear, whose
// M and R exponent make one count the smallest 1, 2 or 5 x 10^k that
// spans a static full scale: PSU power 1.25 x capacity (2000 W: 10 W),
// Vin 300 V (2 V), temperatures signed -128..127 C (1 C), fans 1.25 x
// maximum speed (16000 RPM: 100 RPM), chassis power 1.25 x the present
// PSUs' capacity, node power 1000 W (5 W), nodes' power 1000 W per node.
// Thresholds are given where the data defines them: PSU and chassis power
// upper non-critical 90% and upper critical 100% of capacity. A
// component's health also shows in the comparison bits (fans as lower,
// the others as upper thresholds). PSU status is a compact, discrete
// sensor (type 08h: presence, failure, predictive failure). Because the
// set depends only on what is installed and on static ratings, the
// repository changes only when the population does; its SHA-256 is kept
// in StateFile with the time it last changed, which Get SDR Repository
// Info reports as both the addition and the erase time (clients such as
// FreeIPMI's SDR cache use them to notice the change), and a change
// cancels SDR reservations.
//
// One read of the store serves requests for MaxAge (1 s): a client
// walking 1,000 SEL entries costs one read.
//
// Every reply leaves from the address its request was sent to (pktconn.go:
// IP_PKTINFO / IPV6_PKTINFO), so a responder on the wildcard address
// answers correctly through the redundant pair's floating address, which
// the active module adds next to its own.
package ipmisrv
