#!/bin/bash
#
# The CI job: install what is missing (Debian, as root), build with
# -Werror and the sanitizers in build-test/ and run every test and the
# benchmark's short run (BENCH_QUICK=1 make bench), run a domain through
# the real libvirtd (tests/libvirt-e2e.sh) from libvirt's cold state, as
# on a fresh machine (its cache of QEMU's capabilities emptied), fuzz
# briefly against the real QEMU (make fuzz-diff) and with libFuzzer in
# build-fuzz/ (make fuzz, 30 s a target), lint the man pages, and from a
# plain build in build-dist/ run the tests under valgrind (make
# check-valgrind) and make distcheck (docs/FUZZING.md).
# It can be run from anywhere; the build directories are in the tree.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=contrib/deps.sh
. contrib/deps.sh

deps_install "${QMPMUX_DEPS[@]}" "${QMPMUX_E2E_DEPS[@]}" \
	"${QMPMUX_FUZZ_DEPS[@]}" mandoc

# Each step's time, for the log: CI time is counted.
step_start() {
	echo "== $*"
	step_t0=$(date +%s)
}
step_end() {
	echo "== $1: $(($(date +%s) - step_t0)) s"
}

echo "== autogen"
./autogen.sh

echo "== build-test: --enable-werror --enable-sanitizers"
mkdir -p build-test
(
	cd build-test
	../configure --enable-werror --enable-sanitizers
	make -j2
)

echo "== make check"
if ! make -C build-test -j2 check; then
	echo "== make check failed: build-test/test-suite.log" >&2
	cat build-test/test-suite.log >&2 || true
	exit 1
fi

# The benchmark's short run: not its figures (a sanitizer build's mean
# nothing), but that every part of make bench still runs.
echo "== make bench, quick"
BENCH_QUICK=1 make -C build-test bench

# From libvirt's cold state, as README promises a fresh machine: with
# its cache of QEMU's capabilities empty, libvirtd probes QEMU as it
# starts, which a warm cache on a reused machine would hide.  Bounded,
# with time for the test's own cleanup after the bound.
e2e_bound=600
step_start "libvirt end to end: tests/libvirt-e2e.sh, libvirt's cache" \
    "of QEMU's capabilities emptied, at most $e2e_bound s"
rm -f /var/cache/libvirt/qemu/capabilities/*.xml
rc=0
timeout -k 120 "$e2e_bound" tests/libvirt-e2e.sh build-test || rc=$?
if [ "$rc" -eq 124 ]; then
	echo "== tests/libvirt-e2e.sh took more than $e2e_bound s" >&2
fi
[ "$rc" -eq 0 ] || exit 1
step_end "libvirt end to end"

# A new seed each run, printed first: a failure runs again with
# FUZZ_DIFF_SEED=SEED.  3000 inputs take about 3 minutes here.
fuzz_diff_seed=${FUZZ_DIFF_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
step_start "fuzz-diff: seed $fuzz_diff_seed, 3000 inputs against the real QEMU"
make -C build-test fuzz-diff FUZZ_DIFF_SEED="$fuzz_diff_seed" \
	FUZZ_DIFF_ITERATIONS=3000
step_end fuzz-diff

step_start "build-fuzz: CC=clang --enable-fuzzing; make fuzz, 30 s a target"
mkdir -p build-fuzz
(
	cd build-fuzz
	../configure CC=clang --enable-fuzzing --enable-werror
	make -j2
)
if ! make -C build-fuzz fuzz FUZZ_SECONDS=30; then
	echo "== make fuzz failed: build-fuzz/fuzz-crashes/" >&2
	exit 1
fi
step_end "make fuzz"

echo "== mandoc -Tlint"
mandoc -Tlint -Wwarning man/qmpmuxctl.1 man/qmpmuxd.8 man/qmpmuxd.conf.5 \
	man/qmpmux-qemu.8

# Memcheck on a plain build: the tests and every qmpmuxd they start, but
# for the three whose subject memcheck changes (docs/FUZZING.md).
step_start "build-dist: make check-valgrind (plain build)"
mkdir -p build-dist
(
	cd build-dist
	../configure
	make -j2
)
if ! make -C build-dist -j2 check-valgrind; then
	echo "== make check-valgrind failed: build-dist/test-suite.log," \
	    "build-dist/valgrind-logs/" >&2
	cat build-dist/test-suite.log >&2 || true
	exit 1
fi
step_end "make check-valgrind"

echo "== build-dist: make distcheck"
make -C build-dist -j2 distcheck

echo "== all passed"
