#!/usr/bin/env bash
# Fetches what the emulated CMC (cross/qemu, `make qemu`) boots: Debian's armhf
# `linux-image-6.1.0-NN-armmp` kernel, its ASPEED tacoma device tree and the
# kernel modules the CMC needs, and derives the CMC's device tree (two 64 MiB
# flash chips, each with a boot region and a UBI data partition; see
# cross/qemu/doc.go for the layout).
#
# The machine's apt configuration is never changed: the armhf package lists
# live in a private directory and apt is pointed at it with -o options for
# this one call; the machine's sources are reused as they are.
#
# Idempotent: when the cache already holds a complete set, it prints the
# directory and exits. Prints the cache directory on its last line.
#
#   CMCD_CACHE   cache root (default $HOME/.cache/cmcd); the set goes to
#                $CMCD_CACHE/arm-kernel
set -euo pipefail

cache=${CMCD_CACHE:-${HOME:-/root}/.cache/cmcd}/arm-kernel
stamp=$cache/complete
# Bump when the derived files (the device tree's layout, the module set) change.
layout=5
if [ -f "$stamp" ] && grep -qx "layout=$layout" "$stamp" && [ -f "$cache/vmlinuz" ] && [ -f "$cache/cmc-tacoma.dtb" ]; then
	echo "$cache"
	exit 0
