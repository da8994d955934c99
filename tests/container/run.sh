#!/usr/bin/env bash
# container: builds the docker/Dockerfile images with podman on a Debian 12 base made here with
# debootstrap (no image registry needed), runs fs-server and fs-gateway in containers (host
# network, read-only root, all capabilities dropped, no new privileges, non-root user) against a
# redis-server on the host, relays a job with fs-client through the gateway over TLS, checks the
# committed bytes in the server's spool volume and the images' HEALTHCHECK.
# Usage: tests/container/run.sh BIN_DIR CACHE_DIR
#   BIN_DIR    a host build's bin/ (fs-devtoken, fs-client, fs-healthcheck)
#   CACHE_DIR  keeps the debootstrapped base between runs (delete it to start from nothing)
# Exit status: 0 passed, 1 failed, 77 skipped (the reason is printed: only where podman cannot
# run: not root, or the kernel refuses its containers).
set -euo pipefail

SKIP=77
UID_RUN=10001 # the image's user; the mounted files must be readable by it
BASE_VERSION=2 # bump when the base recipe below changes
BASE_TAG=localhost/fsg-test-base:bookworm-$BASE_VERSION
IMAGE_SERVER=localhost/fs-server:test
IMAGE_GATEWAY=localhost/fs-gateway:test

