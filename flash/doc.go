// Package flash models the CMC's two firmware image slots, primary and
// backup, each with a read-write data area, the health probe of the primary
// image, and the action that starts the backup image.
//
// On a board a data area is the mounted UBIFS (or ext4 on eMMC) partition of
// that flash; on a development machine it is a directory (`make run` uses
// var/primary and var/backup). Which slot runs is recorded in a small boot
// state file written crash-safely (temp file, fsync, rename, fsync of the
// directory). Package flashtest has a probe that tests can make slow,
// erroring or dead.
package flash
