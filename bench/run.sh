#!/usr/bin/env bash
# bench/run.sh: fs-gateway against nginx (proxy_request_buffering off), side by side, with the
# same upstream (fs-server with bench_discard: reads and hashes every byte, stores none) and the
# same clients, alternating A/B runs. Prints a table and writes it with a chart to
# docs/performance.md (the raw figures beside it, in performance-results.txt). Not a test: it
# measures and reports.
# Usage: bench/run.sh
# Environment: FSG_BENCH_RUNS (3), FSG_BENCH_NS ("1000 4000 8000" slow uploads),
#   FSG_BENCH_BIG_GIB (10: the job of the memory-vs-size run), FSG_BENCH_STREAM_GIB (1),
#   FSG_BENCH_OUT (docs/performance.md), FSG_BENCH_PARTS ("cpu slow big": which parts run;
#   a subset is for profiling, its table lacks the other rows), FSG_BUILD_ROOT (build),
#   FSG_BENCH_KEEP (set: keep the state directory with every log, for profiling),
#   FSG_BENCH_PERF (a directory: perf record -g of the relay during each CPU run, stored there)
# Traffic stays on 127.0.0.1; every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)

runs=${FSG_BENCH_RUNS:-3}
ns=${FSG_BENCH_NS:-"1000 4000 8000"}
big_gib=${FSG_BENCH_BIG_GIB:-10}
stream_gib=${FSG_BENCH_STREAM_GIB:-1}
out=${FSG_BENCH_OUT:-docs/performance.md}
parts=${FSG_BENCH_PARTS:-"cpu slow big"}
part() { case " $parts " in *" $1 "*) return 0 ;; esac; return 1; }
root=${FSG_BUILD_ROOT:-build}

# --- what it needs ------------------------------------------------------------------------------
scripts/deps.sh
need=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v gnuplot >/dev/null 2>&1 || need+=(gnuplot-nox)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
	echo "bench: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${need[@]}"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

# --- release build ------------------------------------------------------------------------------
bdir=$root/bench
cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DFSG_TESTS=OFF >/dev/null
cmake --build "$bdir" -j"$(nproc)" >/dev/null
bin=$(realpath "$bdir/bin")
gcc -std=c11 -O2 -Wall -Wextra -Werror -o "$bin/fs-loadgen" bench/loadgen.c \
	-lssl -lcrypto

state=$(mktemp -d "${TMPDIR:-/tmp}/fsg-bench-XXXXXX")
results=$state/results.txt
: >"$results"
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	stop_relay gateway 2>/dev/null || true
	stop_relay nginx 2>/dev/null || true
	stop_sink 2>/dev/null || true
	wait 2>/dev/null || true
	if [ -n "${FSG_BENCH_KEEP:-}" ]; then
		echo "== kept: $state (logs of both relays and the sink) =="
	else
		rm -rf "$state"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
sink_port=$(free_port)
gw_port=$(free_port)
nginx_port=$(free_port)
clk=$(getconf CLK_TCK)

# --- keys, certificate, token -------------------------------------------------------------------
secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1"; chmod 600 "$1"; }
secret "$state/gateway.secret"
secret "$state/route.key"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-keyout "$state/tls.key" -out "$state/tls.crt" -subj /CN=127.0.0.1 \
	-addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1
"$bin/fs-devtoken" keygen "$state" >/dev/null
issuer=https://idp.bench.test
audience=fs-gateway-bench
"$bin/fs-devtoken" mint --key="$state/dev-signing-key.pem" --kid=dev-1 --issuer="$issuer" \
	--audience="$audience" --subject=bench --ttl=86400 >"$state/token"
token=$(cat "$state/token")
# the owner nginx presents to the sink: what fs-gateway sends for subject "bench"
fs_owner=$(printf bench | base64 | tr '+/' '-_' | tr -d '=')

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$state" --save "" --appendonly no \
	--daemonize no --loglevel warning >"$state/redis.log" 2>&1 &
pids+=($!)

