#!/usr/bin/env bash
# server-spool: how fast fs-server stores a large upload, and how much memory it uses meanwhile.
# Builds fs-server (release flags), starts Redis and fs-server on free loopback ports in a
# temporary directory, uploads SIZE_MIB of data in one PATCH with curl, and prints throughput,
# fs-server's RSS before/peak/after, and a reference: the same bytes written by dd to the same
# filesystem with one fdatasync at the end. Figures vary with the machine; compare the ratio.
# Usage: bench/server-spool.sh [SIZE_MIB] [RUNS]     (defaults 1024 and 3)
set -euo pipefail
cd "$(dirname "$0")/.."

size_mib=${1:-1024}
runs=${2:-3}
scripts/deps.sh >/dev/null
for tool in curl bc; do
	command -v "$tool" >/dev/null || apt-get install -y -q "$tool" >/dev/null
done
build=${FSG_BUILD_ROOT:-build}/bench
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DFSG_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/fsg-bench-XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }

redis_port=$(free_port)
server_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
	--daemonize no --loglevel warning >/dev/null &
pids+=($!)
mkdir -p "$work/spool"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/gw.secret"
secret=$(cat "$work/gw.secret")
FSG_SERVER_SPOOL_DIR="$work/spool" FSG_SERVER_PORT="$server_port" FSG_SERVER_SERVER_ID=bench \
FSG_SERVER_URL="http://127.0.0.1:$server_port" FSG_SERVER_GATEWAY_SECRET_FILE="$work/gw.secret" \
FSG_SERVER_REDIS_PORT="$redis_port" FSG_SERVER_MIN_FREE=0 FSG_SERVER_MAX_JOB_SIZE=64G \
FSG_SERVER_LOG_LEVEL=warn "$build/bin/fs-server" 2>"$work/server.log" &
server=$!
pids+=($server)
for _ in $(seq 100); do
	curl -s -o /dev/null "http://127.0.0.1:$server_port/healthz" && break
	sleep 0.1
done

echo "generating $size_mib MiB of test data"
head -c $((size_mib * 1048576)) /dev/urandom >"$work/job.bin"
digest=$(openssl dgst -sha256 -binary "$work/job.bin" | base64 -w0)
length=$((size_mib * 1048576))
owner=$(printf 'bench-user' | base64 -w0 | tr '+/' '-_' | tr -d '=')

results=()
for run in $(seq "$runs"); do
	# reference: the same bytes to the same filesystem, one fdatasync at the end
	t0=$(now)
	dd if="$work/job.bin" of="$work/ref.bin" bs=1M conv=fdatasync status=none
	t1=$(now)
	rm -f "$work/ref.bin"
	ref=$(echo "$size_mib / ($t1 - $t0)" | bc -l)

	job_id=$(cat /proc/sys/kernel/random/uuid)
	meta="job-id $(printf '%s' "$job_id" | base64 -w0)"
	loc=$(curl -s -D - -o /dev/null -X POST "http://127.0.0.1:$server_port/v1/jobs" \
		-H "Authorization: Bearer $secret" -H "Tus-Resumable: 1.0.0" \
		-H "Upload-Length: $length" -H "Upload-Metadata: $meta" -H "Fs-Owner: $owner" \
		-H "Fs-Sequence: $run" -H "Repr-Digest: sha-256=:$digest:" |
		awk -F': ' 'tolower($1)=="location" {print $2}' | tr -d '\r')
	before=$(rss_kib "$server")
	peak=$before
	t0=$(now)
	curl -s -o /dev/null -w '%{http_code}' -X PATCH -T "$work/job.bin" \
		"http://127.0.0.1:$server_port$loc" -H "Authorization: Bearer $secret" \
		-H "Tus-Resumable: 1.0.0" -H "Upload-Offset: 0" -H "Fs-Owner: $owner" \
		-H "Content-Type: application/offset+octet-stream" -H "Expect:" >"$work/status" &
	upload=$!
	while kill -0 "$upload" 2>/dev/null; do
		r=$(rss_kib "$server")
		[ "$r" -gt "$peak" ] && peak=$r
		sleep 0.05
	done
	wait "$upload"
	t1=$(now)
	status=$(cat "$work/status")
	[ "$status" = 204 ] || { echo "upload answered $status"; cat "$work/server.log"; exit 1; }
	after=$(rss_kib "$server")
	rate=$(echo "$size_mib / ($t1 - $t0)" | bc -l)
	results+=("$(printf '%d %.0f %.0f %.2f %d %d %d' "$run" "$rate" "$ref" \
		"$(echo "$rate / $ref" | bc -l)" "$before" "$peak" "$after")")
done

echo
echo "fs-server: one PATCH of $size_mib MiB (with Repr-Digest) to the spool, committed (fsync)"
printf '%-4s %14s %16s %8s %12s %12s %12s\n' run "fs-server MiB/s" "dd+fdatasync MiB/s" ratio \
	"RSS before" "RSS peak" "RSS after"
for r in "${results[@]}"; do
	set -- $r
	printf '%-4s %14s %16s %8s %9s KiB %9s KiB %9s KiB\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7"
done
echo "peak RSS over the whole process life (VmHWM): $(hwm_kib "$server") KiB"
