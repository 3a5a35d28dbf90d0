// Package syncsel is the heart of cmcd: selective, journaled, all-or-nothing
// synchronisation of the primary image's data area to the backup image's
// (SPEC Part S).
//
//   - categories.go and model.go: the six categories of S1 and the selection
//     model of S2 — every category and configuration option with its value,
//     allowed values and an explanation — and the validation that refuses a
//     bad change with a message naming the option, leaving the configuration
//     in force untouched.
//   - store.go: a data store (one bbolt file per data area). Every record is
//     stored with a 128-bit fingerprint; each category keeps the sum of its
//     records' fingerprints, so comparing two stores is O(1) per category and
//     a round finds the changed records by merging two cursors (V2).
//   - collector.go: keeps the running image's store current from the board.
//   - engine.go: the round engine. A round copies the changed records of the
//     chosen categories of the current group (S6 round-robin) in ONE bbolt
//     write transaction on the destination, preceded by a durable intent
//     record in the destination's journal. bbolt's meta-page commit is the
//     atomic switch: a crash, kill or power cut before it leaves the
//     destination at the last committed round. Recovery (at start, or on the
//     abort path when the primary turns abnormal, S4) finds the intent,
//     verifies by recomputing every fingerprint that the destination equals
//     the last committed round, removes the intent, records the rollback and
//     re-initialises the configuration from that round.
//   - schedule.go: next round = end of the last + interval (S6).
//   - verify.go: the offline consistency check behind `cmcd verify`.
package syncsel
