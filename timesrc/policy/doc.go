// Package policy is the feedback and policy engine of the time source
// (SPEC T2-T6, T8). It is pure logic over a clock: the NTP server feeds it
// every answered request (Decide), nodes and region servers feed it explicit
// reports (Report), and Tick evaluates the shares. Every decision is an
// events.Event and is visible in the client table.
//
//   - Observation (T2): per client the request count and rate, the observed
//     poll interval, the advertised poll, the stratum it sends, and its
//     transmit timestamp minus our receive time. Clients that hide their
//     clock (chrony sends a random transmit timestamp) show a difference
//     beyond PlausibleOffset and are not judged from it; explicit reports
//     cover them.
//   - Repair (T4): a client abnormal for AbnormalAfter consecutive
//     observations or reports walks through Repairs (each for RepairTries
//     abnormal evaluations): poll-fast (NTP replies advertise poll 2^4,
//     report directives ask for a burst), step (report directive: step the
//     clock), restart-client (report directive: restart the NTP client);
//     when none helps, an alarm. A client normal again is "repaired".
//   - Client pause (T5): when more than ClientPauseShare of at least
//     MinClients active clients are abnormal, every client is answered with
//     leap 3 for PauseFor (standard clients then run on their own
//     oscillators), then the region resumes and re-evaluates.
//   - Randomised polling (T6): when the number of active clients changes,
//     or on command, a random factor f in [0,1) is drawn and client i of n
//     (in address order) gets the poll phase ((i+f)/n)·SpreadWindow,
//     delivered in report directives.
//   - Upstream pause (T3, core role): region servers report to the core;
//     when more than RegionPauseShare of them are abnormal, the core's
//     directive tells them all to pause upstream sync for PauseFor (they
//     serve holdover), and each abnormal region raises an alarm.
//   - Regions (T8) carry a name and a type (business and/or site); the
//     client table groups by them.
package policy
