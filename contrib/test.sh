#!/bin/bash
#
# The CI job: install what is missing (Debian, as root), build with
# -Werror and the sanitizers in build-test/ and run every test and the
# benchmark's short run (BENCH_QUICK=1 make bench), run a
# domain through the real libvirtd (tests/libvirt-e2e.sh), lint the
# man pages, and run make distcheck from a plain build in build-dist/.
# It can be run from anywhere; the build directories are in the tree.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=contrib/deps.sh
. contrib/deps.sh

deps_install "${QMPMUX_DEPS[@]}" "${QMPMUX_E2E_DEPS[@]}" mandoc

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

echo "== libvirt end to end: tests/libvirt-e2e.sh"
tests/libvirt-e2e.sh build-test

echo "== mandoc -Tlint"
mandoc -Tlint -Wwarning man/qmpmuxctl.1 man/qmpmuxd.8 man/qmpmuxd.conf.5 \
	man/qmpmux-qemu.8

echo "== build-dist: make distcheck"
mkdir -p build-dist
(
	cd build-dist
	../configure
	make -j2 distcheck
)

echo "== all passed"
