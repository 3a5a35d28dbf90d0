// Package qemu boots the emulated CMC: cmcd on an ASPEED AST2600 under
// qemu-system-arm (machine tacoma-bmc), with Debian's armhf 6.1 kernel,
// an initramfs made of cmd/cmcinit, the ARMv7 cmcd and the kernel modules,
// and the primary and backup flash images on the two FMC chip selects.
// Its test (in `make test`) boots it on the same flash images again after
// each of ten power cuts and drives cmcd over QEMU user networking with
// its own HTTP client, gofish, DMTF's redfishtool and `ipmitool -I
// lanplus`; `make qemu` boots it by hand with the serial console on the
// terminal.
//
// # The flash layout
//
// QEMU's tacoma-bmc machine runs with fmc-model=s25fl512s: two 64 MiB NOR
// chips with 256 KiB erase blocks, which Linux names bmc (chip select 0,
// the primary flash) and alt-bmc (chip select 1, the backup flash). The
// default mx66l1g45g chips (128 MiB) would be erased in 4 KiB sectors by
// Debian's kernel (CONFIG_MTD_SPI_NOR_USE_4K_SECTORS), and UBIFS needs
// logical erase blocks of at least 15 KiB, so they cannot hold UBI.
// scripts/fetch-arm-kernel.sh derives cmc-tacoma.dtb from Debian's
// aspeed-bmc-opp-tacoma.dtb with this partition table on each chip (the
// backup chip's names carry an "alt-" prefix):
//
//	offset     size       name        holds
//	0x0000000  0x00c0000  u-boot      boot loader        (boot image region:
//	0x00c0000  0x0040000  u-boot-env  its environment     never written by
//	0x0100000  0x0900000  kernel      FIT kernel image    cmcinit or cmcd)
//	0x0a00000  0x1e00000  rofs        read-only root fs
//	0x2800000  0x1800000  rwfs        UBI: volume "cmcd-data", UBIFS = the image's cmcd data area
//
// Every partition starts and ends on a 256 KiB erase block (the tacoma
// tree's 0xe0000-byte u-boot would be forced read-only). The derived
// tree's FMC node is saved beside it as cmc-tacoma-fmc.dts.
// The flash images start all 0xFF (erased): UBI formats rwfs on the first
// attach and UBIFS creates its file system on the first mount, so the
// same images carry the data areas across boots. cmcinit mounts the
// primary's volume on /data/primary and the backup's on /data/backup,
// which are flash.Areas{Root: "/data"}.Dir(Primary) and Dir(Backup).
// What cmcd keeps in the data root itself (accounts, the TLS certificate,
// the simulated boot state) is in the initramfs's RAM file system on the
// emulated CMC and starts fresh at every boot.
//
// # The network
//
// The tacoma tree runs the MAC at 1e670000 (eth0) over NC-SI. Linux 6.1's
// NC-SI channel discovery panicked here once under TCG on a loaded machine
// (NULL dereference in ncsi_add_channel from ncsi_rsp_handler_cis, from
// ncsi_dev_work), so the derived tree gives that MAC an RMII 100 Mb/s
// full-duplex fixed link instead (which also saves the ~2 s NC-SI
// negotiation). QEMU user networking forwards 127.0.0.1:PORT to its port 80.
//
// # The I2C devices
//
// Config.Devices adds QEMU models on the AST2600's I2C buses: two
// isl69260 PMBus devices as PSU1/PSU2 (7-0040, 7-0041; cmcd reads them
// over /dev/i2c-7), a max31785 fan controller (12-0052), a tmp105 (2-0048,
// lm75 driver) and a 4 KiB at24c-eeprom holding the chassis FRU written by
// board/fru (10-0050, at24 driver). BoardProfile (board/board.json) maps
// them for cmcd --board; I2CInit (board/i2c-init) is what cmcinit does
// first: bind the tmp105 and the EEPROM, and set the isl69260s' VOUT_MODE
// to LINEAR16 and their warning limits (QEMU resets them to VID mode and
// zero limits), then CLEAR_FAULTS. The PSUs' readings are raw registers
// the caller sets with Machine.QOMSet (the test does, at each boot), as is
// the tmp105's temperature (property "temperature", milli-°C).
//
// Why the PSUs once reported Health Critical: QEMU compares the readings
// with the page's limits and latches the STATUS_WORD bits of those
// exceeded (here VOUT, IOUT_POUT and INPUT: STATUS_WORD 0xe000, which
// board/hw now logs). Until cmcinit writes them the limits are 0, and the
// bits were latched even when the test set the readings only after that,
// so QEMU 7.2 latches them before the first qom-set. And QEMU 7.2 ignores
// a one-byte write before looking at its command code, so CLEAR_FAULTS
// sent as the PMBus Send Byte it is cleared nothing (fixed in QEMU 8.2,
// "hw/i2c: pmbus: immediately clear faults on request"). I2CInit sends it
// with a data byte, which reaches QEMU's command switch and clears every
// page. cmcd decoded the register correctly: the emulated device did
// report faults.
//
// The fans: QEMU's max31785 reports its reset value, 32767 RPM, until
// FAN_COMMAND_1 is written, and then 3 x FAN_COMMAND_1 (0x7fff / 10000,
// integer division). The profile gives each fan "dutyPercent": 40, which
// cmcd (board/hw) commands at start: 4000, hence 12000 RPM. QEMU does not
// model MFR_READ_FAN_PWM (it stays 0), so the fans' duty reads 0 %.
//
// IPMI: Config.IPMIPort forwards a host UDP port to the guest's 623,
// where cmcd's RMCP+ endpoint (ipmisrv) answers `ipmitool -I lanplus`.
//
// # What QEMU does not emulate
//
// The AST2600 alternate-boot watchdog (which image booted) is not
// emulated: the emulated CMC always runs the primary image. The RTC is not
// read by this kernel; the harness passes the host's time on the kernel
// command line (cmcinit.time) so that logs and rounds carry real dates.
package qemu
