#!/bin/bash
#
# End to end with the real libvirtd: a domain whose <emulator> is the
# qmpmux-qemu shim, started, suspended, resumed, asked a QMP command
# and destroyed through virsh, while qmpmuxd serves its monitor.
#
#     tests/libvirt-e2e.sh BUILDDIR
#
# It runs its own virtlogd, libvirtd and qmpmuxd, as root, with
# /etc/libvirt/qemu.conf set for a container (root, no security
# driver, no cgroups, no namespaces) and put back afterwards, and
# TCG.  It refuses to run next to a libvirtd already running.  Every
# wait is bounded; whatever it started is stopped, whatever fails.
set -euo pipefail

build=$(cd "${1:?usage: libvirt-e2e.sh BUILDDIR}" && pwd)
dom=qmpmux-e2e
V=(virsh -q -c qemu:///system)
conf=/etc/libvirt/qemu.conf
work=$(mktemp -d /tmp/qmpmux-e2e.XXXXXX)
pids=()

fail() {
	echo "libvirt-e2e: $*" >&2
	exit 1
}

cleanup() {
	local status=$?

	if [ -S /run/libvirt/libvirt-sock ]; then
		timeout 20 "${V[@]}" destroy "$dom" >/dev/null 2>&1 || true
		timeout 20 "${V[@]}" undefine "$dom" >/dev/null 2>&1 || true
	fi
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
	if [ "$status" -ne 0 ]; then
		echo "libvirt-e2e: failed; the logs:" >&2
		tail -n 20 "$work"/*.log /var/log/libvirt/qemu/"$dom".log \
		    /var/log/libvirt/libvirtd.log 2>/dev/null >&2 || true
	fi
	rm -rf "$work"
	exit "$status"
}
trap cleanup EXIT

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

# The domain's state must be $1.
state_is() {
	local s

	s=$(timeout 20 "${V[@]}" domstate "$dom")
	[ "$s" = "$1" ] || fail "domstate: $s, expected $1"
}

[ "$(id -u)" -eq 0 ] || fail "run as root"
for c in libvirtd virtlogd virsh socat; do
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

: >"$work/qmpmuxd.conf"
"$build/qmpmuxd" -d -f "$work/qmpmuxd.conf" --control "$work/control.sock" \
    >"$work/qmpmuxd.log" 2>&1 &
pids+=($!)
wait_for 100 test -S "$work/control.sock"

cat >"$work/shim.sh" <<EOF
#!/bin/sh
export QMPMUX_QEMU=$(command -v qemu-system-x86_64) QMPMUX_CONTROL=$work/control.sock QMPMUX_LISTEN_DIR=$work; exec $build/qmpmux-qemu "\$@"
EOF
chmod 755 "$work/shim.sh"

virtlogd >"$work/virtlogd.log" 2>&1 &
pids+=($!)
libvirtd >"$work/libvirtd.log" 2>&1 &
pids+=($!)
wait_for 300 timeout 5 "${V[@]}" version

cat >"$work/dom.xml" <<EOF
<domain type='qemu'>
  <name>$dom</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices>
    <emulator>$work/shim.sh</emulator>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
timeout 20 "${V[@]}" define "$work/dom.xml" >/dev/null
timeout 60 "${V[@]}" start "$dom" >/dev/null
state_is running

# the monitor is qmpmuxd's, and libvirt's pid is QEMU's
grep -q "qmpmux-qemu: vm $dom: the monitor is served by qmpmuxd" \
    "/var/log/libvirt/qemu/$dom.log" || fail "the monitor was not handed over"
pid=$(cat "/run/libvirt/qemu/$dom.pid")
[ "$(readlink "/proc/$pid/exe")" = "$(readlink -f "$(command -v \
    qemu-system-x86_64)")" ] || fail "pid $pid is not QEMU"
timeout 10 "$build/qmpmuxctl" --control "$work/control.sock" list |
    grep -q "^$dom .* ready " || fail "qmpmuxctl list has no ready $dom"

timeout 20 "${V[@]}" suspend "$dom" >/dev/null
state_is paused
timeout 20 "${V[@]}" resume "$dom" >/dev/null
state_is running
out=$(timeout 20 "${V[@]}" qemu-monitor-command "$dom" \
    '{"execute": "query-status"}')
case $out in
*'"status":"running"'*) ;;
*) fail "qemu-monitor-command: $out" ;;
esac

# a second client, beside libvirt's, on the read-only listener
out=$(printf '%s\n' '{"execute": "qmp_capabilities"}' \
    '{"execute": "stop"}' |
    timeout 10 socat -t 5 - "UNIX-CONNECT:$work/$dom.sock")
case $out in
*'"desc": "The command stop has been disabled for this instance"'*) ;;
*) fail "read-only listener: $out" ;;
esac
state_is running

timeout 20 "${V[@]}" destroy "$dom" >/dev/null
state_is "shut off"
wait_for 100 sh -c "! '$build/qmpmuxctl' --control '$work/control.sock' \
    list | grep -q '^$dom '"
timeout 20 "${V[@]}" undefine "$dom" >/dev/null
echo "libvirt-e2e: passed"
