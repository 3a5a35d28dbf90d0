// Package clocktest provides a fake clock.Clock that moves only when a
// test advances it.
package clocktest