# --- process figures ----------------------------------------------------------------------------
# CPU seconds (user + system) of the given pids, summed.
cpu_of() {
	local t=0 p v
	for p in "$@"; do
		v=$(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')
		t=$((t + v))
	done
	echo "$t"
}
# RSS in KiB of the given pids, summed.
rss_of() {
	local t=0 p v
	for p in "$@"; do
		v=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status")
		t=$((t + v))
	done
	echo "$t"
}
wait_url() { # url seconds [any]: a 2xx answer (with "any": any HTTP answer)
	local i f=-f
	[ "${3:-}" = any ] && f=
	for i in $(seq 1 $(($2 * 10))); do
		if curl $f -sS --cacert "$state/tls.crt" -o /dev/null "$1" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench: $1 did not answer in $2 s" >&2
	return 1
}
record() { echo "$*" >>"$results"; }

# --- the sink: fs-server keeping nothing --------------------------------------------------------
sink_pid=
start_sink() { # plain|tls
	local scheme=http extra=()
	mkdir -p "$state/spool"
	if [ "$1" = tls ]; then
		scheme=https
		extra=(FSG_SERVER_TLS_CERT_FILE="$state/tls.crt" FSG_SERVER_TLS_KEY_FILE="$state/tls.key")
	fi
	env FSG_SERVER_SPOOL_DIR="$state/spool" FSG_SERVER_PORT="$sink_port" \
		FSG_SERVER_SERVER_ID="sink-$1" FSG_SERVER_URL="$scheme://127.0.0.1:$sink_port" \
		FSG_SERVER_GATEWAY_SECRET_FILE="$state/gateway.secret" \
		FSG_SERVER_REDIS_PORT="$redis_port" FSG_SERVER_BENCH_DISCARD=true \
		FSG_SERVER_CONNECTION_LIMIT=30000 FSG_SERVER_CAPACITY=1000000 \
		FSG_SERVER_MAX_JOB_SIZE=64G FSG_SERVER_IDLE_TIMEOUT=300s FSG_SERVER_THREADS=2 \
		FSG_SERVER_LOG_LEVEL=warn "${extra[@]}" \
		"$bin/fs-server" >>"$state/sink.log" 2>&1 &
	sink_pid=$!
	sink_scheme=$scheme
	wait_url "$scheme://127.0.0.1:$sink_port/healthz" 10
}
stop_sink() {
	if [ -n "$sink_pid" ]; then
		kill "$sink_pid" 2>/dev/null || true
		wait "$sink_pid" 2>/dev/null || true
		sink_pid=
	fi
	rm -rf "$state/spool"
}

# --- the relays ---------------------------------------------------------------------------------
gw_pid=
ng_pid=
start_relay() { # gateway|nginx
	if [ "$1" = gateway ]; then
		env FSG_GATEWAY_LISTEN_ADDRESS=127.0.0.1 FSG_GATEWAY_PORT="$gw_port" \
			FSG_GATEWAY_TLS_CERT_FILE="$state/tls.crt" FSG_GATEWAY_TLS_KEY_FILE="$state/tls.key" \
			FSG_GATEWAY_TLS_PRIORITIES="SECURE128:-VERS-ALL:+VERS-TLS1.3:+AEAD" \
			FSG_GATEWAY_JWKS_FILE="$state/dev-jwks.json" FSG_GATEWAY_TOKEN_ISSUER="$issuer" \
			FSG_GATEWAY_TOKEN_AUDIENCE="$audience" FSG_GATEWAY_ROUTE_KEY_FILE="$state/route.key" \
			FSG_GATEWAY_SERVER_SECRET_FILE="$state/gateway.secret" \
			FSG_GATEWAY_SERVER_CA_FILE="$state/tls.crt" FSG_GATEWAY_REDIS_PORT="$redis_port" \
			FSG_GATEWAY_CONNECTION_LIMIT=20000 FSG_GATEWAY_PER_ADDRESS_CONNECTIONS=0 \
			FSG_GATEWAY_UPLOADS_PER_USER=0 FSG_GATEWAY_MIN_UPLOAD_RATE=256 \
			FSG_GATEWAY_MAX_JOB_SIZE=64G FSG_GATEWAY_IDLE_TIMEOUT=120s \
			FSG_GATEWAY_REQUEST_DEADLINE=2h FSG_GATEWAY_LOG_LEVEL=warn \
			"$bin/fs-gateway" >>"$state/gateway.log" 2>&1 &
		gw_pid=$!
		wait_url "https://127.0.0.1:$gw_port/healthz" 10
		# ready: Redis read and the sink in the pool (bounded)
		wait_url "https://127.0.0.1:$gw_port/readyz" 10
		sleep 1
	else
		local upstream_addr="127.0.0.1:$sink_port"
		mkdir -p "$state/nginx-body"
		sed -e "s|@STATE@|$state|g" -e "s|@NGINX_PORT@|$nginx_port|g" \
			-e "s|@UPSTREAM_ADDR@|$upstream_addr|g" -e "s|@UPSTREAM_SCHEME@|$sink_scheme|g" \
			-e "s|@SERVER_SECRET@|$(cat "$state/gateway.secret")|g" \
			-e "s|@FS_OWNER@|$fs_owner|g" bench/nginx.conf.in >"$state/nginx.conf"
		"$nginx_bin" -c "$state/nginx.conf" -e "$state/nginx-error.log" >>"$state/nginx.log" 2>&1 &
		ng_pid=$!
		wait_url "https://127.0.0.1:$nginx_port/v1/jobs/" 10 any
	fi
}
stop_relay() {
	if [ "$1" = gateway ] && [ -n "$gw_pid" ]; then
		kill "$gw_pid" 2>/dev/null || true
		wait "$gw_pid" 2>/dev/null || true
		gw_pid=
	elif [ "$1" = nginx ] && [ -n "$ng_pid" ]; then
		kill -TERM "$ng_pid" 2>/dev/null || true
		wait "$ng_pid" 2>/dev/null || true
		ng_pid=
	fi
}
relay_pids() { # gateway|nginx: the processes whose CPU and memory count
	if [ "$1" = gateway ]; then
		echo "$gw_pid"
	else
		echo "$ng_pid $(pgrep -P "$ng_pid" | tr '\n' ' ')"
	fi
}
relay_port() { if [ "$1" = gateway ]; then echo "$gw_port"; else echo "$nginx_port"; fi; }
uuid() { cat /proc/sys/kernel/random/uuid; }

# One PUT of a sparse file of size bytes; prints the HTTP status.
put_file() { # relay file
	curl -sS --tlsv1.3 --cacert "$state/tls.crt" -T "$2" -H "Expect:" \
		-H "Authorization: Bearer $token" -o /dev/null -w '%{http_code}' \
		"https://127.0.0.1:$(relay_port "$1")/v1/jobs/$(uuid)" || true
}

# --- 1. CPU seconds per GiB ---------------------------------------------------------------------
bench_cpu() { # relay upstream streams run
	local relay=$1 up=$2 streams=$3 run=$4 pp c0 c1 i codes=() bad=0 curls=()
	truncate -s "${stream_gib}G" "$state/stream.bin"
	read -r -a pp <<<"$(relay_pids "$relay")"
	c0=$(cpu_of "${pp[@]}")
	local prof= pstat=
	if [ -n "${FSG_BENCH_PERF:-}" ]; then
		mkdir -p "$FSG_BENCH_PERF"
		perf record -q -F 999 -g -p "$(echo "${pp[@]}" | tr ' ' ',')" \
			-o "$FSG_BENCH_PERF/$relay-$up-$streams-$run.data" >/dev/null 2>&1 &
		prof=$!
		perf stat -e raw_syscalls:sys_enter,context-switches,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_readv,syscalls:sys_enter_futex,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_poll -p \
			"$(echo "${pp[@]}" | tr ' ' ',')" \
			-o "$FSG_BENCH_PERF/$relay-$up-$streams-$run.stat" >/dev/null 2>&1 &
		pstat=$!
	fi
	for i in $(seq 1 "$streams"); do
		put_file "$relay" "$state/stream.bin" >"$state/code.$i" &
		curls+=($!)
	done
	for i in "${curls[@]}"; do wait "$i" || true; done
	if [ -n "$prof" ]; then
		kill -INT "$prof" "$pstat" 2>/dev/null || true
		wait "$prof" "$pstat" 2>/dev/null || true
	fi
	for i in $(seq 1 "$streams"); do
		codes+=("$(cat "$state/code.$i")")
		[ "$(cat "$state/code.$i")" = 201 ] || bad=$((bad + 1))
	done
	read -r -a pp <<<"$(relay_pids "$relay")"
	c1=$(cpu_of "${pp[@]}")
	local per=$(awk -v d=$((c1 - c0)) -v clk="$clk" -v g=$((streams * stream_gib)) \
		'BEGIN {printf "%.3f", d / clk / g}')
	record "cpu_${up}_${streams} $relay $run $per"
	record "cpu_failures_${up}_${streams} $relay $run $bad"
	echo "  cpu ${up} upstream, $streams stream(s), $relay: $per CPU-s/GiB (codes ${codes[*]})"
}

# --- 2-4. slow uploads: memory, failures, small-job latency under load --------------------------
bench_slow() { # relay n run
	local relay=$1 n=$2 run=$3 pp r0 r1 lg ready=0 i
	read -r -a pp <<<"$(relay_pids "$relay")"
	r0=$(rss_of "${pp[@]}")
	"$bin/fs-loadgen" slow --port "$(relay_port "$relay")" --ca "$state/tls.crt" \
		--token-file "$state/token" --n "$n" --rate 1024 --size 16777216 --ramp 1000 \
		--hold 20 >"$state/slow.json" 2>"$state/slow.err" &
	lg=$!
	for i in $(seq 1 900); do
		if grep -q '"ready":true' "$state/slow.json"; then
			ready=1
			break
		fi
		kill -0 "$lg" 2>/dev/null || break
		sleep 0.2
	done
	sleep 2
	read -r -a pp <<<"$(relay_pids "$relay")"
	r1=$(rss_of "${pp[@]}")
	"$bin/fs-loadgen" latency --port "$(relay_port "$relay")" --ca "$state/tls.crt" \
		--token-file "$state/token" --jobs 100 --size 102400 >"$state/lat.json" || true
	wait "$lg" || true
	local fails lat50 lat99 per
	fails=$(/usr/bin/python3 -c '
import json, sys
last = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
d = [x for x in last if x.get("done")]
print(d[-1]["failed"] if d else -1)' "$state/slow.json")
	[ "$ready" = 1 ] || fails=$((fails < 0 ? n : fails))
	lat50=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["p50_ms"])' "$state/lat.json" 2>/dev/null || echo nan)
	lat99=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["p99_ms"])' "$state/lat.json" 2>/dev/null || echo nan)
	per=$(awk -v a="$r0" -v b="$r1" -v n="$n" 'BEGIN {printf "%.1f", (b - a) / n}')
	record "mem_$n $relay $run $per"
	record "fail_$n $relay $run $fails"
	record "lat50_$n $relay $run $lat50"
	record "lat99_$n $relay $run $lat99"
	echo "  $n slow uploads, $relay: $per KiB each, $fails failures, 100 KiB job p50 $lat50 ms p99 $lat99 ms"
}
bench_latency_alone() { # relay run
	"$bin/fs-loadgen" latency --port "$(relay_port "$1")" --ca "$state/tls.crt" \
		--token-file "$state/token" --jobs 200 --size 102400 >"$state/lat.json" || true
	local l50 l99
	l50=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["p50_ms"])' "$state/lat.json" 2>/dev/null || echo nan)
	l99=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["p99_ms"])' "$state/lat.json" 2>/dev/null || echo nan)
	record "lat50_0 $1 $2 $l50"
	record "lat99_0 $1 $2 $l99"
	echo "  100 KiB job alone, $1: p50 $l50 ms, p99 $l99 ms"
}

