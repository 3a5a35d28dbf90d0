// Package vote is the arbiter of SPEC Part V (V3, V4): a weighted
// Boyer-Moore majority vote over the fingerprint matrices of the replicas
// of one state, and the sync-and-verify loop that brings the replicas
// that disagree back to the majority's sample.
//
// # The vote (V3)
//
// A replica reports a fingerprint matrix: one fingerprint per category
// (in cmcd: the syncsel categories of a data area; the replicas are both
// data areas of both modules). Each category is voted on separately.
// Every replica carries an integer weight; the replica the operator's
// session is on weighs more than the others (the daemon uses 3 against
// 2). Majority runs the Boyer-Moore majority vote with weights (a ballot
// of weight w counts as w unit ballots: one pass to find the only possible
// candidate, a second to count it) and accepts the candidate only when
// its weight is a strict majority of the weight that voted. "No majority"
// is a result, never a guess: with two equal groups and the operator's
// replica in neither, nothing is synced. With the operator's replica
// weighing 1.5 others, "at least n/2 of the replicas" (SPEC V3) becomes a
// strict weighted majority exactly when the operator's replica is among
// them, so ties are broken by the operator's side.
//
// The sample of a category is the heaviest replica of the winning group
// (ties: the first listed), i.e. the replica with the highest normalised
// weighted vote (Outcome.Support is the winning weight over the weight
// that voted).
//
// # Sync and verify (V4)
//
// Arbiter.Run reads every matrix (Source.Matrices), votes, and for each
// replica that disagrees asks the Source to copy the disagreeing
// categories from the sample (or, when the Source is a Router, from
// another replica that agrees with it, e.g. one with a local sync path).
// It then reads the matrices again and
// verifies each copy by fingerprint against the sample's current
// fingerprint (live data may have moved on); a replica that still differs
// is synced again, up to MaxAttempts. Every step is an Event (Arbiter.Event)
// and the whole run is a Report.
package vote
