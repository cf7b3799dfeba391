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
# check-valgrind) and make distcheck (docs/FUZZING.md).  A failed step
# shows the ends of its logs on stderr.
# It can be run from anywhere; the build directories are in the tree.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=contrib/deps.sh
. contrib/deps.sh

deps_install "${QMPMUX_DEPS[@]}" "${QMPMUX_E2E_DEPS[@]}" \
	"${QMPMUX_FUZZ_DEPS[@]}" "${QMPMUX_LINT_DEPS[@]}"

# Each step's time, for the log: CI time is counted.
step_start() {
	echo "== $*"
	step_t0=$(date +%s)
}
step_end() {
	echo "== $1: $(($(date +%s) - step_t0)) s"
}

# The last $1 lines of each file after it that exists, on stderr, each
# under its name: what a failed step leaves to say why.  The tests and
# tests/libvirt-e2e.sh show their own; these are the logs around them.
show_logs() {
	local n=$1 f

	shift
	for f in "$@"; do
		[ -f "$f" ] || continue
		echo "==> $f <==" >&2
		tail -n "$n" "$f" >&2
	done
}

# Configure in the directory $1 with the rest as options, and build; a
# failed configure shows the end of its config.log.
build() {
	local dir=$1

	shift
	mkdir -p "$dir"
	(
		cd "$dir"
		if ! ../configure "$@"; then
			echo "== $dir: configure failed" >&2
			show_logs 60 config.log
			exit 1
		fi
		make -j2
	)
}

echo "== autogen"
./autogen.sh

echo "== build-test: --enable-werror --enable-sanitizers"
build build-test --enable-werror --enable-sanitizers

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
build build-fuzz CC=clang --enable-fuzzing --enable-werror
if ! make -C build-fuzz fuzz FUZZ_SECONDS=30; then
	echo "== make fuzz failed: build-fuzz/fuzz-crashes/; the logs of" \
	    "the targets that did not finish:" >&2
	# libFuzzer says DONE at the end of a run that found nothing
	for f in build-fuzz/fuzz-crashes/*.log; do
		grep -q '^#[0-9].*DONE' "$f" || show_logs 60 "$f"
	done
	exit 1
fi
step_end "make fuzz"

echo "== mandoc -Tlint"
mandoc -Tlint -Wwarning man/qmpmuxctl.1 man/qmpmuxd.8 man/qmpmuxd.conf.5 \
	man/qmpmux-qemu.8 man/qmpmux.7 man/qmpmux-control.7

# The unit as make writes it from contrib/qmpmuxd.service.in, installed
# with everything in a temporary prefix so that its ExecStart= binary
# and its Documentation= pages exist.  systemd-analyze exits 0 on a
# warning (an unknown key, a bad address family), so any line about the
# unit fails the step.  The unit made for the prefix is removed after,
# for make to write it again with the configured paths.
echo "== systemd-analyze verify qmpmuxd.service"
unit_prefix=$(mktemp -d)
rm -f build-test/contrib/qmpmuxd.service
make -C build-test install prefix="$unit_prefix" \
	systemdsystemunitdir="$unit_prefix/lib/systemd/system" >/dev/null
rm -f build-test/contrib/qmpmuxd.service
if ! verify=$(MANPATH="$unit_prefix/share/man" systemd-analyze verify \
    "$unit_prefix/lib/systemd/system/qmpmuxd.service" 2>&1) ||
    grep -qF qmpmuxd.service <<<"$verify"; then
	echo "== systemd-analyze verify: $verify" >&2
	exit 1
fi
rm -rf "$unit_prefix"

# Memcheck on a plain build: the tests and every qmpmuxd they start, but
# for the three whose subject memcheck changes (docs/FUZZING.md).
step_start "build-dist: make check-valgrind (plain build)"
build build-dist
if ! make -C build-dist -j2 check-valgrind; then
	echo "== make check-valgrind failed: build-dist/test-suite.log," \
	    "build-dist/valgrind-logs/" >&2
	cat build-dist/test-suite.log >&2 || true
	# the reports that count an error, as make check-valgrind counts
	for f in build-dist/valgrind-logs/*.log; do
		if grep -qE 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]' \
		    "$f"; then
			show_logs 100 "$f"
		fi
	done
	exit 1
fi
step_end "make check-valgrind"

echo "== build-dist: make distcheck"
if ! make -C build-dist -j2 distcheck; then
	# distcheck leaves its build, in _build/sub, when it fails
	echo "== make distcheck failed; its logs:" >&2
	show_logs 100 build-dist/qmpmux-*/_build/sub/test-suite.log
	show_logs 60 build-dist/qmpmux-*/_build/sub/config.log
	exit 1
fi

echo "== all passed"
