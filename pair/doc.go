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
// # Load-aware reads (D1, D2; daemon/pairload.go)
//
// Clients reach only the floating address, so the active module is the
// controller. D1: each module measures its own load — Redfish reads in
// flight plus 4 × the recent CPU use of its own process (/proc/self/stat,
// an EWMA over 250 ms samples; per process, so the figure tells two
// modules on one kernel apart) — and publishes it in GET
// /cmcd/pair/status (and in the X-Cmcd-Load header of each read it
// serves for the other module); whether the standby is in sync is its
// status as the active last read it (standby, CanServeReads). D2: the
// active sends a Redfish GET/HEAD of pair-wide data (not the module's own
// Manager, firmware, tasks, event service or an SSE stream) to the
// standby when it is in sync and its load is lower by a margin — routing
// starts at a difference of 1 and stops below 0.25 (hysteresis) —
// otherwise it serves the read itself. The proxied read carries the
// client's own credentials (the standby checks them against the
// replicated accounts and sessions; a session's use is refreshed on the
// active too), is signed with the pair key, and carries a read index: the
// FSM's LastApplied on the active, which covers every acknowledged write
// (Put returns after the local apply). The standby answers only if it
// can serve reads and its own FSM has reached that index (within 100 ms);
// FSM.LastApplied moves on only after the Sink has the value, unlike
// raft's AppliedIndex, which moves when the entry is handed to the FSM.
// So a read routed right after an acknowledged write sees it. Any failure
// of the routed read (path, timeout, the standby behind, 401/403, 5xx)
// makes the active serve it: routing never fails a read. Every read
// through the pair names its server in X-Cmcd-Served-By, and the counts
// are under Oem.Cmcd.Pair.Reads of the module's Manager.
//
// # Two paths (V1)
//
// Every voter's raft address lists all its paths (management network,
// then the dedicated sync link). The stream layer listens on all and dials
// all at once, keeping the first connection that authenticates; so a peer
// looks silent only when every path is. Replication is not pipelined
// (MaxRPCsInFlight 1): hashicorp/raft's pipeline can deadlock after a
// follower answers Success=false, leaving that follower without entries
// and the leader's Shutdown hung.
//
// # Transport security
//
// Every raft connection is TLS 1.3 with mutual authentication (creds.go).
// The credential is an Ed25519 key pair seeded (HKDF-SHA256) from the
// transport key, which the modules derive from the pair key they already
// share: TransportKey(pair key) = HKDF-SHA256(pair key, "raft transport
// v1"). Each side presents a self-signed certificate for that key and
// accepts the other only if its certificate carries the same public key
// and it signed the handshake with the private key; no CA, nothing to
// renew or expire (a module's clock may be anything at boot). A peer
// without the credential — another key, the raw pair key, plain TCP
// speaking raft — fails the handshake and never reaches raft
// (TestTransportRefusesStrangers). This matters beyond secrecy: raft's
// RPCs are unauthenticated by themselves, and one of them (TimeoutNow)
// makes a voter start an election at once.
//
// The witness must authenticate too, but must not hold the pair key (it
// would open every sealed value). It gets the transport key itself as its
// own secret, the witness key (`cmcd witness-key --pair-key FILE` writes
// it; `cmcd witness --key FILE` reads it). The derivation is one-way, so
// the witness key reveals nothing about the pair key. The choice of one
// shared credential for all three voters rather than one per voter: the
// witness is a voter anyway (it can vote as it likes, and could be
// elected), so a per-voter identity would not take power from a stolen
// witness key; what it cannot do — forge or read replicated values — is
// guarded by the pair key's sealing, which it never has. A new pair key
// means a new witness key.
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
// its term, LastApplied). Each takeover logs its phases ("pair: takeover":
// barrier, probe, fence, address, active), which the takeover benchmark
// (pair/lab) prints as a table.
//
// # Fast takeover after a crash (fast.go)
//
// Raft alone notices a dead active after its heartbeat timeout, and the
// witness refuses the standby's vote until its own timer has run out too
// (leader stickiness): 0.3-0.8 s with the 200 ms heartbeat. A crashed
// process is visible sooner: its kernel closes its connections at once
// and refuses new ones on its raft port. When a connection the active had
// opened to the standby is closed or reset, the standby dials the active's
// raft port on every path (for up to 150 ms while it still accepts); a
// refusal proves the process gone (one process holds every listener). The standby then starts an election at once
// through raft's leadership-transfer entry point (a TimeoutNow RPC to
// itself; its vote request carries the transfer flag, which the witness
// honours though it still knows the old leader — term and log checks are
// unchanged, so raft's safety is untouched), and meanwhile probes the
// address and fences the dead module if its kernel still answers for it,
// so the fence overlaps the election. After that fence (or a probe nobody
// answered) the takeover's own probe waits 30 ms instead of the full probe
// wait. A frozen (SIGSTOP) or cut-off active gives no such proof: raft's
// timers decide as before. Config.NoFastTakeover turns the fast path off
// (the benchmark's comparison runs). The Redfish and IPMI listeners are on
// the wildcard address on both modules all the time, so the new active
// answers the moment the address is up.
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
// not both (Pacemaker's priority-fencing-delay). When the other module's
// process was proven gone (fast.go), the survivor fences at once, without
// the silence wait or the delay (a dead process cannot fence back), and
// elects itself at once. When the fenced module returns and answers, the
// leader adds it back as a voter. From then on the two voters are one
// quorum again: while the returning module catches up (a snapshot, on a
// loaded board), the leader's lease can run out and the roles move once
// before they settle — never two holders, no acknowledged write lost
// (pair/lab TestLabTwoNode), but a short gap.
package pair
