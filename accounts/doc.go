// Package accounts is the one user account store of cmcd, shared by the
// Redfish service (AccountService, SessionService, Basic auth) and the
// IPMI-over-LAN responder.
//
// # Roles
//
// The three DMTF standard roles Administrator, Operator and ReadOnly carry
// their standard Redfish privileges (HasPrivilege, Privileges) and map to the
// IPMI privilege levels ADMINISTRATOR (4), OPERATOR (3) and USER (2)
// (IPMIPrivilege). The last enabled Administrator can never be deleted,
// disabled or demoted (ErrLastAdmin).
//
// # Policy
//
// User names are 1..16 characters of [A-Za-z0-9._-] and passwords 8..20
// printable ASCII characters: 16 and 20 are the sizes of the IPMI 2.0 user
// name and password fields. Each account holds a stable IPMI user ID in
// 2..15 (user 1 is IPMI's anonymous user and is never used), so there are
// at most 14 accounts. There is no default password: EnsureInitialAdmin
// creates "admin" with a random password and writes it once to
// <data>/initial-admin-password (0600); that file is removed when the admin
// password is changed or the account deleted.
//
// # Files
//
// Under the data directory given to Open:
//
//	accounts.json           the accounts, mode 0600 (format below)
//	device.key              32 random bytes, mode 0600, created on first Open
//	initial-admin-password  the generated admin password, mode 0600, see above
//
// accounts.json is one JSON object:
//
//	{"format": 1, "generation": 7, "accounts": [
//	  {"username": "admin", "ipmiUserId": 2, "role": "Administrator", "enabled": true,
//	   "version": 7, "bcrypt": "$2a$10$...", "secret": "<base64>"}]}
//
// "version" is the generation of the account's last change (so an ETag is
// never reused, even by a deleted and re-created account); "bcrypt" is the
// bcrypt hash every Redfish login is checked against; "secret" is the
// password sealed with XChaCha20-Poly1305 under device.key (24-byte random
// nonce followed by the ciphertext, the user name bound in as associated
// data) because IPMI RAKP needs the clear password as an HMAC key
// (IPMICredentials). The clear password is never written to accounts.json.
// Unknown fields are ignored so that a firmware image rolled back to an
// older version still reads the file; a different "format" is refused.
//
// A plain JSON file rather than bbolt, because the store is tiny (at most 14
// records, a few KiB), changes rarely, is read whole at start and must be
// readable by people repairing a board; a file replaced with rename needs no
// mmap and no free-page management, and works on any filesystem the data
// area uses. Every change writes the whole file crash-safely: a temporary
// file is written and fsynced, renamed over accounts.json, and the directory
// fsynced, so after a crash or power cut the file holds the state before or
// after the change, never a mix. Open checks the whole file (syntax, names,
// IDs, roles, hashes, and that every secret opens with device.key) and
// reports a bad one with ErrCorrupt, naming the file and the problem; it
// never replaces it. device.key is only created when accounts.json does not
// exist, so a lost key is reported, not silently regenerated.
//
// XChaCha20-Poly1305 rather than AES-GCM because the CMC's cores (ARM1176
// on AST2500, Cortex-A7 on AST2600) have no AES instructions, where ChaCha20
// is fast and constant-time in software, and its 24-byte nonces are safe to
// draw at random. The key sits
// beside the data it protects: this keeps passwords out of copies of
// accounts.json, not from someone holding the whole data area. A data area
// restored or synced to another image needs its device.key too.
//
// # Logins, lockout and rate limits
//
// Authenticate (Redfish) checks the bcrypt hash. Unknown users are compared
// against a dummy hash of the same cost and get the same ErrBadCredentials
// as wrong passwords. After 5 failures within 5 minutes (WithLockout) an
// account is locked for 5 minutes; a Limiter additionally refuses a source
// address (its port ignored) for a minute after 10 failures within a minute,
// whatever the accounts tried (WithLimiter). Lockout and limiter
// state live in memory only, so failed logins never cost a flash write. IPMI
// gets the clear password from IPMICredentials (which refuses disabled and
// locked accounts) and reports each RAKP outcome with RecordAuthResult, so
// both protocols share lockout and limits. At most half the CPUs (at least
// one) run bcrypt at a time, so a login flood cannot starve the daemon.
//
// # Verified-credential cache
//
// Redfish Basic auth sends the password with every request, and bcrypt at
// cost 10 takes tens to hundreds of milliseconds on the CMC's ARM core. So
// after a successful Authenticate the store remembers, per user name,
// HMAC-SHA256(password) under a random key made at Open (never stored),
// with the account's version and an expiry (60s, WithCacheTTL). A request
// whose password has the same HMAC, for the same unmodified, enabled and
// unlocked account within the TTL, is accepted without bcrypt. Any change
// to the account (password, role, enabled, deletion) changes its version
// and drops the entry, as does a lockout; failed logins are never cached.
//
// Time comes from a Clock (WithClock) so tests drive lockout, limits and
// cache expiry with a fake. A Store is safe for concurrent use; bcrypt runs
// outside its lock.
package accounts
