#!/usr/bin/env bash
# Installs the Debian packages listed in scripts/apt-packages.txt that are
# missing, and the Go tools the checks use. Idempotent: a second run installs
# nothing. Never changes apt sources or architectures.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
missing=()
while read -r pkg; do
	pkg=${pkg%%#*}; pkg=$(echo "$pkg" | xargs)
	[ -n "$pkg" ] || continue
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done <"$here/apt-packages.txt"
if [ ${#missing[@]} -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
	# The tests run their own chronyd with -x on loopback; the package's
	# system service must never start, or it would discipline this
	# machine's clock. Mask it before installing (where systemd runs;
	# without an init system invoke-rc.d already refuses to start it).
	if printf '%s\n' "${missing[@]}" | grep -qx chrony && [ -d /run/systemd/system ]; then
		$SUDO systemctl mask chrony.service chronyd.service >/dev/null 2>&1 || true
	fi
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/staticcheck" ]; then
	echo "install-deps: installing staticcheck"
	go install honnef.co/go/tools/cmd/staticcheck@v0.6.1 # = 2025.1.1; the module proxy does not resolve that tag name
fi
