#!/usr/bin/env bash
# Lets this machine run arm64 (aarch64) programs under qemu's user-mode emulator, for as long as a test needs it:
# a binfmt_misc entry of the caller's own NAME, with the F (fix-binary) flag, so the kernel opens the emulator once,
# here, and uses it in every mount namespace (a plugin's rootfs, a container) where the emulator's path does not exist.
#
#   qemu-binfmt.sh register NAME QEMU   mounts binfmt_misc when the machine has not (and says so in a marker), then
#                                       registers NAME (a name of ours: an entry of that name is refused)
#   qemu-binfmt.sh unregister NAME      removes NAME; unmounts binfmt_misc when this script mounted it and no entry
#                                       is left (an entry someone else registered meanwhile keeps it mounted)
#   qemu-binfmt.sh status NAME          prints NAME's entry, or nothing
#
# binfmt_misc is machine-wide: only the entry NAME is ever written or removed. Another aarch64 entry (e.g. Debian's
# qemu-user-binfmt) is never changed: the kernel tries the newest entry first, so NAME wins while it exists and the
# other one works again once it is removed.
set -euo pipefail
DIR=/proc/sys/fs/binfmt_misc
MARKER=/run/tsmacvlan-binfmt-mounted # binfmt_misc was mounted by this script (machine-wide, like the mount)
# The ELF header of a 64-bit little-endian aarch64 executable or shared object (e_machine 183), as qemu registers it.
MAGIC='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
MASK='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'

die() { echo "qemu-binfmt.sh: $*" >&2; exit 1; }
usage() { echo "usage: qemu-binfmt.sh register NAME QEMU | unregister NAME | status NAME" >&2; exit 2; }
cmd=${1:-} name=${2:-}
[[ -n $cmd && $name =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,40}$ && $name != register && $name != status ]] || usage

entries() { find "$DIR" -mindepth 1 -maxdepth 1 ! -name register ! -name status -printf '%f\n' 2>/dev/null; }

case $cmd in
  register)
    qemu=${3:-}
    [[ -n $qemu ]] || usage
    qemu=$(realpath "$qemu")
    [[ -x $qemu ]] || die "$qemu is not an executable"
    # A dynamically linked emulator would need its libraries inside every rootfs it runs in.
    file -b "$qemu" | grep -q 'static' || die "$qemu is not statically linked: use qemu-user-static's emulator"
    if [[ ! -f $DIR/register ]]; then
      grep -qw binfmt_misc /proc/filesystems || modprobe binfmt_misc 2>/dev/null || true
      mount -t binfmt_misc binfmt_misc "$DIR" || die "cannot mount binfmt_misc on $DIR"
      : >"$MARKER"
      echo "qemu-binfmt.sh: mounted binfmt_misc on $DIR"
    fi
    [[ ! -e $DIR/$name ]] || die "an entry $name exists already ($(tr '\n' ' ' <"$DIR/$name")): unregister it first"
    printf ':%s:M::%s:%s:%s:F\n' "$name" "$MAGIC" "$MASK" "$qemu" >"$DIR/register" ||
      die "the kernel refused the entry $name (see above)"
    grep -qx enabled "$DIR/$name" || die "the entry $name is not enabled"
    ;;
  unregister)
    [[ ! -e $DIR/$name ]] || echo -1 >"$DIR/$name"
    if [[ -e $MARKER && -f $DIR/register && -z $(entries) ]]; then
      umount "$DIR" && rm -f "$MARKER" && echo "qemu-binfmt.sh: unmounted binfmt_misc (this script had mounted it)"
    fi
    ;;
  status) [[ ! -e $DIR/$name ]] || cat "$DIR/$name" ;;
  *) usage ;;
esac
