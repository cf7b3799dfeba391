#!/bin/bash
#
# A narrated demo of qmpmux: a real QEMU with qmpmuxd in front of its QMP
# monitor, and two clients, "libvirtd" and "operator" (both played by
# socat), sharing that one monitor.  It installs what is missing (Debian,
# as root), builds qmpmux in build-demo/, and fails loudly if a reply it
# expects does not come within a bound.  It can be run from anywhere.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=contrib/deps.sh
. contrib/deps.sh

WAIT=5				# seconds allowed for each expected line
QEMU=${QEMU:-qemu-system-x86_64}

deps_install "${QMPMUX_DEPS[@]}"

echo "== building qmpmux in build-demo/"
if [ ! -x configure ]; then
	./autogen.sh
fi
mkdir -p build-demo
(
	cd build-demo
	if [ ! -f Makefile ] && ! ../configure --quiet; then
		echo "== configure failed; the end of build-demo/config.log:" >&2
		tail -n 60 config.log >&2
		exit 1
	fi
	make -j2
)
QMPMUXD=$PWD/build-demo/qmpmuxd
QMPMUXCTL=$PWD/build-demo/qmpmuxctl

DIR=$(mktemp -d "${TMPDIR:-/tmp}/qmpmux-demo.XXXXXX")
qemu_pid=
proxy_pid=

# Stop whatever is still running; if we failed, show the daemon's log
# and the ends of QEMU's and the clients' (socat's errors) on stderr.
cleanup() {
	local status=$?

	set +e
	trap - EXIT
	for pid in "${LIBVIRTD_PID:-}" "${OPERATOR_PID:-}" "$proxy_pid" \
	    "$qemu_pid"; do
		if [ -n "$pid" ]; then
			kill -KILL "$pid" 2>/dev/null
		fi
	done
	wait 2>/dev/null
	if [ "$status" -ne 0 ]; then
		echo "== FAILED (status $status); qmpmuxd's log:" >&2
		cat "$DIR/qmpmuxd.log" >&2 2>/dev/null
		for f in "$DIR"/qemu.log "$DIR"/socat-*.log; do
			[ -s "$f" ] || continue
			echo "== the end of $(basename "$f"):" >&2
			tail -n 20 "$f" >&2
		done
	fi
	rm -rf "$DIR"
	exit "$status"
}
trap cleanup EXIT

fail() {
	echo "FAILED: $*" >&2
	exit 1
}

# Print and send one line from a client.
send() {
	local who=$1 msg=$2

	printf '%-8s > %s\n' "$who" "$msg"
	printf '%s\n' "$msg" >&"${TO[$who]}"
}

# Read a client's lines, printing each, until every pattern (a bash regex)
# has matched one of them, in any order; each line must come within WAIT.
expect() {
	local who=$1 line i rc
	shift
	local -a want=("$@")

	while [ "${#want[@]}" -gt 0 ]; do
		rc=0
		IFS= read -r -t "$WAIT" -u "${FROM[$who]}" line || rc=$?
		if [ "$rc" -gt 128 ]; then
			fail "$who: nothing within ${WAIT}s; still expected:" \
			    "${want[*]}"
		elif [ "$rc" -ne 0 ]; then
			fail "$who: connection closed; still expected:" \
			    "${want[*]}"
		fi
		line=${line%$'\r'}
		printf '%-8s < %s\n' "$who" "$line"
		for i in "${!want[@]}"; do
			if [[ $line =~ ${want[$i]} ]]; then
				unset 'want[i]'
				break
			fi
		done
	done
}

# Wait for a client's connection to end, within WAIT.
expect_eof() {
	local who=$1 line rc

	while :; do
		rc=0
		IFS= read -r -t "$WAIT" -u "${FROM[$who]}" line || rc=$?
		if [ "$rc" -gt 128 ]; then
			fail "$who: connection still open after ${WAIT}s"
		elif [ "$rc" -ne 0 ]; then
			printf '%-8s   (connection closed)\n' "$who"
			return
		fi
		printf '%-8s < %s\n' "$who" "${line%$'\r'}"
	done
}

echo
echo "== starting QEMU (no machine, no display) with its QMP monitor on"
echo "== a private socket, $DIR/qemu.sock"
"$QEMU" -M none -nodefaults -display none \
    -qmp "unix:$DIR/qemu.sock,server=on,wait=off" \
    >"$DIR/qemu.log" 2>&1 &
