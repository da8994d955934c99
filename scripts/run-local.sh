#!/usr/bin/env bash
# run-local: installs what is missing, builds, and runs the local stack in the foreground:
# Redis and one fs-server (the data-center server) on loopback, with fresh secrets.
# fs-gateway and fs-client do not exist yet; the script says so. Ctrl-C stops everything.
# Usage: scripts/run-local.sh
# Environment: FSG_REDIS_PORT (default 6390), FSG_SERVER_PORT (default 8480), FSG_BUILD_ROOT
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

root=${FSG_BUILD_ROOT:-build}
cmake -S . -B "$root/local" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFSG_TESTS=OFF >/dev/null
cmake --build "$root/local" -j"$(nproc)"
bin=$(realpath "$root/local/bin")

redis_port=${FSG_REDIS_PORT:-6390}
server_port=${FSG_SERVER_PORT:-8480}
state=$(mktemp -d "${TMPDIR:-/tmp}/fsg-local-XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

mkdir -p "$state/spool"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$state/gateway.secret"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$state/release.secret"
chmod 600 "$state"/*.secret

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$state" --save "" --appendonly no \
	--protected-mode yes --daemonize no --loglevel warning &
pids+=($!)

missing=()
for prog in fs-gateway fs-client; do
	[ -x "$bin/$prog" ] || missing+=("$prog")
done
cat <<MSG
fs-gateway local stack (state in $state, removed on exit)
  redis-server  127.0.0.1:$redis_port
  fs-server     http://127.0.0.1:$server_port  (server id local-1)
                gateway secret: $state/gateway.secret
                release secret: $state/release.secret
  not built yet: ${missing[*]:-none}
Running in the foreground; Ctrl-C stops it. Log lines follow.
MSG
FSG_SERVER_SPOOL_DIR="$state/spool" \
FSG_SERVER_PORT="$server_port" \
FSG_SERVER_SERVER_ID=local-1 \
FSG_SERVER_URL="http://127.0.0.1:$server_port" \
FSG_SERVER_GATEWAY_SECRET_FILE="$state/gateway.secret" \
FSG_SERVER_RELEASE_SECRET_FILE="$state/release.secret" \
FSG_SERVER_REDIS_PORT="$redis_port" \
	"$bin/fs-server" &
pids+=($!)
wait -n "${pids[@]}"
