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
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/staticcheck" ]; then
	echo "install-deps: installing staticcheck"
	go install honnef.co/go/tools/cmd/staticcheck@v0.6.1 # = 2025.1.1; the module proxy does not resolve that tag name
fi