qemu_pid=$!

echo "== starting qmpmuxd in front of it; clients connect to $DIR/vm.sock"
"$QMPMUXD" -dv --upstream "$DIR/qemu.sock" --listen "$DIR/vm.sock" \
    --name demo --control "$DIR/control.sock" >"$DIR/qmpmuxd.log" 2>&1 &
proxy_pid=$!

# QEMU's monitor takes one client; through qmpmuxd it takes two.  socat
# retries the connect (50 x 0.1s) while qmpmuxd creates its socket.  The
# coprocesses' fds are duplicated: bash closes its own when one exits.
# Each socat's errors go to its log, not with bash's warning that a
# coprocess still runs when the second starts.
declare -A TO FROM
connect="UNIX-CONNECT:$DIR/vm.sock,retry=50,interval=0.1"
{ coproc LIBVIRTD {
	exec socat - "$connect" 2>"$DIR/socat-libvirtd.log"
}; } 2>/dev/null
exec {fd}>&"${LIBVIRTD[1]}"; TO[libvirtd]=$fd
exec {fd}<&"${LIBVIRTD[0]}"; FROM[libvirtd]=$fd
{ coproc OPERATOR {
	exec socat - "$connect" 2>"$DIR/socat-operator.log"
}; } 2>/dev/null
exec {fd}>&"${OPERATOR[1]}"; TO[operator]=$fd
exec {fd}<&"${OPERATOR[0]}"; FROM[operator]=$fd

greeting='^\{"QMP": \{"version": \{'
ok='^\{"return": \{\}\}$'

echo
echo "== two clients connect; each receives QEMU's own greeting"
expect libvirtd "$greeting"
expect operator "$greeting"

echo
echo "== each negotiates capabilities on its own; qmpmuxd answers as QEMU"
send libvirtd '{"execute": "qmp_capabilities"}'
expect libvirtd "$ok"
send operator '{"execute": "qmp_capabilities"}'
expect operator "$ok"

echo
echo "== both ask query-status at once with the same id, 1 and \"1\":"
echo "== qmpmuxd gives each command its own id upstream and restores the"
echo "== client's id byte for byte; each reply goes only to its asker"
send libvirtd '{"execute": "query-status", "id": 1}'
send operator '{"execute": "query-status", "id": "1"}'
expect libvirtd '^\{"return": \{.*"status": "running".*\}, "id": 1\}$'
expect operator '^\{"return": \{.*"status": "running".*\}, "id": "1"\}$'

echo
echo "== the operator pauses the VM; the STOP event reaches both clients"
send operator '{"execute": "stop", "id": "op-2"}'
expect operator '^\{"return": \{\}, "id": "op-2"\}$' '"event": "STOP"'
expect libvirtd '"event": "STOP"'

echo
echo "== libvirtd resumes it; the RESUME event reaches both clients"
send libvirtd '{"execute": "cont", "id": {"libvirt": 2}}'
expect libvirtd '^\{"return": \{\}, "id": \{"libvirt": 2\}\}$' \
    '"event": "RESUME"'
expect operator '"event": "RESUME"'

echo
echo "== qmpmuxctl asks qmpmuxd, on its control socket, what it holds:"
echo "== the VM, ready, with its two clients"
"$QMPMUXCTL" --control "$DIR/control.sock" list | sed 's/^/   /'
"$QMPMUXCTL" --control "$DIR/control.sock" --json list |
    grep -Eq '"clients": ?2[,}]' || fail "qmpmuxctl does not list two clients"

echo
echo "== SIGTERM: qmpmuxd closes its clients, removes its socket and exits;"
echo "== QEMU keeps running"
kill -TERM "$proxy_pid"
expect_eof libvirtd
expect_eof operator
timeout "$WAIT" tail --pid="$proxy_pid" -f /dev/null ||
    fail "qmpmuxd still running ${WAIT}s after SIGTERM"
rc=0
wait "$proxy_pid" || rc=$?
proxy_pid=
[ "$rc" -eq 0 ] || fail "qmpmuxd exited with status $rc"
[ ! -e "$DIR/vm.sock" ] || fail "qmpmuxd left $DIR/vm.sock behind"
kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU is gone"

echo
echo "== qmpmuxd's log (-v: with debug detail; note the ids it gave upstream):"
sed 's/^/   /' "$DIR/qmpmuxd.log"
echo
echo "== demo passed"
