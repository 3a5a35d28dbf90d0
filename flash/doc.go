// Package flash models the CMC's two firmware image slots, primary and
// backup, each with a read-write data area, the health probe of the primary
// image, and the action that starts the backup image.
//
// On a board a data area is the mounted UBIFS (or ext4 on eMMC) partition of
// that flash; on a development machine it is a directory (`make run` uses
// var/primary and var/backup). Which slot runs is recorded in a small boot
// state file written crash-safely (temp file, fsync, rename, fsync of the
// directory). The same file records the firmware slots (boot.go): each
// slot's image state (empty, installing, pending, good, bad), the slot
// selected for the next boot, the boot counter and the trial of a newly
// activated image, and the post-upgrade keep-or-restore choice (S5).
//
// device.go: a slot's image bytes live on a Device — an MTD character
// device (/dev/mtdN; MEMGETINFO, MEMERASE, bad blocks refused) on a board,
// or on the simulated board and in tests a file with flash semantics
// (DIR/image-primary.bin, DIR/image-backup.bin: reads of unwritten bytes
// give 0xFF, writes only clear bits). WriteImage erases and writes an
// image in write-unit-aligned chunks.
//
// Package flashtest has a probe that tests can make slow, erroring or dead.
package flash
