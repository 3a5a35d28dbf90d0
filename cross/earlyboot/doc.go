// Package earlyboot is the early userspace of a CMC board: what its /init
// (cmd/cmcinit) does between the kernel and cmcd. It mounts /proc, /sys and
// devtmpfs, loads kernel modules in a given order with finit_module, finds
// the flash partitions by name in /proc/mtd, attaches each data partition to
// UBI (an all-0xFF partition is formatted by UBI on its first attach),
// creates the data volume when it is missing, mounts it as UBIFS (an empty
// volume gets a fresh file system on its first mount) and configures the
// network interface.
//
// The parsers (/proc/mtd, /proc/cmdline, module order files) and the UBI
// ioctl encodings are plain functions with tests on the development
// machine; the system calls live in _linux.go files and run in the emulated
// CMC (cross/qemu) and on a board.
//
// UBIFS, not JFFS2: bbolt cannot open its database on JFFS2 (JFFS2 refuses
// the shared mapping of a file opened read-write), so every cmcd data area
// is a UBIFS volume.
package earlyboot
