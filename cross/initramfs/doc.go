// Package initramfs builds the initramfs of a CMC board on the development
// machine: a gzip-compressed newc cpio archive (the format the Linux kernel
// unpacks into its root file system) holding /init, cmcd, /dev/console and
// the kernel modules the board needs, with their dependencies resolved from
// each module's .modinfo section (no depmod, no kmod on the host) and
// written in load order to /lib/modules/load-order for cmd/cmcinit.
package initramfs
