// Package timesrc is cmcd's region time source (SPEC Part T).
//
// The CMC is the REGION clock server of its chassis: it synchronises from
// the CORE tier over NTP (first sync) and serves the nodes of its chassis
// over NTP (second sync), adjusting its policy from what it observes of its
// clients and from their explicit reports. The work is split into small
// packages with one job each:
//
//   - discipline: the clock cmcd serves. The virtual clock (the default under
//     --board sim and in every test) keeps the corrected time inside the
//     daemon and never touches the machine's clock; the adjtimex backend
//     disciplines the system clock on a real board.
//   - upstream: polls the core servers (github.com/beevik/ntp), filters
//     samples, rejects falsetickers by interval intersection, prefers the
//     lowest root distance, estimates offset and frequency, and holds over
//     when the core is paused or unreachable.
//   - server: the NTP server of the region (github.com/facebook/time/ntp/protocol
//     for the wire format, kernel receive timestamps), honest state, per-source
//     rate limit with Kiss-o'-Death RATE.
//   - policy: the feedback and policy engine (T2-T6, T8): client table,
//     explicit reports, repair sequence and alarms, upstream pause, client
//     pause, randomised polling; every decision is an Event.
//
// This package wires them into a Service and exposes the JSON API (an
// http.Handler) that the Redfish layer mounts as the Manager's OEM time
// source resource and report action.
package timesrc
