#!/usr/bin/env bash
# run-local: installs what is missing, builds, and runs the local stack in the foreground:
# Redis, two fs-servers (the data-center pool) and fs-gateway over HTTPS, all on loopback, with
# a generated development certificate, development token signing key and fresh secrets.
# It queues a sample job with fs-client, delivers it, shows it in a server's ready area, and
# prints fs-client and curl commands with a token. Ctrl-C stops everything.
# Usage: scripts/run-local.sh
# Environment: FSG_REDIS_PORT (default 6390), FSG_SERVER_PORT (first server, default 8480; the
# second takes the next port), FSG_GATEWAY_PORT (default 8443), FSG_BUILD_ROOT
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

root=${FSG_BUILD_ROOT:-build}
cmake -S . -B "$root/local" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFSG_TESTS=OFF >/dev/null
cmake --build "$root/local" -j"$(nproc)"
bin=$(realpath "$root/local/bin")

redis_port=${FSG_REDIS_PORT:-6390}
server_port=${FSG_SERVER_PORT:-8480}
gateway_port=${FSG_GATEWAY_PORT:-8443}
issuer=https://idp.local.test
audience=fs-gateway
state=$(mktemp -d "${TMPDIR:-/tmp}/fsg-local-XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1"; chmod 600 "$1"; }
secret "$state/gateway.secret"
secret "$state/release.secret"
secret "$state/route.key"
# development TLS certificate for 127.0.0.1 and localhost (self-signed: curl gets --cacert)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-keyout "$state/dev-tls.key" -out "$state/dev-tls.crt" -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1
# development token signing key and the JWKS the gateway trusts
"$bin/fs-devtoken" keygen "$state" >/dev/null

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$state" --save "" --appendonly no \
	--protected-mode yes --daemonize no --loglevel warning &
pids+=($!)

for n in 1 2; do
	port=$((server_port + n - 1))
	mkdir -p "$state/server-$n/spool"
	FSG_SERVER_SPOOL_DIR="$state/server-$n/spool" \
	FSG_SERVER_PORT="$port" \
	FSG_SERVER_SERVER_ID="local-$n" \
	FSG_SERVER_URL="http://127.0.0.1:$port" \
	FSG_SERVER_GATEWAY_SECRET_FILE="$state/gateway.secret" \
	FSG_SERVER_RELEASE_SECRET_FILE="$state/release.secret" \
	FSG_SERVER_REDIS_PORT="$redis_port" \
		"$bin/fs-server" &
	pids+=($!)
done

FSG_GATEWAY_LISTEN_ADDRESS=127.0.0.1 \
FSG_GATEWAY_PORT="$gateway_port" \
FSG_GATEWAY_TLS_CERT_FILE="$state/dev-tls.crt" \
FSG_GATEWAY_TLS_KEY_FILE="$state/dev-tls.key" \
FSG_GATEWAY_JWKS_FILE="$state/dev-jwks.json" \
FSG_GATEWAY_TOKEN_ISSUER="$issuer" \
FSG_GATEWAY_TOKEN_AUDIENCE="$audience" \
FSG_GATEWAY_ROUTE_KEY_FILE="$state/route.key" \
FSG_GATEWAY_SERVER_SECRET_FILE="$state/gateway.secret" \
FSG_GATEWAY_REDIS_PORT="$redis_port" \
	"$bin/fs-gateway" &
pids+=($!)

# wait until the gateway has read the pool (bounded: 10 s)
for _ in $(seq 1 100); do
	if curl -fsS --cacert "$state/dev-tls.crt" "https://127.0.0.1:$gateway_port/readyz" \
		>/dev/null 2>&1; then
		break
	fi
	sleep 0.1
done

token=$("$bin/fs-devtoken" mint --key="$state/dev-signing-key.pem" --kid=dev-1 \
	--issuer="$issuer" --audience="$audience" --subject=alice --ttl=43200)

# fs-client for user alice: the Default location is the local gateway.
client=$state/client
mkdir -p "$client"
printf '%s\n' "$token" >"$client/token"
chmod 600 "$client/token"
cat >"$client/locations.config" <<JSON
{"current": "Default",
 "locations": [{"id": "Default", "name": "Local gateway",
                "addresses": ["https://127.0.0.1:$gateway_port"]}]}
JSON
cat >"$client/client.conf" <<CONF
queue_dir = $client/queue
locations_file = $client/locations.config
token_file = $client/token
ca_file = $state/dev-tls.crt
CONF
export FSG_CLIENT_CONFIG=$client/client.conf
# A sample job: a one-page PostScript document.
cat >"$client/sample.ps" <<'PS'
%!PS-Adobe-3.0
%%Title: fs-client sample
%%Pages: 1
%%EndComments
/Helvetica findfont 24 scalefont setfont
72 720 moveto (Printed through fs-gateway) show
showpage
%%EOF
PS

echo
echo "== sample job: fs-client submit, then deliver =="
echo "\$ fs-client submit --copies=2 sample.ps"
job=$("$bin/fs-client" submit --copies=2 "$client/sample.ps")
echo "$job"
echo "\$ fs-client status"
"$bin/fs-client" status
echo "\$ fs-client deliver"
"$bin/fs-client" deliver
echo "\$ fs-client status"
"$bin/fs-client" status
echo "In the data-center servers' ready area (committed, waiting for release):"
for f in "$state"/server-*/spool/ready/*/job.json; do
	[ -e "$f" ] || continue
	echo "  $f"
	echo "    $(tr -d '\n' <"$f" | cut -c1-300)"
done

cat <<MSG

fs-gateway local stack (state in $state, removed on exit)
  redis-server  127.0.0.1:$redis_port
  fs-server     http://127.0.0.1:$server_port (local-1), http://127.0.0.1:$((server_port + 1)) (local-2)
  fs-gateway    https://127.0.0.1:$gateway_port (development certificate $state/dev-tls.crt)
  release secret: $state/release.secret

Print as user "alice" with fs-client (token valid 12 h):
  export FSG_CLIENT_CONFIG=$client/client.conf
  $bin/fs-client submit FILE...     # queue documents
  $bin/fs-client run                # deliver now and whenever the gateway is reachable
  $bin/fs-client status

Or upload one file with curl:
  curl -sS --cacert $state/dev-tls.crt -T README.md \\
    -H "Authorization: Bearer $token" \\
    https://127.0.0.1:$gateway_port/v1/jobs/\$(cat /proc/sys/kernel/random/uuid)

Running in the foreground; Ctrl-C stops it. Log lines follow.
MSG
wait -n "${pids[@]}"
