#!/bin/sh
# The <emulator> of a libvirt domain: libvirtd runs the emulator with a
# cleared environment, so this gives qmpmux-qemu(8) its variables and
# runs it.  Add QMPMUX_LISTEN_DIR=/run/qmpmux/vm for a read-only socket
# per VM.  Upgrading QEMU means touching this file; see qmpmux-qemu(8).
export QMPMUX_QEMU=/usr/bin/qemu-system-x86_64 QMPMUX_CONTROL=/run/qmpmux/control.sock; exec /usr/local/bin/qmpmux-qemu "$@"
