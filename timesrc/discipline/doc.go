// Package discipline is the clock that cmcd serves to its NTP clients and
// the way an upstream estimate is applied to it.
//
// Clock maps raw readings of the machine's clock (kernel receive timestamps,
// time.Now) to the served, corrected time. Virtual keeps the correction
// inside the daemon: it never steps or slews the machine's clock, so it is
// the default under --board sim and the only backend any test uses.
// Adjtimex (Linux) hands the estimate to the kernel's clock discipline on a
// real board; it is never used in tests.
package discipline
