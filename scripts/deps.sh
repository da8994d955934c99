#!/usr/bin/env bash
# deps: installs the Debian 12 packages fs-gateway builds, tests and runs with, if any is missing.
# Usage: scripts/deps.sh   (as root, or with sudo available)
set -euo pipefail

FSG_PACKAGES=(
	build-essential cmake pkg-config clang-14 libclang-rt-14-dev
	libmicrohttpd-dev libgnutls28-dev libcurl4-openssl-dev libhiredis-dev libssl-dev openssl
	libjansson-dev libcjose-dev libcriterion-dev libzstd-dev
	redis-server redis-sentinel
	python3 python3-jsonschema python3-yaml
)

missing=()
for p in "${FSG_PACKAGES[@]}"; do
	if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all ${#FSG_PACKAGES[@]} packages present"
	exit 0
fi

echo "deps: installing ${missing[*]}"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		as_root=(sudo)
	else
		echo "deps: missing packages and not root (no sudo): ${missing[*]}" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
