#!/bin/sh
#
# Capture the fuzz targets' QMP seeds from the real QEMU: each stream of
# commands in fuzz/corpus/client/ is sent to a qemu-system-x86_64, and
# what QEMU writes back (its greeting, the replies with the ids of every
# JSON type, its errors, the STOP and RESUME events) is saved as a seed
# of fuzz_qmp, as the monitor reads it.  The seeds in the tree were made
# with QEMU 7.2 (Debian 12); run this again to refresh them:
#
#	fuzz/capture-corpus.sh [qemu-system-x86_64]
#
# A fuzz_qmp seed is one byte of flags (docs/FUZZING.md), then the
# stream: 0x00 here, QEMU's output read by the monitor's reader; each
# client stream is saved as a fuzz_qmp seed too, with 0x01, the strict
# reader of a client's input.
set -eu

cd "$(dirname "$0")"
QEMU=${1:-${QEMU:-qemu-system-x86_64}}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

mkdir -p corpus/qmp
for f in corpus/client/*; do
	name=$(basename "$f")
	# a VM with no machine, paused (-S), so that cont and stop are events
	"$QEMU" -machine none -nodefaults -display none -S \
	    -qmp "unix:$dir/qmp.sock,server=on,wait=off" 2>/dev/null &
	pid=$!
	i=0
	while [ ! -S "$dir/qmp.sock" ]; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || { echo "QEMU did not listen" >&2; exit 1; }
		sleep 0.1
	done
	# QEMU answers all of it, then socat gives it a second for events
	{ cat "$f"; sleep 1; } |
	    socat -t 1 - "UNIX-CONNECT:$dir/qmp.sock" >"$dir/out"
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	rm -f "$dir/qmp.sock"
	{ printf '\000'; cat "$dir/out"; } >"corpus/qmp/qemu-$name"
	{ printf '\001'; cat "$f"; } >"corpus/qmp/client-$name"
	echo "corpus/qmp/qemu-$name: $(wc -c <"$dir/out") bytes from QEMU"
done
# the greeting alone, as the monitor first reads it
head -n 1 "corpus/qmp/qemu-$name" >corpus/qmp/qemu-greeting
