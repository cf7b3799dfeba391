#!/bin/bash
#
# End to end with the real libvirtd: two domains, A and B, whose
# <emulator> is the qmpmux-qemu shim, so that qmpmuxd serves their
# monitors, driven through virsh:
#
#  1. both started and running, and in qmpmuxctl list by name;
#  2. an operator client on A's read-only listener queries A beside
#     libvirtd and is refused stop;
#  3. a stop passed through virsh qemu-monitor-command pauses A in
#     libvirt's eyes too (the STOP event reached it); then resumed;
#  4. A's QEMU stopped with SIGSTOP: virsh suspend A fails within
#     command_timeout, not never; virsh resume A is not held for
#     libvirt's 30 s job wait; domstate A and every command on B
#     answer at once; after SIGCONT libvirt and QEMU agree on A's state;
#  5. libvirtd restarted while both run, and driving both again;
#  6. qmpmuxd restarted in place (qmpmuxctl restart, then SIGUSR2)
#     while libvirtd holds both monitors: the same pid, both domains
#     running and driven by virsh, and libvirt's monitor of neither saw
#     an end of file or an error;
#  7. qmpmuxd killed with SIGKILL and started again by the fd store
#     (tests/fakestore, as systemd would): both domains running and
#     driven by virsh, and again no end of file or error on either
#     monitor in libvirt's log;
#  8. virsh destroy A removes A from qmpmuxd and leaves B running.
#
# With QMPMUX_E2E_COMPARE=1 it also measures step 4 without qmpmuxd, on
# a domain C whose <emulator> is QEMU itself (it takes about 80 s more),
# and prints the timings side by side.
#
#     tests/libvirt-e2e.sh BUILDDIR
#
# It runs its own virtlogd, libvirtd and qmpmuxd, as root, with
# /etc/libvirt/qemu.conf set for a container (root, no security
# driver, no cgroups, no namespaces) and put back afterwards, and
# TCG.  It refuses to run next to a libvirtd already running.  Every
# wait is bounded; whatever it started is stopped, whatever fails, and
# a failure shows the tail of every log on stderr.  It passes whether
# libvirt's cache of QEMU's capabilities is empty (libvirtd then probes
# QEMU as it starts) or not.
set -euo pipefail

