// Package pair runs the redundant CMC pair (SPEC Parts H and D, and the
// sync channel of V1): two modules, one active and one standby, plus an
// optional witness.
//
// # Roles on raft
//
// Roles and replication are github.com/hashicorp/raft; nothing here is a
// home-made consensus. The voters are module A, module B and the witness
// (`cmcd witness`), so two of three decide and either module survives the
// loss of the other. The raft leader is the active module: it holds the
// floating address (package pair/vip) and takes every write (D3). When the
// witness wins an election (its timer fired first) it hands leadership to
// a module at once; it never takes the address. A leader that loses its
// quorum steps down after the leader lease (Timing.Lease, shorter than the
// heartbeat timeout), releasing the address first.
//
// # Storage
//
// DIR/raft.db is an in-repo bbolt LogStore and StableStore (one bbolt
// transaction per append, fsynced); snapshots are raft's
// FileSnapshotStore in DIR/snapshots.
//
// # The replicated state
//
// The FSM is a map from slot to value: "config" (the whole sync
// configuration, as the patch that sets every option), "accounts" (the
// account list), "sessions" (the Redfish sessions: the SHA-256 of each
// token, never the token, with user, creation and last use, and the idle
// timeout), "firmware" (the pair-wide firmware state, below) and
// "kv/<key>" (generic acknowledged writes). Values are
// sealed with XChaCha20-Poly1305 under the pair key (a 32-byte secret on
// both modules, never on the witness; the slot name is bound in as
// associated data). The witness keeps the sealed bytes it cannot open, so
// all three voters hold identical state (Fingerprint compares them) and a
// witness snapshot can bring a module back. Passwords therefore never
// reach the witness, its disk or the network in clear. On a module each
// applied value is opened and handed to a Sink (daemon/pair.go: the sync
// engine's UpdateConfig); a snapshot holds the whole map, so a module
// that was away gets everything in one batch (D6).
//
// What is per module and what is pair-wide (daemon/pairslots.go,
// daemon/pairfw.go): each module has its own flash, so its image slots,
// their states, the boot counter and trial, and its boot slot (which of
// its own slots boots next) are per module and never applied to the other
// module. Pair-wide are the sync configuration, the accounts, the
// sessions (a login on the active works on the standby and after a
// takeover; a logout ends the session on both; each module expires idle
// sessions itself from the replicated last use, which is replicated when
// it has moved on by a tenth of the timeout, so a session ends at most
// that much early after a takeover, never late), each module's pending
// activation request (recorded for the other module's view, not applied
// to its flash), and the operator's S5 keep-or-restore answer, which
// every module whose own choice for that upgraded version is pending
// applies. The collected data (the syncsel stores) is not in the log: it
// is live readings each module collects from the shared board; the
// fingerprint vote (pair/vote, daemon/pairvote.go, daemon/pairdata.go)
// compares it across both data areas of both modules and copies the
// majority sample's records to a disagreeing module (one syncsel import
// transaction into its rounds' source area, then a round).
//
// Writes reach the log from the active only: Redfish writes (logins and
// logouts included) are answered once every changed slot is committed;
// IPMI user commands wait the same way through ipmisrv's WriteGate; any
// other change of the accounts or sessions (a session's last use, its
// expiry) is published by the active shortly after. The standby refuses
// writes: Redfish 503, IPMI completion code D5h.
//
// Put (H3) returns only after raft committed the entry on a quorum and
// this module applied it. CanServeReads (D1, D2) is true on the active,
// and on a standby only while it hears the active (within one heartbeat
// timeout) and has applied up to the commit index the active sent it: a
// lease-based read index.
//
// # Two paths (V1)
//
// Every voter's raft address lists all its paths (management network,
// then the dedicated sync link). The stream layer listens on all and dials
// all at once, keeping the first connection that opens; so a peer looks
// silent only when every path is.
//
// # Takeover, fencing and the floating address (H2, H4, H5)
//
// A module that became leader first waits for every committed entry to be
// applied (Barrier), then sends a duplicate-address probe. If another host
// still answers for the address (a crashed or frozen former active whose
// kernel still has it), it fences the other module through the Fencer
// (ExecFencer: a fence agent command; PIDFencer: the simulated board's
// peer reset, SIGKILL by pid file) and probes again; only when nobody
// answers does it add the address and send gratuitous ARP. A fence that
// fails means no takeover of the address. Writes of a fenced former
// active can never commit: its term is stale (every applied entry carries
// its term, LastApplied).
//
// # Power-up (D7)
//
// All voters bootstrap the same configuration. The first module elected
// becomes active; if it is not the preset module (Config.Preset, default
// the first module listed) and this is its first takeover, without a
// fence, within PresetWindow of its start, and the preset module answers,
// it releases the address and transfers leadership to the preset module.
// Later failovers never fail back.
//
// # Two-node mode
//
// Without a witness raft cannot elect with one of two voters. A module
// whose leader has been silent for two heartbeat timeouts (after a start
// grace) fences its peer, then rewrites its raft configuration to itself
// alone (raft.RecoverCluster) and elects itself. The safety argument is
// the fence: a voter removed without consensus can never act again. The
// non-preset module waits FenceDelay first, so a split fences one side,
// not both (Pacemaker's priority-fencing-delay). When the fenced module
// returns and answers, the leader adds it back as a voter.
package pair
