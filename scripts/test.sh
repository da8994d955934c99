#!/usr/bin/env bash
# test: installs what is missing, then builds and runs every test in three builds:
#   plain (gcc, -Werror), sanitizers (clang-14, ASan+UBSan, -Werror), and fuzz (clang-14 libFuzzer,
#   each target replays its corpus and fuzzes for FSG_FUZZ_SECONDS, default 10); then, once, the
#   container test (tests/container/run.sh: the docker/ images under podman; skipped, saying why,
#   where podman cannot run).
# Usage: scripts/test.sh            Environment: FSG_FUZZ_SECONDS, FSG_BUILD_ROOT (default ./build)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh

root=${FSG_BUILD_ROOT:-build}
fuzz_seconds=${FSG_FUZZ_SECONDS:-10}
jobs=$(nproc)
start=$(date +%s)
status=0
passed=0
failed=0
cases=0

# run_build NAME CC CMAKE_OPTIONS...: configure, build and ctest one build directory.
run_build() {
	local name=$1 cc=$2 dir=$root/$1 rc=0
	shift 2
	echo "== $name build ($cc) =="
	CC=$cc cmake -S . -B "$dir" -DFSG_WERROR=ON "$@" >/dev/null
	cmake --build "$dir" -j"$jobs"
	# ctest's -V output is kept whole in the log; failures are printed in full here.
	ctest --test-dir "$dir" -j"$jobs" --timeout 600 --output-on-failure -V \
		>"$dir/ctest.log" 2>&1 || rc=$?
	grep -E '^ *[0-9]+/[0-9]+ Test +#' "$dir/ctest.log" | sed 's/^ *//' || true
	if [ $rc -ne 0 ]; then
		echo "-- $name: failures; full output in $dir/ctest.log"
		grep -E '^\[FAIL\]|Assertion Failed|ERROR: |SUMMARY: |Failed|\*\*\*' "$dir/ctest.log" |
			head -60 || true
		status=1
	fi
	local p f
	p=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed' "$dir/ctest.log" || true)
	f=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*(\*\*\*|Failed|Not Run|Timeout)' \
		"$dir/ctest.log" || true)
	passed=$((passed + p))
	failed=$((failed + f))
	local c
	c=$(sed -n 's/.*Synthesis: Tested: \([0-9]*\).*/\1/p' "$dir/ctest.log" |
		awk '{s += $1} END {print s + 0}')
	cases=$((cases + c))
	echo "-- $name: $p ctest tests passed, $f failed, $c Criterion cases"
}

run_build plain gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo
# Every process of the sanitizer run (test workers and the programs they start) writes its
# sanitizer reports to files: Criterion passes a test whose worker only leaks, so any report
# found afterwards fails the run.
reports=$(realpath -m "$root/sanitize/sanitizer-reports")
rm -rf "$reports" && mkdir -p "$reports"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:log_path=$reports/asan \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$reports/ubsan \
	run_build sanitize clang-14 -DCMAKE_BUILD_TYPE=Debug -DFSG_SANITIZE=ON
if [ -n "$(ls -A "$reports" 2>/dev/null)" ]; then
	echo "-- sanitize: sanitizer reports found:"
	for f in "$reports"/*; do
		echo "---- $f"
		head -40 "$f"
	done
	status=1
	failed=$((failed + 1))
fi
run_build fuzz clang-14 -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFSG_SANITIZE=ON -DFSG_FUZZ=ON \
	-DFSG_FUZZ_SECONDS="$fuzz_seconds"

# The container images (docker/), once per run: podman builds them on a debootstrapped Debian
# base (kept in $root/container) and relays a job through them, using the plain build's tools.
echo "== container test =="
crc=0
timeout -k 30 2700 tests/container/run.sh "$root/plain/bin" "$root/container" || crc=$?
case $crc in
0) passed=$((passed + 1)) ;;
77) echo "-- container: skipped (the reason is above)" ;;
*)
	echo "-- container: failed (exit $crc)"
	failed=$((failed + 1))
	status=1
	;;
esac

echo "== summary: $(($(date +%s) - start)) s, $cases Criterion cases across the plain and sanitizer builds =="
echo "$passed passed, $failed failed"
exit $status