build=$(cd "${1:?usage: libvirt-e2e.sh BUILDDIR}" && pwd)
A=qmpmux-e2e-a
B=qmpmux-e2e-b
C=qmpmux-e2e-c
domains=("$A" "$B" "$C")
V=(virsh -q -c qemu:///system)
conf=/etc/libvirt/qemu.conf
qemu=$(command -v qemu-system-x86_64 || true)
work=$(mktemp -d /tmp/qmpmux-e2e.XXXXXX)
ctl=("$build/qmpmuxctl" --control "$work/control.sock")
pids=()
libvirtd_pid=
stopped=()

fail() {
	echo "libvirt-e2e: $*" >&2
	exit 1
}

# Destroy and undefine the test's domains, whichever libvirt knows.
forget_domains() {
	local d

	for d in "${domains[@]}"; do
		timeout 20 "${V[@]}" destroy "$d" >/dev/null 2>&1 || true
		timeout 20 "${V[@]}" undefine "$d" >/dev/null 2>&1 || true
	done
}

cleanup() {
	local status=$? d p

	# the logs as the failure left them, before the teardown adds to them
	if [ "$status" -ne 0 ]; then
		echo "libvirt-e2e: failed; the logs:" >&2
		tail -n 20 /var/log/libvirt/qemu/"$A".log \
		    /var/log/libvirt/qemu/"$B".log /var/log/libvirt/qemu/"$C".log \
		    "$work"/*.log >&2 2>/dev/null || true
		echo "==> $work/libvirtd-monitor.debug (cut) <==" >&2
		tail -n 20 "$work/libvirtd-monitor.debug" 2>/dev/null |
		    cut -c1-300 >&2 || true
	fi
	for p in "${stopped[@]}"; do
		kill -CONT "$p" 2>/dev/null || true
	done
	if [ -S /run/libvirt/libvirt-sock ] && [ -n "$libvirtd_pid" ]; then
		forget_domains
	fi
	# a QEMU that libvirtd could not destroy
	for d in "${domains[@]}"; do
		p=$(cat "/run/libvirt/qemu/$d.pid" 2>/dev/null) || continue
		if [ -n "$p" ] && [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = \
		    "$(readlink -f "$qemu")" ]; then
			kill -9 "$p" 2>/dev/null || true
		fi
	done
	[ -z "$libvirtd_pid" ] || pids+=("$libvirtd_pid")
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		timeout 10 tail --pid="$p" -f /dev/null || kill -9 "$p" 2>/dev/null || true
	done
	if [ -e "$work/qemu.conf.orig" ]; then
		mv "$work/qemu.conf.orig" "$conf"
	elif [ -e "$work/qemu.conf.none" ]; then
		rm -f "$conf"
	fi
	rm -rf "$work"
	exit "$status"
}
trap cleanup EXIT
# killed by a bound (contrib/test.sh's timeout) or interrupted: the same
# cleanup, and the logs, since the status says it failed
trap 'exit 143' TERM
trap 'exit 130' INT

# Wait up to $1 tenths of a second for the command after it to succeed.
wait_for() {
	local n=$1

	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ "$n" -gt 0 ] || fail "timed out waiting for: $*"
		sleep 0.1
	done
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# Run the command, and set $ms to the time it took, in ms, $rc to its
# status and $out to its output.
timed() {
	local t0

	t0=$(now_ms)
	rc=0
	out=$("$@" 2>&1) || rc=$?
	ms=$(($(now_ms) - t0))
}

secs() {
	printf '%d.%d s' $(($1 / 1000)) $(($1 % 1000 / 100))
}

# The state of domain $1 must be $2.
state_is() {
	local s

	s=$(timeout 20 "${V[@]}" domstate "$1")
	[ "$s" = "$2" ] || fail "domstate $1: $s, expected $2"
}

# Domain $1 answers at once: domstate says $2, and, unless $3 is
# "nomonitor", QEMU answers query-status through libvirt; each in 5 s.
answers() {
	timed timeout 20 "${V[@]}" domstate "$1"
	if [ "$rc" -ne 0 ] || [ "$out" != "$2" ]; then
		fail "domstate $1: $out ($rc), expected $2"
	fi
	[ "$ms" -lt 5000 ] || fail "domstate $1 took $(secs "$ms")"
	[ "${3:-}" != nomonitor ] || return 0
	timed timeout 20 "${V[@]}" qemu-monitor-command "$1" \
	    '{"execute": "query-status"}'
	[ "$rc" -eq 0 ] || fail "query-status $1: $out"
	[ "$ms" -lt 5000 ] || fail "query-status $1 took $(secs "$ms")"
}

# QEMU's state of domain $1 through its read-only listener, as libvirt
# names it.
qemu_state() {
	local o

	o=$(printf '%s\n' '{"execute": "qmp_capabilities"}' \
	    '{"execute": "query-status"}' |
	    timeout 10 socat -t 5 - "UNIX-CONNECT:$work/$1.sock")
	case $o in
	*'"running": true'*) echo running ;;
	*'"running": false'*) echo paused ;;
	*) echo "unknown: $o" ;;
	esac
}

# libvirt and QEMU agree on the state of domain $1.
agree() {
	local q l

	q=$(qemu_state "$1")
	l=$(timeout 5 "${V[@]}" domstate "$1")
	echo "$q $l" >"$work/agree"
	[ "$q" = "$l" ]
}

listed() {
	timeout 10 "${ctl[@]}" list | grep -q "^$1 .* ready "
}

# Define domain $1 with emulator $2.
define() {
	cat >"$work/$1.xml" <<EOF
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>$2</emulator>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
	timeout 20 "${V[@]}" define "$work/$1.xml" >/dev/null
}

# Start libvirtd: its warnings and errors to libvirtd.log, and in
# libvirtd-monitor.debug, what its monitor code logs for debugging,
# where alone libvirt 9.0 says that a monitor's stream ended.
start_libvirtd() {
	LIBVIRT_LOG_FILTERS="3:qemu.qemu_monitor_json 1:qemu.qemu_monitor" \
	LIBVIRT_LOG_OUTPUTS="3:stderr 1:file:$work/libvirtd-monitor.debug" \
	    libvirtd >>"$work/libvirtd.log" 2>&1 &
	libvirtd_pid=$!
	wait_for 300 timeout 5 "${V[@]}" version
}

[ "$(id -u)" -eq 0 ] || fail "run as root"
for c in libvirtd virtlogd virsh socat qemu-system-x86_64; do
	command -v "$c" >/dev/null || fail "$c is not installed"
done
if pgrep -x libvirtd >/dev/null || pgrep -x virtlogd >/dev/null; then
	fail "a libvirtd or virtlogd already runs; not touching it"
fi

# libvirt's QEMU driver wants these, as Debian's libvirt-daemon-system
# would make them
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
	useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt \
	    -s /usr/sbin/nologin libvirt-qemu
if [ -e "$conf" ]; then
	cp -p "$conf" "$work/qemu.conf.orig"
else
	: >"$work/qemu.conf.none"
fi
cat >"$conf" <<'EOF'
user = "root"
group = "root"
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
EOF
mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /run/libvirt

# The VMs that the wrapper adds take [global]: a command QEMU does not
# answer fails after 3 s, instead of never.
cat >"$work/qmpmuxd.conf" <<'EOF'
[global]
command_timeout = 3
EOF
# Under a service manager's fd store (tests/fakestore: systemd's
# FDSTORE=1 and Restart=on-failure), so that a crash loses nothing.
"$build/tests/fakestore" "$work/notify.sock" "$work/qmpmuxd.pid" -- \
    "$build/qmpmuxd" -d -f "$work/qmpmuxd.conf" \
    --control "$work/control.sock" >"$work/qmpmuxd.log" 2>&1 &
pids+=($!)
wait_for 100 test -S "$work/control.sock"
qmpmuxd_pid=$(cat "$work/qmpmuxd.pid")

cat >"$work/shim.sh" <<EOF
#!/bin/sh
export QMPMUX_QEMU=$qemu QMPMUX_CONTROL=$work/control.sock QMPMUX_LISTEN_DIR=$work; exec $build/qmpmux-qemu "\$@"
EOF
chmod 755 "$work/shim.sh"

virtlogd >"$work/virtlogd.log" 2>&1 &
pids+=($!)
start_libvirtd
# a run killed before its cleanup could undefine them (its bound's
# SIGTERM reaches libvirtd too) leaves its domains defined
forget_domains

echo "libvirt-e2e: 1. A and B started through the shim"
for d in "$A" "$B"; do
	define "$d" "$work/shim.sh"
	timeout 60 "${V[@]}" start "$d" >/dev/null
	state_is "$d" running
	# the monitor is qmpmuxd's, and libvirt's pid is QEMU's
	grep -q "qmpmux-qemu: vm $d: the monitor is served by qmpmuxd" \
	    "/var/log/libvirt/qemu/$d.log" || fail "$d: the monitor was not handed over"
	pid=$(cat "/run/libvirt/qemu/$d.pid")
	[ "$(readlink "/proc/$pid/exe")" = "$(readlink -f "$qemu")" ] ||
		fail "$d: pid $pid is not QEMU"
done
for d in "$A" "$B"; do
	listed "$d" || fail "qmpmuxctl list has no ready $d"
done
timeout 10 "${ctl[@]}" list | sed 's/^/libvirt-e2e:   /'
apid=$(cat "/run/libvirt/qemu/$A.pid")

timeout 20 "${V[@]}" suspend "$B" >/dev/null
state_is "$B" paused
timeout 20 "${V[@]}" resume "$B" >/dev/null
state_is "$B" running

echo "libvirt-e2e: 2. an operator on A's read-only listener"
[ "$(qemu_state "$A")" = running ] || fail "operator query-status: not running"
out=$(printf '%s\n' '{"execute": "qmp_capabilities"}' \
    '{"execute": "stop"}' |
    timeout 10 socat -t 5 - "UNIX-CONNECT:$work/$A.sock")
case $out in
*'"desc": "The command stop has been disabled for this instance"'*) ;;
*) fail "read-only listener: $out" ;;
esac
state_is "$A" running

echo "libvirt-e2e: 3. stop through qemu-monitor-command"
out=$(timeout 20 "${V[@]}" qemu-monitor-command "$A" '{"execute": "stop"}')
case $out in
*'"return":{}'*) ;;
*) fail "qemu-monitor-command stop: $out" ;;
esac
# the STOP event, not a reply, tells libvirt
wait_for 100 sh -c "[ \"\$(timeout 5 ${V[*]} domstate $A)\" = paused ]"
timeout 20 "${V[@]}" resume "$A" >/dev/null
state_is "$A" running
[ "$(qemu_state "$A")" = running ] || fail "A: QEMU not running after resume"

echo "libvirt-e2e: 4. A's QEMU stopped with SIGSTOP"
kill -STOP "$apid"
stopped+=("$apid")
# B and domstate A, while virsh suspend A waits
t0=$(now_ms)
(
	s=0
	timeout 20 "${V[@]}" suspend "$A" >"$work/suspend.out" 2>&1 || s=$?
	echo "$s" >"$work/suspend.rc"
) &
susp=$!
# while libvirt's stop is with qmpmuxd, sent to the stopped QEMU
wait_for 100 sh -c "${ctl[*]} --json status $A | grep -Eq '\"command\": ?\"stop\"'"
answers "$A" running nomonitor
answers "$B" running
wait "$susp"
suspend_ms=$(($(now_ms) - t0))
[ "$(cat "$work/suspend.rc")" -ne 0 ] ||
	fail "virsh suspend A succeeded on a stopped QEMU"
[ "$(cat "$work/suspend.rc")" -ne 124 ] ||
	fail "virsh suspend A hung for 20 s"
[ "$suspend_ms" -lt 10000 ] || fail "virsh suspend A took $(secs "$suspend_ms")"
echo "libvirt-e2e:    virsh suspend A failed in $(secs "$suspend_ms"):" \
    "$(tr '\n' ' ' <"$work/suspend.out")"
answers "$A" running nomonitor
answers "$B" running
timed timeout 20 "${V[@]}" resume "$A"
resume_ms=$ms
echo "libvirt-e2e:    virsh resume A: status $rc in $(secs "$resume_ms"): ${out//$'\n'/ }"
[ "$rc" -ne 124 ] || fail "virsh resume A hung for 20 s"
[ "$resume_ms" -lt 15000 ] || fail "virsh resume A took $(secs "$resume_ms")"
answers "$A" "$(timeout 5 "${V[@]}" domstate "$A")" nomonitor
answers "$B" running
kill -CONT "$apid"
stopped=()
if ! wait_for 150 agree "$A"; then
	fail "A: QEMU and libvirt disagree: $(cat "$work/agree")"
fi
echo "libvirt-e2e:    after SIGCONT, QEMU and libvirt agree: $(cat "$work/agree")"
# whichever it is, A is driveable again
if [ "$(qemu_state "$A")" = paused ]; then
	timeout 20 "${V[@]}" resume "$A" >/dev/null
fi
state_is "$A" running
[ "$(qemu_state "$A")" = running ] || fail "A: QEMU not running"
answers "$A" running

echo "libvirt-e2e: 5. libvirtd restarted while A and B run"
kill "$libvirtd_pid"
timeout 20 tail --pid="$libvirtd_pid" -f /dev/null ||
	fail "libvirtd did not stop"
libvirtd_pid=
start_libvirtd
for d in "$A" "$B"; do
	state_is "$d" running
	answers "$d" running
done
timeout 20 "${V[@]}" suspend "$B" >/dev/null
state_is "$B" paused
[ "$(qemu_state "$B")" = paused ] || fail "B: QEMU not paused"
timeout 20 "${V[@]}" resume "$B" >/dev/null
state_is "$B" running
[ "$(qemu_state "$B")" = running ] || fail "B: QEMU not running"

echo "libvirt-e2e: 6. qmpmuxd restarted in place while A and B run"
timeout 20 "${ctl[@]}" restart || fail "qmpmuxctl restart failed"
kill -USR2 "$qmpmuxd_pid"
wait_for 100 sh -c "[ \$(grep -c 'took over' $(printf '%q' "$work/qmpmuxd.log")) -ge 2 ]" ||
	fail "qmpmuxd did not take over twice"
kill -0 "$qmpmuxd_pid" || fail "qmpmuxd is gone"
# Both domains listed, running, and driven by virsh, QEMU agreeing
still_driven() {
	local d

	for d in "$A" "$B"; do
		listed "$d" || fail "qmpmuxctl list lost $d after $1"
		state_is "$d" running
		answers "$d" running
		timeout 20 "${V[@]}" suspend "$d" >/dev/null
		state_is "$d" paused
		[ "$(qemu_state "$d")" = paused ] ||
			fail "$d: QEMU not paused"
		timeout 20 "${V[@]}" resume "$d" >/dev/null
		state_is "$d" running
	done
}
still_driven "the restarts"
# libvirt's monitor of neither A nor B saw an end of file or an error.
# libvirt 9.0 says so only at debug level, in qemuMonitorIO: "Error on
# monitor ... name=NAME", then "Triggering EOF callback ... name=NAME"
# (or "error callback").  Not any end of file: libvirtd also logs
# virNetSocketReadWire's "End of file while reading data" for a virsh
# that went away, such as the one that start_libvirtd's wait gives up
# on while libvirtd probes QEMU's capabilities.
no_eof() {
	local d lines io='qemuMonitorIO:[0-9]+ : '

	# a check that reads an empty log would see nothing, ever
	grep -q " : qemuMonitorIOWrite:" "$work/libvirtd-monitor.debug" ||
		fail "libvirtd-monitor.debug has none of libvirt's monitor traffic"
	for d in "$A" "$B"; do
		lines=$(grep -E "$io(Error on monitor|Triggering \w+ callback) .*name=$d\$" \
		    "$work/libvirtd-monitor.debug") || continue
		fail "libvirt saw an end of file or an error on $d's monitor:" \
		    "$(cut -c1-300 <<<"$lines")"
	done
}
no_eof

echo "libvirt-e2e: 7. qmpmuxd killed with SIGKILL while A and B run"
kill -KILL "$qmpmuxd_pid"
wait_for 100 sh -c "[ \"\$(cat $(printf '%q' "$work/qmpmuxd.pid"))\" != $qmpmuxd_pid ]" ||
	fail "the fd store did not start qmpmuxd again"
wait_for 100 sh -c "[ \$(grep -c 'took over' $(printf '%q' "$work/qmpmuxd.log")) -ge 3 ]" ||
	fail "qmpmuxd did not take over after the crash"
qmpmuxd_pid=$(cat "$work/qmpmuxd.pid")
still_driven "the crash"
no_eof

echo "libvirt-e2e: 8. virsh destroy A"
timeout 20 "${V[@]}" destroy "$A" >/dev/null
state_is "$A" "shut off"
wait_for 100 sh -c "! $(printf '%q ' "${ctl[@]}") list | grep -q '^$A '"
listed "$B" || fail "qmpmuxctl list lost B"
answers "$B" running
timeout 20 "${V[@]}" suspend "$B" >/dev/null
state_is "$B" paused
timeout 20 "${V[@]}" resume "$B" >/dev/null
state_is "$B" running
timeout 20 "${V[@]}" destroy "$B" >/dev/null
state_is "$B" "shut off"
wait_for 100 sh -c "! $(printf '%q ' "${ctl[@]}") list | grep -q '^$B '"

if [ "${QMPMUX_E2E_COMPARE:-0}" = 1 ]; then
	echo "libvirt-e2e: the same SIGSTOP without qmpmuxd: C runs QEMU itself"
	define "$C" "$qemu"
	timeout 60 "${V[@]}" start "$C" >/dev/null
	state_is "$C" running
	cpid=$(cat "/run/libvirt/qemu/$C.pid")
	kill -STOP "$cpid"
	stopped+=("$cpid")
	timed timeout 45 "${V[@]}" suspend "$C"
	c_suspend_ms=$ms
	c_suspend="status $rc in $(secs "$c_suspend_ms")"
	[ "$rc" -ne 124 ] || c_suspend="timed out at $(secs "$c_suspend_ms")"
	timed timeout 45 "${V[@]}" resume "$C"
	c_resume_ms=$ms
	c_resume="status $rc in $(secs "$c_resume_ms"): ${out//$'\n'/ }"
	[ "$rc" -ne 124 ] || c_resume="timed out at $(secs "$c_resume_ms")"
	kill -CONT "$cpid"
	stopped=()
	timeout 20 "${V[@]}" destroy "$C" >/dev/null
fi

cat <<EOF
libvirt-e2e: a domain whose QEMU is stopped with SIGSTOP
    with qmpmuxd (command_timeout = 3):
        virsh suspend: failed in $(secs "$suspend_ms")
        virsh resume:  $(secs "$resume_ms")
EOF
if [ "${QMPMUX_E2E_COMPARE:-0}" = 1 ]; then
	cat <<EOF
    without qmpmuxd:
        virsh suspend: $c_suspend
        virsh resume:  $c_resume
EOF
else
	echo "    without qmpmuxd: not measured (QMPMUX_E2E_COMPARE=1 does)"
fi
for d in "${domains[@]}"; do
	timeout 20 "${V[@]}" undefine "$d" >/dev/null 2>&1 || true
done
echo "libvirt-e2e: passed"
