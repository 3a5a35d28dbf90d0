// Package clock puts time behind a small interface so that schedules,
// timeouts and drift can be tested with a fake clock (package clocktest)
// in microseconds instead of wall time.
package clock
