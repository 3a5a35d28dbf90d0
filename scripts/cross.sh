#!/usr/bin/env bash
# make cross: static cmcd binaries for the CMC SoCs, with their sizes.
#   linux/arm GOARM=6  AST2500-class (ARM1176)
#   linux/arm GOARM=7  AST2600-class (Cortex-A7)
#   linux/arm64
# Prints each stripped size and its xz -9 size; fails when the armv7 binary
# is over its budget (CMCD_ARMV7_BUDGET bytes, default 14 MB = 14,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
budget=${CMCD_ARMV7_BUDGET:-14000000}
out=bin/cross
mkdir -p "$out"
export CGO_ENABLED=0
# name GOARCH GOARM qemu-user command line for the smoke run
targets=("armv6 arm 6 qemu-arm-static -cpu arm1176" "armv7 arm 7 qemu-arm-static -cpu cortex-a7" "arm64 arm64 - qemu-aarch64-static")
printf '%-8s %12s %12s  %s\n' target bytes xz-9 file
armv7=0
for t in "${targets[@]}"; do
	read -r name arch arm emu <<<"$t"
	f=$out/cmcd-linux-$name
	if [ "$arm" = - ]; then
		GOOS=linux GOARCH=$arch $GO build -trimpath -ldflags "-s -w -X cmcd/internal/version.Version=$VERSION" -o "$f" ./cmd/cmcd
	else
		GOOS=linux GOARCH=$arch GOARM=$arm $GO build -trimpath -ldflags "-s -w -X cmcd/internal/version.Version=$VERSION" -o "$f" ./cmd/cmcd
	fi
	size=$(stat -c %s "$f")
	xzsize=$(xz -9 -T1 -c "$f" | wc -c)
	printf '%-8s %12d %12d  %s\n' "$name" "$size" "$xzsize" "$f"
	[ "$name" = armv7 ] && armv7=$size
	# Smoke run on the target CPU (an ARMv7 build on the ARM1176 dies with
	# SIGILL: this catches a wrong GOARM for AST2500-class SoCs).
	if command -v "${emu%% *}" >/dev/null; then
		v=$($emu "$f" version) || { echo "cross: $f does not run under $emu" >&2; exit 1; }
		echo "         runs under $emu: $v"
	fi
done
if [ "$armv7" -gt "$budget" ]; then
	echo "cross: armv7 cmcd is $armv7 bytes, over the budget of $budget bytes." >&2
	echo "cross: largest symbols: go tool nm -size -sort size $out/cmcd-linux-armv7 needs an unstripped build;" >&2
	echo "       modules linked in: go version -m $out/cmcd-linux-armv7" >&2
	exit 1
fi
echo "cross: armv7 within budget ($armv7 <= $budget bytes)"
