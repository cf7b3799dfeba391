#!/bin/sh
# qmpmuxd under valgrind, for the tests of make check-valgrind: the
# tests start QMPMUXD as a program, so this is that program.
exec "$(dirname "$0")/valgrind.sh" "${QMPMUX_VALGRIND_QMPMUXD:?}" "$@"