if [ $# -ne 2 ]; then
	echo "usage: $0 BIN_DIR CACHE_DIR" >&2
	exit 2
fi
bin=$(realpath "$1")
cache=$(realpath -m "$2")
cd "$(dirname "$0")/../.."
for b in fs-devtoken fs-client fs-healthcheck; do
	if [ ! -x "$bin/$b" ]; then
		echo "container: $bin/$b missing (build the project first)" >&2
		exit 1
	fi
done

say() { echo "container: $*"; }
skip() {
	say "SKIPPED: $*"
	exit $SKIP
}
die() {
	say "FAILED: $*" >&2
	exit 1
}
t0=$(date +%s)
elapsed() { echo "$(($(date +%s) - t0)) s"; }

if [ "$(id -u)" -ne 0 ]; then
	skip "needs root (rootful podman and debootstrap); run the suite as root, as CI does"
fi
missing=()
for p in podman runc debootstrap redis-server; do
	if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# These machines need no default ulimits and no pids limit (docker/containers.conf), the
# cgroupfs manager and runc.
export CONTAINERS_CONF=$PWD/docker/containers.conf
pm() { timeout 1200 podman --cgroup-manager=cgroupfs --runtime runc "$@"; }

mkdir -p "$cache"
state=$(mktemp -d "$cache/run-XXXXXX") # not in /tmp: cleaners there may race a long run
chmod 755 "$state"
ctr_server=fsg-test-server-$$
ctr_gateway=fsg-test-gateway-$$
redis_pid=
passed=0
cleanup() {
	local c
	for c in "$ctr_gateway" "$ctr_server"; do
		if pm container exists "$c"; then
			if [ $passed -eq 0 ]; then
				echo "---- $c log (last 20 lines)"
				pm logs "$c" 2>&1 | tail -20 || true
			fi
			pm rm -f -t 5 "$c" >/dev/null 2>&1 || true
		fi
	done
	if [ -n "$redis_pid" ]; then
		kill "$redis_pid" 2>/dev/null || true
		wait "$redis_pid" 2>/dev/null || true
	fi
	rm -rf "$state"
}
trap cleanup EXIT
trap 'exit 1' INT TERM # a timeout still removes the containers

# ---- base image: a minimal Debian 12 from the mirror apt already uses here
if pm image exists "$BASE_TAG"; then
	say "base image $BASE_TAG present"
else
	base_tar=$cache/base-bookworm-$BASE_VERSION.tar
	if [ ! -s "$base_tar" ]; then
		# shellcheck disable=SC2016 # apt's own $(FIELD) syntax
		repos=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' | sort -u)
		mirror=$(awk '$1 == "bookworm" { print $2; exit }' <<<"$repos")
		security=$(awk '$1 == "bookworm-security" { print $2; exit }' <<<"$repos")
		[ -n "$mirror" ] || die "no bookworm mirror in apt's sources"
		say "debootstrap bookworm from $mirror ($(elapsed))"
		# (--one-file-system: an interrupted debootstrap may leave /proc mounted in there)
		rm -rf --one-file-system "$cache/rootfs" "$base_tar.tmp"
		timeout 1200 debootstrap --variant=minbase bookworm "$cache/rootfs" "$mirror" \
			>"$cache/debootstrap.log" 2>&1 ||
			die "debootstrap failed, see $cache/debootstrap.log"
		{
			echo "deb $mirror bookworm main"
			echo "deb $mirror bookworm-updates main"
			if [ -n "$security" ]; then echo "deb $security bookworm-security main"; fi
		} >"$cache/rootfs/etc/apt/sources.list"
		# Slim like debian:bookworm-slim: no documentation, manuals or translations, now
		# nor in the packages the images install later (copyright files stay).
		cat >"$cache/rootfs/etc/dpkg/dpkg.cfg.d/slim" <<-'CFG'
			path-exclude /usr/share/doc/*
			path-include /usr/share/doc/*/copyright
			path-exclude /usr/share/man/*
			path-exclude /usr/share/info/*
			path-exclude /usr/share/locale/*
			path-exclude /usr/share/lintian/*
		CFG
		(
			cd "$cache/rootfs"
			find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
			find usr/share/doc -mindepth 1 -type d -empty -delete
			rm -rf usr/share/man/* usr/share/info/* usr/share/locale/* usr/share/lintian/*
			rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/*
		)
		tar -C "$cache/rootfs" --numeric-owner -cf "$base_tar.tmp" .
		mv "$base_tar.tmp" "$base_tar"
		rm -rf --one-file-system "$cache/rootfs"
	fi
	pm import "$base_tar" "$BASE_TAG" >/dev/null
	say "base image $BASE_TAG imported ($(elapsed))"
fi
# The one check that may skip: a kernel or sandbox that refuses podman's containers.
if ! out=$(pm run --rm --network host "$BASE_TAG" true 2>&1); then
	skip "podman cannot run a container here: $(tail -3 <<<"$out" | tr '\n' ' ')"
fi

# ---- the images (layers are cached: a second run rebuilds only from the changed sources)
for target in server gateway; do
	tag=$IMAGE_SERVER
	[ "$target" = gateway ] && tag=$IMAGE_GATEWAY
	say "building $tag ($(elapsed))"
	pm build --format docker --network host --build-arg BASE="$BASE_TAG" \
		-f docker/Dockerfile --target "$target" -t "$tag" . >"$state/build-$target.log" 2>&1 ||
		{
			tail -40 "$state/build-$target.log"
			die "podman build --target $target failed"
		}
done
size=$(pm image inspect --format '{{.Size}}' "$IMAGE_GATEWAY")
say "images built ($(elapsed)); size $((size / 1000000)) MB ($size bytes)"
for tag in $IMAGE_SERVER $IMAGE_GATEWAY; do
	[ "$(pm image inspect --format '{{.Config.User}}' "$tag")" = "$UID_RUN:$UID_RUN" ] ||
		die "$tag does not run as $UID_RUN:$UID_RUN"
	pm image inspect --format '{{json .Config.Healthcheck.Test}}' "$tag" | grep -q '^\["CMD",' ||
		die "$tag has no exec-form HEALTHCHECK"
done

# ---- configuration: secrets, certificates and keys, readable by the image's user only
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null &&
			! grep -q ":$(printf '%04X' "$p") " /proc/net/tcp /proc/net/tcp6; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
redis_port=$(free_port)
server_port=$(free_port)
gateway_port=$(free_port)
if [ "$server_port" = "$gateway_port" ] || [ "$redis_port" = "$server_port" ] ||
	[ "$redis_port" = "$gateway_port" ]; then
	die "no three distinct free ports"
fi
issuer=https://idp.container.test
audience=fs-gateway
secret() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$1"; }
mkdir -p "$state/gateway" "$state/server" "$state/spool" "$state/keys"
secret "$state/server/gateway.secret"
cp "$state/server/gateway.secret" "$state/gateway/server.secret"
secret "$state/server/release.secret"
secret "$state/gateway/route.key"
for name in tls other; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$state/gateway/$name.key" -out "$state/gateway/$name.crt" -subj /CN=localhost \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1
done
"$bin/fs-devtoken" keygen "$state/keys" >/dev/null
cp "$state/keys/dev-jwks.json" "$state/gateway/jwks.json"
chown -R "$UID_RUN:$UID_RUN" "$state/gateway" "$state/server" "$state/spool"
chmod 700 "$state/gateway" "$state/server" "$state/spool"
chmod 600 "$state/gateway"/* "$state/server"/*

redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$state" --save "" --appendonly no \
	--protected-mode yes --daemonize no --loglevel warning >"$state/redis.log" 2>&1 &
redis_pid=$!

# Every container: host network, read-only root with no tmpfs added (nothing may need /tmp),
# no capabilities, no privilege gain, the image's non-root user. No health timer: podman runs
# it through systemd, absent here; the check itself runs below with podman healthcheck run.
confine=(--network host --read-only --read-only-tmpfs=false --cap-drop ALL
	--security-opt no-new-privileges --user "$UID_RUN:$UID_RUN" --health-interval disable)
# No shell needed: the image's shells (sh, rbash and /bin are links to these) are masked by
# /dev/null, so neither the programs nor the health check could start one.
confine+=(-v /dev/null:/usr/bin/dash:ro -v /dev/null:/usr/bin/bash:ro)
# (podman's stderr goes to a file: without systemd it complains about health timers it cannot
# add even with the interval disabled.)
pm run -d --name "$ctr_server" "${confine[@]}" \
	-v "$state/server:/etc/fs-server:ro" -v "$state/spool:/var/spool/fs-server" \
	-e FSG_SERVER_SPOOL_DIR=/var/spool/fs-server \
	-e FSG_SERVER_PORT="$server_port" \
	-e FSG_SERVER_SERVER_ID=container-1 \
	-e FSG_SERVER_URL="http://127.0.0.1:$server_port" \
	-e FSG_SERVER_GATEWAY_SECRET_FILE=/etc/fs-server/gateway.secret \
	-e FSG_SERVER_RELEASE_SECRET_FILE=/etc/fs-server/release.secret \
	-e FSG_SERVER_REDIS_PORT="$redis_port" \
	"$IMAGE_SERVER" >/dev/null 2>"$state/run-server.err" ||
	die "podman run $IMAGE_SERVER: $(cat "$state/run-server.err")"
pm run -d --name "$ctr_gateway" "${confine[@]}" \
	-v "$state/gateway:/etc/fs-gateway:ro" \
	-e FSG_GATEWAY_LISTEN_ADDRESS=127.0.0.1 \
	-e FSG_GATEWAY_PORT="$gateway_port" \
	-e FSG_GATEWAY_TLS_CERT_FILE=/etc/fs-gateway/tls.crt \
	-e FSG_GATEWAY_TLS_KEY_FILE=/etc/fs-gateway/tls.key \
	-e FSG_GATEWAY_JWKS_FILE=/etc/fs-gateway/jwks.json \
	-e FSG_GATEWAY_TOKEN_ISSUER="$issuer" \
	-e FSG_GATEWAY_TOKEN_AUDIENCE="$audience" \
	-e FSG_GATEWAY_ROUTE_KEY_FILE=/etc/fs-gateway/route.key \
	-e FSG_GATEWAY_SERVER_SECRET_FILE=/etc/fs-gateway/server.secret \
	-e FSG_GATEWAY_REDIS_PORT="$redis_port" \
	"$IMAGE_GATEWAY" >/dev/null 2>"$state/run-gateway.err" ||
	die "podman run $IMAGE_GATEWAY: $(cat "$state/run-gateway.err")"
say "containers started ($(elapsed))"

# Ready: the server answers /readyz, then the gateway's /readyz (it has read the pool); 20 s.
ready=0
for _ in $(seq 1 200); do
	if "$bin/fs-healthcheck" "http://127.0.0.1:$server_port/readyz" 2>/dev/null &&
		"$bin/fs-healthcheck" --pin-cert="$state/gateway/tls.crt" \
			"https://127.0.0.1:$gateway_port/readyz" 2>/dev/null; then
		ready=1
		break
	fi
	sleep 0.1
done
[ $ready -eq 1 ] || die "server or gateway container not ready within 20 s"

# What the kernel says about each container's main process, not what podman was asked.
for c in "$ctr_server" "$ctr_gateway"; do
	pid=$(pm inspect --format '{{.State.Pid}}' "$c")
	[ "$pid" -gt 0 ] || die "$c has no process"
	status=/proc/$pid/status
	awk '$1 == "Uid:" { exit !($2 == 10001 && $3 == 10001 && $4 == 10001 && $5 == 10001) }' \
		"$status" || die "$c does not run as uid $UID_RUN: $(grep '^Uid:' "$status")"
	for cap in CapEff CapPrm CapBnd CapAmb; do
		awk -v k="$cap:" '$1 == k { exit !($2 ~ /^0+$/) }' "$status" ||
			die "$c keeps capabilities: $(grep "^$cap:" "$status")"
	done
	awk '$1 == "NoNewPrivs:" { exit !($2 == 1) }' "$status" || die "$c may gain privileges"
	exe=$(tr '\0' ' ' <"/proc/$pid/cmdline")
	[[ $exe == /usr/local/bin/fs-* ]] || die "$c runs $exe, not the program itself"
	awk '$5 == "/" { split($6, o, ","); ro = ro || o[1] == "ro" } END { exit !ro }' \
		"/proc/$pid/mountinfo" || die "$c root filesystem is writable"
done
say "both: program is pid 1, uid $UID_RUN, no capabilities, no_new_privs, read-only root"

# ---- one job end to end: fs-client -> gateway (TLS, token) -> server (spool volume)
client=$state/client
mkdir -p "$client"
"$bin/fs-devtoken" mint --key="$state/keys/dev-signing-key.pem" --kid=dev-1 --issuer="$issuer" \
	--audience="$audience" --subject=alice --ttl=600 >"$client/token"
cat >"$client/locations.config" <<JSON
{"current": "Default",
 "locations": [{"id": "Default", "name": "Container gateway",
                "addresses": ["https://127.0.0.1:$gateway_port"]}]}
JSON
cat >"$client/client.conf" <<CONF
queue_dir = $client/queue
locations_file = $client/locations.config
token_file = $client/token
ca_file = $state/gateway/tls.crt
compress = never
CONF
export FSG_CLIENT_CONFIG=$client/client.conf
# About 2 MiB of PostScript, sent as it is (compress = never), so the spool holds these bytes.
{
	printf '%%!PS-Adobe-3.0\n%%%%Title: container test\n'
	head -c 1500000 /dev/urandom | base64 -w 76 | sed 's/^/% /'
	printf 'showpage\n%%%%EOF\n'
} >"$client/job.ps"
"$bin/fs-client" submit "$client/job.ps" >/dev/null
rc=0
timeout 120 "$bin/fs-client" deliver || rc=$?
[ $rc -eq 0 ] || die "fs-client deliver exit $rc: $("$bin/fs-client" status 2>&1 | tail -5)"

data=$(find "$state/spool/ready" -mindepth 2 -maxdepth 2 -name data)
if [ -z "$data" ] || [ "$(wc -l <<<"$data")" -ne 1 ]; then
	die "expected one committed job in the spool volume, found: ${data:-none}"
fi
cmp -s "$data" "$client/job.ps" || die "committed bytes differ from the document sent"
grep -q '"owner": *"alice"' "$(dirname "$data")/job.json" ||
	die "committed job.json does not name owner alice"
[ "$(stat -c %u "$data")" = "$UID_RUN" ] || die "spool file not owned by $UID_RUN"
say "job relayed: $(stat -c %s "$data") bytes committed in the spool volume, identical ($(elapsed))"

# ---- HEALTHCHECK: the images' own commands, run by podman inside each container
for c in "$ctr_server" "$ctr_gateway"; do
	out=$(pm healthcheck run "$c" 2>&1) || die "podman healthcheck run $c: $out"
	[ "$(pm inspect --format '{{.State.Health.Status}}' "$c")" = healthy ] ||
		die "$c not reported healthy"
done
# The gateway's check really verifies the key: pinned to another certificate it must fail.
if pm exec "$ctr_gateway" /usr/local/bin/fs-healthcheck \
	--pin-cert=/etc/fs-gateway/other.crt "https://127.0.0.1:$gateway_port/healthz" \
	>"$state/pin.out" 2>&1; then
	die "fs-healthcheck accepted a certificate it was not pinned to"
fi
grep -q 'public key does not match' "$state/pin.out" ||
	die "wrong-pin check failed for another reason: $(cat "$state/pin.out")"
say "HEALTHCHECK: podman healthcheck run reports both containers healthy; a wrong pin fails"

# A clean stop: TERM ends both programs with status 0 within their drain grace.
for c in "$ctr_gateway" "$ctr_server"; do
	pm stop -t 40 "$c" >/dev/null 2>>"$state/stop.err" ||
		die "podman stop $c: $(cat "$state/stop.err")"
	code=$(pm inspect --format '{{.State.ExitCode}}' "$c")
	[ "$code" = 0 ] || die "$c exited with status $code after SIGTERM"
done
passed=1
say "PASSED in $(elapsed); image $IMAGE_GATEWAY $((size / 1000000)) MB"
