#!/bin/bash
# vmrun.sh CMD...  Run CMD as root, in the current directory, in a throwaway qemu VM booting
# Debian's stock kernel (8021q, macvlan, dummy, veth as modules; the host kernel may lack them).
# The guest's / is the host's /, read-only over 9p under a tmpfs overlay: the guest sees every
# host file (node, node_modules, /tmp...) and can write anywhere, but its writes are discarded.
# One arg = shell string; several = argv. CMD's stdout+stderr stream to stdout; stdin is /dev/null.
# Exit: CMD's status; 124 timed out; 125 the VM failed (no status came back); 2 usage; 128+N on signal N.
# Env: TSMACVLAN_VM_DIR  cache (kernel, initramfs; prepared on first use), default /var/cache/tsmacvlan-vm
#      VMRUN_OUT         host dir, mounted read-write at the same path in the guest (results out); exported there
#      VMRUN_ENV         names of host env vars to pass to CMD, e.g. "CI DEBUG"
#      VMRUN_MEM (2G)  VMRUN_CPUS (2)  VMRUN_TIMEOUT (900 s)  VMRUN_ACCEL (tcg; kvm where it can run a stock kernel)
# The guest has no network device: nothing in it can touch a host interface.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 CMD..." >&2; exit 2; }
D=$(realpath -m "${TSMACVLAN_VM_DIR:-/var/cache/tsmacvlan-vm}")  # absolute: the guest finds its modules there too
INITRD=$D/initrd.v1.img  # bump the version when setup changes: caches made by an older script are rebuilt

