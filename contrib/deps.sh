# shellcheck shell=bash
#
# The Debian packages qmpmux needs to build, test and run its demo, and
# the one place that installs them.  Sourced by contrib/demo.sh and
# contrib/test.sh; apt-get runs only when something is missing.

# Build tools, libraries, Check, and the real QEMU and socat of the tests;
# python3 runs contrib/qmp-lock-rmw, which tests/check_lock runs.
# shellcheck disable=SC2034 # used by the scripts that source this file
QMPMUX_DEPS=(build-essential autoconf automake libtool pkg-config
	libevent-dev libyajl-dev libinih-dev check
	qemu-system-x86 socat python3)

# The fuzzers and memcheck of contrib/test.sh (docs/FUZZING.md): clang
# with libFuzzer's runtime (libclang-rt-dev), and valgrind.
# shellcheck disable=SC2034 # used by the scripts that source this file
QMPMUX_FUZZ_DEPS=(clang libclang-rt-dev valgrind)

# The checks of the man pages and of the systemd unit in contrib/test.sh:
# mandoc, and systemd-analyze, which looks up the unit's Documentation=
# pages with man.
# shellcheck disable=SC2034 # used by the scripts that source this file
QMPMUX_LINT_DEPS=(mandoc systemd man-db)

# The real libvirtd of tests/libvirt-e2e.sh, which contrib/test.sh runs.
# shellcheck disable=SC2034 # used by the scripts that source this file
QMPMUX_E2E_DEPS=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)

# Install those of the packages named as arguments that are missing.
deps_install() {
	local missing=() p status

	if ! command -v dpkg >/dev/null 2>&1; then
		echo "== not a Debian system: make sure these are installed:" \
		    "$*" >&2
		return 0
	fi
	for p in "$@"; do
		# not "dpkg -s | grep -q": grep leaving early would fail dpkg
		status=$(dpkg -s "$p" 2>/dev/null || true)
		if ! grep -q '^Status: install ok installed$' <<<"$status"; then
			missing+=("$p")
		fi
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		return 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "missing Debian packages: ${missing[*]}" >&2
		echo "run this as root to install them" >&2
		exit 1
	fi
	echo "== installing ${missing[*]}"
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
}