# --- 5. memory vs job size ----------------------------------------------------------------------
bench_big() { # relay run
	local relay=$1 run=$2 pp r0 peak=0 r code
	truncate -s "${big_gib}G" "$state/big.bin"
	read -r -a pp <<<"$(relay_pids "$relay")"
	r0=$(rss_of "${pp[@]}")
	put_file "$relay" "$state/big.bin" >"$state/code.big" &
	local up=$!
	while kill -0 "$up" 2>/dev/null; do
		r=$(rss_of "${pp[@]}" 2>/dev/null || echo 0)
		[ "$r" -gt "$peak" ] && peak=$r
		sleep 0.5
	done
	wait "$up" || true
	code=$(cat "$state/code.big")
	record "big_growth $relay $run $((peak - r0))"
	record "big_failures $relay $run $([ "$code" = 201 ] && echo 0 || echo 1)"
	echo "  ${big_gib} GiB job, $relay: RSS +$((peak - r0)) KiB during the upload (status $code)"
}

order() { # run: A/B alternation
	if [ $(($1 % 2)) -eq 1 ]; then echo "gateway nginx"; else echo "nginx gateway"; fi
}

echo "== bench: state in $state; $runs runs; slow uploads: $ns; big job ${big_gib} GiB =="
for up in plain tls; do
	part cpu || break
	start_sink "$up"
	for run in $(seq 1 "$runs"); do
		for relay in $(order "$run"); do
			start_relay "$relay"
			bench_cpu "$relay" "$up" 1 "$run"
			bench_cpu "$relay" "$up" 4 "$run"
			stop_relay "$relay"
		done
	done
	stop_sink
done

start_sink plain
for run in $(seq 1 "$runs"); do
	for relay in $(order "$run"); do
		if part slow; then
			start_relay "$relay"
			bench_latency_alone "$relay" "$run"
			stop_relay "$relay"
			for n in $ns; do
				# a fresh process for each N: RSS growth must not hide in a previous
				# run's heap
				start_relay "$relay"
				bench_slow "$relay" "$n" "$run"
				stop_relay "$relay"
			done
		fi
		if part big; then
			start_relay "$relay"
			bench_big "$relay" "$run"
			stop_relay "$relay"
		fi
	done
done
stop_sink

cp "$results" "${out%.md}-results.txt"
/usr/bin/python3 bench/report.py "$results" "$out" "$ns" "$big_gib" "$stream_gib" "$runs"
echo "== written: $out =="