setup() {  # once per cache dir: host packages, stock kernel unpacked under $D (host /boot untouched), initramfs
  apt-get update -qq
  local pkgs=(qemu-system-x86 busybox-static kmod xz-utils)  # busybox must be static: it runs in the initramfs
  dpkg -s "${pkgs[@]}" >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
  rm -rf "$D"/{deb,kernel,initrd*}; mkdir -p "$D/deb"; cd "$D/deb"
  local dl=(apt-get download -q -o APT::Sandbox::User=root)  # apt's _apt user could not write here
  "${dl[@]}" linux-image-amd64  # metapackage: its dependency names the current kernel
  local pkg; pkg=$(dpkg-deb -f linux-image-amd64_*.deb Depends | grep -o 'linux-image-[^ ,]*' | head -1)
  "${dl[@]}" "$pkg"
  dpkg -x "$pkg"_*.deb "$D/kernel"; cd "$D"; rm -rf deb
  if [ -d kernel/usr/lib/modules ]; then mkdir -p kernel/lib && mv kernel/usr/lib/modules kernel/lib/; fi
  local kv; kv=$(ls kernel/lib/modules); local K=kernel/lib/modules/$kv/kernel
  rm -rf "$K"/{sound,drivers/{gpu,media,scsi,usb,infiniband,iio,staging,net/wireless,net/ethernet}}  # unused here
  depmod -b "$D/kernel" "$kv"  # normally done by the package's postinst
  # An uncompressed ELF kernel boots straight at its PVH entry: saves ~4 s of emulated decompression per run.
  local z=kernel/boot/vmlinuz-$kv off; off=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$z" | head -1 | cut -d: -f1) || true
  if grep -q '^CONFIG_PVH=y' "kernel/boot/config-$kv" && [ -n "$off" ]; then
    xz -dc --single-stream < <(tail -c +$((off + 1)) "$z") > kernel/boot/vmlinux || rm -f kernel/boot/vmlinux; fi
  local I; I=$(mktemp -d); mkdir -p "$I"/{bin,dev,mods,lower,rw,newroot}
  cp /bin/busybox "$I/bin/"
  modprobe -d "$D/kernel" -S "$kv" --show-depends -a virtio_pci 9pnet_virtio 9p overlay |
    awk '$1=="insmod" && !s[$2]++ {print $2}' | while read -r m; do
      cp "$m" "$I/mods/"; basename "$m" >> "$I/mods/order"; done
  # Stage 1: host / (9p, read-only) under a tmpfs overlay, then the per-run stage 2 from the run dir.
  cat > "$I/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin; export PATH=/bin
mount -t devtmpfs dev /dev; exec </dev/console >/dev/console 2>&1
for m in $(cat /mods/order); do insmod /mods/$m; done
o=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o $o,ro,cache=loose host /lower
mount -t tmpfs -o mode=755 rw /rw; mkdir /rw/u /rw/w
mount -t overlay -o lowerdir=/lower,upperdir=/rw/u,workdir=/rw/w root /newroot
mkdir -p /newroot/.vmrun; mount -t 9p -o $o run /newroot/.vmrun
exec switch_root /newroot /bin/bash /.vmrun/boot
EOF
  chmod +x "$I/init"
  (cd "$I" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > initrd.tmp
  rm -rf "$I"; mv initrd.tmp "$INITRD"  # last: its presence marks the cache ready
}

mkdir -p "$D"
if [ ! -f "$INITRD" ]; then  # lock: concurrent first runs must not prepare the cache together
  ( flock 9; [ -f "$INITRD" ] || (setup) >&2 ) 9>"$D/lock"
fi
KV=$(ls "$D/kernel/lib/modules")
K=$D/kernel/boot/vmlinux; [ -f "$K" ] || K=$D/kernel/boot/vmlinuz-$KV
OUT=
if [ -n "${VMRUN_OUT:-}" ]; then mkdir -p "$VMRUN_OUT"; OUT=$(realpath "$VMRUN_OUT"); fi
RUN=$(mktemp -d "$D/run.XXXXXX"); trap 'rm -rf "$RUN"' EXIT

{ printf 'cd %q || exit 1\n' "$PWD"
  for v in ${VMRUN_ENV:-}; do [ -z "${!v+x}" ] || printf 'export %s=%q\n' "$v" "${!v-}"; done
  if [ $# -eq 1 ]; then printf '%s\n' "$1"; else printf '%q ' "$@"; echo; fi; } > "$RUN/cmd"
# Stage 2, in the guest with the host's userland: kernel filesystems, modules, out dir, CMD.
{ printf 'KV=%q MODS=%q OUT=%q\n' "$KV" "$D/kernel/lib/modules/$KV" "$OUT"; cat <<'EOF'
off() { sync; printf '\0' | dd of=/dev/port bs=1 seek=244 status=none; }  # isa-debug-exit: qemu quits, no reboot noise
stty -onlcr  # serial console: \n, not \r\n
export HOME=/root TERM=dumb LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin VMRUN_GUEST=1
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs shm /dev/shm
mount -t tmpfs run /run  # hide the host's /run (docker.sock...)
mkdir -p /lib/modules; rm -rf "/lib/modules/$KV"; ln -s "$MODS" "/lib/modules/$KV"
hostname vmrun; ip link set lo up
modprobe -a 8021q macvlan veth; modprobe dummy numdummies=0  # else loading dummy creates dummy0
if [ -n "$OUT" ]; then
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out "$OUT" || off
  export VMRUN_OUT=$OUT
fi
bash /.vmrun/cmd </dev/null 2>&1 | cat  # pipe: CMD sees no tty, as under CI
echo "${PIPESTATUS[0]}" > /.vmrun/rc; off
EOF
} > "$RUN/boot"

share() { printf 'local,path=%s,mount_tag=%s,security_model=none%s' "${1//,/,,}" "$2" "${3:-}"; }
args=(-virtfs "$(share / host ,readonly=on,multidevs=remap)" -virtfs "$(share "$RUN" run)")
[ -z "$OUT" ] || args+=(-virtfs "$(share "$OUT" out)")
timeout -k 10 "${VMRUN_TIMEOUT:-900}" qemu-system-x86_64 -accel "${VMRUN_ACCEL:-tcg}" -cpu max \
  -smp "${VMRUN_CPUS:-2}" -m "${VMRUN_MEM:-2G}" -nodefaults -nic none -display none -no-reboot \
  -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
  -kernel "$K" -initrd "$INITRD" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off" "${args[@]}" </dev/null & q=$!
# timeout puts qemu in its own process group, out of reach of ^C: pass signals on, so no VM outlives us.
for s in INT TERM HUP; do trap 'kill "$q" 2>/dev/null; exit '$((128 + $(kill -l $s))) $s; done
rc=0; wait "$q" || rc=$?
[ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || { echo "vmrun: timed out after ${VMRUN_TIMEOUT:-900} s" >&2; exit 124; }
[ -s "$RUN/rc" ] || { echo "vmrun: the guest reported no exit status" >&2; exit 125; }
exit "$(cat "$RUN/rc")"
