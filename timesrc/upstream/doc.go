// Package upstream is the first sync of Part T (T1): cmcd, as a region
// server, polls its configured core servers over NTP and keeps an estimate
// of its clock's offset and frequency error.
//
// Each poll queries every server (github.com/beevik/ntp; Querier is the
// interface, fakes in tests). Per server a clock filter keeps the last 8
// samples and uses the one with the lowest round-trip delay. Selection
// builds each server's correctness interval [offset − λ, offset + λ], with
// λ its root distance (root delay/2 + root dispersion + delay/2 + jitter +
// a 1 ms floor), and finds the largest intersection (Marzullo); it needs
// more than half of the usable servers in it, and those outside are
// falsetickers. Among the truechimers the lowest root distance is the
// system peer (its stratum and address make the served stratum and
// reference id); the combined offset is the truechimers' offsets weighted
// by 1/λ. A least-squares line through the last 16 combined offsets gives
// the offset and frequency estimate handed to the discipline.Clock.
//
// When the core is paused (T3), unreachable or wrong the poller holds over:
// the last estimate keeps running, the served root dispersion grows by
// 15 ppm of the time since the last update, and after HoldoverMax the state
// becomes unsynchronised (leap 3, stratum 16).
package upstream
