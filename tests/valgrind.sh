#!/bin/sh
#
# Run a program under valgrind's memcheck, for make check-valgrind: as
# the LOG_COMPILER of the test programs, and as QMPMUXD, the qmpmuxd the
# tests start (tests/qmpmuxd-valgrind.sh).  Each process writes its
# report to QMPMUX_VALGRIND_LOGS/NAME.PID.log; an invalid access or a
# definite leak makes it exit 99, and make check-valgrind fails on any
# report that counts an error, whoever exited how.
#
# Children that a test program or qmpmuxd execs (QEMU, the fake QEMU,
# qmpmuxd itself) are not followed: qmpmuxd runs under its own
# valgrind by the wrapper, QEMU is not ours.
set -eu

: "${QMPMUX_VALGRIND_LOGS:?run by make check-valgrind}"
name=$(basename "$1")
exec valgrind --tool=memcheck --error-exitcode=99 \
	--leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --track-origins=no \
	--child-silent-after-fork=no --trace-children=no \
	--suppressions="${QMPMUX_VALGRIND_SUPP:-/dev/null}" \
	--log-file="$QMPMUX_VALGRIND_LOGS/$name.%p.log" "$@"
