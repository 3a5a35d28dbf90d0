// Package flashtest provides a fake image health probe that tests switch
// between healthy, slow, erroring and dead.
package flashtest