fi
for tool in apt-get dpkg-deb dtc fdtput; do
	command -v "$tool" >/dev/null || { echo "fetch-arm-kernel: $tool is missing (make deps installs it)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
apt_opts=(
	-o APT::Architecture=armhf
	-o APT::Architectures::=armhf
	-o Dir::State::Lists="$work/lists"
	-o Dir::Cache="$work/cache"
	-o Dir::State::status=/dev/null
	-o Debug::NoLocking=1
	-o APT::Sandbox::User=root
	-o Acquire::Languages=none
)
# A mirror caught mid-sync may fail one index (the security suite's, seen
# here); the kernel only needs the main suite's, so a partial update is
# accepted and the package look-up below decides.
if ! apt-get "${apt_opts[@]}" -qq update >"$work/update.log" 2>&1; then
	echo "fetch-arm-kernel: apt-get update reported errors (continuing with the indexes it got):" >&2
	grep -E '^(E|W):' "$work/update.log" >&2 || true
fi

# linux-image-armmp depends on the current ABI's package, linux-image-6.1.0-NN-armmp.
pkg=$(apt-cache "${apt_opts[@]}" depends linux-image-armmp 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-armmp\)$/\1/p' | head -1)
if [ -z "$pkg" ]; then
	pkg=$(apt-cache "${apt_opts[@]}" pkgnames linux-image-6.1.0- 2>/dev/null | grep -E '^linux-image-6\.1\.0-[0-9]+-armmp$' | sort -V | tail -1)
fi
[ -n "$pkg" ] || { echo "fetch-arm-kernel: no linux-image-6.1.0-*-armmp package for armhf in the archive" >&2; cat "$work/update.log" >&2; exit 1; }
echo "fetch-arm-kernel: downloading $pkg (armhf)" >&2
(cd "$work/deb" && apt-get "${apt_opts[@]}" -qq download "$pkg:armhf" >&2)
deb=$(ls "$work"/deb/*.deb)

x=$work/x
mkdir -p "$x"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$x" --wildcards \
	'./boot/vmlinuz-*' './boot/config-*' './usr/lib/linux-image-*/aspeed-bmc-opp-tacoma.dtb' \
	'./lib/modules/*/kernel/drivers/mtd/*' './lib/modules/*/kernel/drivers/spi/*' \
	'./lib/modules/*/kernel/drivers/net/phy/*' './lib/modules/*/kernel/drivers/net/mdio/*' \
	'./lib/modules/*/kernel/drivers/net/ethernet/faraday/*' './lib/modules/*/kernel/fs/ubifs/*' \
	'./lib/modules/*/kernel/lib/*' './lib/modules/*/kernel/crypto/*' \
	'./lib/modules/*/kernel/drivers/i2c/*' './lib/modules/*/kernel/drivers/hwmon/*' \
	'./lib/modules/*/kernel/drivers/misc/eeprom/*' './lib/modules/*/kernel/drivers/gpio/*'

rm -rf "$cache.new"
mkdir -p "$cache.new"
cp "$x"/boot/vmlinuz-* "$cache.new/vmlinuz"
cp "$x"/boot/config-* "$cache.new/config"
cp "$x"/usr/lib/linux-image-*/aspeed-bmc-opp-tacoma.dtb "$cache.new/aspeed-bmc-opp-tacoma.dtb"
mv "$x"/lib/modules/* "$cache.new/modules"
echo "$pkg $(dpkg-deb -f "$deb" Version)" >"$cache.new/package"

# The CMC's device tree: the tacoma tree with the FMC's two chips laid out
# for 64 MiB s25fl512s parts (QEMU -M tacoma-bmc,fmc-model=s25fl512s; the
# tacoma tree's own layout assumes 128 MiB chips whose 4 KiB erase sectors
# are too small for UBI). Each chip: u-boot, u-boot-env, kernel, rofs (the
# boot image region, left alone) and rwfs, the UBI partition holding that
# image's cmcd data area. The backup chip's partitions carry an "alt-" prefix.
dtb=$cache.new/cmc-tacoma.dtb
cp "$cache.new/aspeed-bmc-opp-tacoma.dtb" "$dtb"
fmc=/ahb/spi@1e620000
[ "$(fdtget "$dtb" $fmc/flash@0 label)" = bmc ] && [ "$(fdtget "$dtb" $fmc/flash@1 label)" = alt-bmc ] ||
	{ echo "fetch-arm-kernel: $dtb: FMC flash@0/flash@1 are not bmc/alt-bmc" >&2; exit 1; }
fdtput -r "$dtb" $fmc/flash@0/partitions
for chip in 0 1; do
	prefix=; [ $chip = 1 ] && prefix=alt-
	node=$fmc/flash@$chip/partitions
	fdtput -c "$dtb" $node
	fdtput -t s "$dtb" $node compatible fixed-partitions
	fdtput -t u "$dtb" $node '#address-cells' 1
	fdtput -t u "$dtb" $node '#size-cells' 1
	# fdtput -c puts a new node first, so the partitions are created last to first.
	# name   offset     size
	tac <<-'EOF' | while read -r name off size; do
		u-boot     0x0       0xc0000
		u-boot-env 0xc0000   0x40000
		kernel     0x100000  0x900000
		rofs       0xa00000  0x1e00000
		rwfs       0x2800000 0x1800000
	EOF
		fdtput -c "$dtb" "$node/$name@${off#0x}"
		fdtput -t x "$dtb" "$node/$name@${off#0x}" reg "$off" "$size"
		fdtput -t s "$dtb" "$node/$name@${off#0x}" label "$prefix$name"
	done
done
# The NIC: the tacoma tree runs the MAC at 1e670000 over NC-SI. Linux 6.1's
# NC-SI channel discovery can dereference a freed package when a response
# comes late (a kernel panic in ncsi_add_channel, seen here under TCG on a
# loaded machine), so the CMC's tree gives that MAC a 100 Mb/s full-duplex
# fixed link (RMII, the pins NC-SI uses) instead; QEMU's MAC passes frames
# either way.
mac=/ahb/ftgmac@1e670000
fdtget "$dtb" $mac use-ncsi >/dev/null 2>&1 || { echo "fetch-arm-kernel: $dtb: $mac is not the NC-SI MAC" >&2; exit 1; }
fdtput -d "$dtb" $mac use-ncsi
fdtput -t s "$dtb" $mac phy-mode rmii
fdtput -c "$dtb" $mac/fixed-link
fdtput -t u "$dtb" $mac/fixed-link speed 100
fdtput "$dtb" $mac/fixed-link full-duplex
dtc -I dtb -O dts "$dtb" 2>/dev/null | awk '/spi@1e620000 {/,/spi@1e630000 {/' >"$cache.new/cmc-tacoma-fmc.dts"

printf 'layout=%s\nfetched=%s\n' "$layout" "$(date -u +%FT%TZ)" >"$cache.new/complete"
rm -rf "$cache"
mv "$cache.new" "$cache"
echo "fetch-arm-kernel: $pkg ready in $cache" >&2
echo "$cache"
