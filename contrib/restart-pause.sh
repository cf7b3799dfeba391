#!/bin/bash
#
# How long clients wait across a restart in place, and across a crash:
# N VMs (default 200) on one fake QEMU process (tests/fakeqemu --many),
# two negotiated clients each, every one with a query-status in flight
# when SIGUSR2 comes, then again when qmpmuxd is killed with SIGKILL
# under a stand-in for systemd's fd store (tests/fakestore, which
# starts it again at once with the stored sockets); prints when each
# got its reply, against round trips before and after.  Figures, not a
# test.
#
#     contrib/restart-pause.sh BUILDDIR [N]
#
# Needs python3 (a client that holds 2N connections open).
set -euo pipefail

build=$(cd "${1:?usage: restart-pause.sh BUILDDIR [N]}" && pwd)
n=${2:-200}
work=$(mktemp -d /tmp/qmpmux-pause.XXXXXX)
pids=()
# Stop what was started; if it failed, show the ends of the logs on
# stderr first.
cleanup() {
	local status=$?

	if [ "$status" -ne 0 ]; then
		echo "restart-pause: failed; the logs:" >&2
		tail -n 30 "$work/fake.log" "$work/qmpmuxd.log" >&2 2>/dev/null ||
			true
	fi
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
	exit "$status"
}
trap cleanup EXIT

wait_socket() {
	local i
	for i in $(seq 1 100); do
		[ -S "$1" ] && return 0
		sleep 0.05
	done
	echo "restart-pause: $1 did not appear" >&2
	exit 1
}

mkdir "$work/f"
"$build/tests/fakeqemu" --many "$n" "$work/f" >"$work/fake.log" 2>&1 &
pids+=($!)
wait_socket "$work/f/$((n - 1)).sock"
{
	echo "[global]"
	for i in $(seq 0 $((n - 1))); do
		echo "[vm v$i]"
		echo "upstream = connect:$work/f/$i.sock"
		echo "[listener v$i $work/v$i.sock]"
	done
} >"$work/qmpmuxd.conf"
"$build/tests/fakestore" "$work/notify.sock" "$work/qmpmuxd.pid" -- \
    "$build/qmpmuxd" -d -f "$work/qmpmuxd.conf" \
    --control "$work/control.sock" 2>"$work/qmpmuxd.log" &
pids+=($!)
wait_socket "$work/v$((n - 1)).sock"
pid=$(cat "$work/qmpmuxd.pid")

python3 - "$work" "$n" "$pid" <<'PY'
import os, socket, sys, time
work, n, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
conns = []
for i in range(n):
    for k in range(2):
        s = socket.socket(socket.AF_UNIX)
        s.connect("%s/v%d.sock" % (work, i))
        f = s.makefile("rwb", buffering=0)
        f.readline()
        f.write(b'{"execute":"qmp_capabilities"}\n')
        f.readline()
        conns.append(f)
def rounds():
    worst = 0
    t0 = time.time()
    for j, f in enumerate(conns):
        a = time.time()
        f.write(b'{"execute":"query-status","id":%d}\n' % j)
        assert (b'"id": %d}' % j) in f.readline()
        worst = max(worst, time.time() - a)
    return worst * 1e3, (time.time() - t0) * 1e3
w, a = rounds()
print("before:  worst round trip %.2f ms; %d clients one after the other "
      "in %.1f ms" % (w, len(conns), a))
for j, f in enumerate(conns):
    f.write(b'{"execute":"query-status","id":"r%d"}\n' % j)
t = time.time()
os.kill(pid, 12)
last = 0
for j, f in enumerate(conns):
    assert (b'"id": "r%d"}' % j) in f.readline()
    last = time.time() - t
print("restart: %d commands in flight at SIGUSR2, every reply within "
      "%.1f ms of it" % (len(conns), last * 1e3))
w, a = rounds()
print("after:   worst round trip %.2f ms; %d clients in %.1f ms" %
      (w, len(conns), a))
# A crash keeps the commands still queued in qmpmuxd (max_inflight 1:
# the second client's of each VM, if the first's was not yet answered)
# in their clients' spools; what it can still lose is a reply read from
# QEMU and not yet written: read every connection at once for 2 s, and
# count.
import select
for j, f in enumerate(conns):
    f.write(b'{"execute":"query-status","id":"k%d"}\n' % j)
t = time.time()
os.kill(pid, 9)
last = 0
bufs = {f.fileno(): b"" for f in conns}
index = {f.fileno(): j for j, f in enumerate(conns)}
waiting = set(bufs)
while waiting and time.time() - t < 2:
    r, _, _ = select.select(list(waiting), [], [], 0.05)
    for fd in r:
        bufs[fd] += os.read(fd, 65536)
        if b"\n" in bufs[fd]:
            assert (b'"id": "k%d"}' % index[fd]) in bufs[fd]
            waiting.discard(fd)
            last = time.time() - t
lost = [index[fd] for fd in waiting]
print("crash:   %d commands at SIGKILL: %d answered, the last %.1f ms "
      "after it; %d lost" % (len(conns), len(conns) - len(lost),
      last * 1e3, len(lost)))
conns = [f for j, f in enumerate(conns) if j not in lost]
w, a = rounds()
print("after:   worst round trip %.2f ms; %d clients in %.1f ms" %
      (w, len(conns), a))
PY
grep -E "received SIGUSR2|restarting:|took over|fdstore:" \
    "$work/qmpmuxd.log"
