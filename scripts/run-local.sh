#!/usr/bin/env bash
# run-local: installs what is missing, builds, and runs the local stack in the foreground.
# Stage: the protocol library and Redis exist; fs-server, fs-gateway and fs-client do not yet,
# so this runs Redis (the pool's store) on loopback and says so. Ctrl-C stops everything.
# Usage: scripts/run-local.sh     Environment: FSG_REDIS_PORT (default 6390), FSG_BUILD_ROOT
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

root=${FSG_BUILD_ROOT:-build}
cmake -S . -B "$root/local" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFSG_TESTS=OFF >/dev/null
cmake --build "$root/local" -j"$(nproc)"

port=${FSG_REDIS_PORT:-6390}
state=$(mktemp -d "${TMPDIR:-/tmp}/fsg-local-XXXXXX")
trap 'rm -rf "$state"' EXIT

missing=()
for prog in fs-server fs-gateway fs-client; do
	[ -x "$root/local/bin/$prog" ] || missing+=("$prog")
done
cat <<MSG
fs-gateway local stack
  redis-server   127.0.0.1:$port (no persistence, state in $state)
  not built yet: ${missing[*]:-none}
  The protocol is specified in proto/PROTOCOL.md; its library is $root/local/proto/libfsproto.a.
Running in the foreground; Ctrl-C stops it.
MSG
redis-server --port "$port" --bind 127.0.0.1 --dir "$state" --save "" --appendonly no \
	--protected-mode yes --daemonize no --loglevel notice
