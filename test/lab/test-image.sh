#!/usr/bin/env bash
# Imports the e2e test image into the engine at DOCKER_HOST: busybox-static with every applet and a udhcpc hook, no
# registry needed. Skipped when the image there is already built from this very busybox.
#
#   DOCKER_HOST=unix://... bash test/lab/test-image.sh
#
# Environment: TSMV_TEST_IMAGE (default tsmacvlan-test/busybox:latest).
set -euo pipefail
: "${DOCKER_HOST:?set DOCKER_HOST to the engine to import into (test/lab/in-lab.sh does)}"
DOCKER=${DOCKER:-$(cd "$(dirname "$0")/../.." && pwd)/.engines/20.10/usr/bin/docker}
IMAGE=${TSMV_TEST_IMAGE:-tsmacvlan-test/busybox:latest}
BUSYBOX=/bin/busybox

bb_sum=$(sha256sum "$BUSYBOX" | cut -d' ' -f1)
have_sum=$("$DOCKER" image inspect -f '{{index .Config.Labels "tsmacvlan.busybox.sha256"}}' "$IMAGE" 2>/dev/null || true)
[[ $have_sum != "$bb_sum" ]] || exit 0
root=$(mktemp -d /tmp/tsmv-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/share/udhcpc,etc,tmp,root,proc,sys,dev,run,var/run}
chmod 1777 "$root/tmp"
cp "$BUSYBOX" "$root/bin/busybox"
# Every applet (sh, ping, ip, sleep, nc, udhcpc, arping, ...) as a symlink in /bin.
for a in $("$BUSYBOX" --list); do
  [[ $a == busybox ]] || ln -sf busybox "$root/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
# udhcpc's default hook: apply the lease with ip(8).
cat > "$root/usr/share/udhcpc/default.script" <<'HOOK'
#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    ;;
esac
exit 0
HOOK
chmod 755 "$root/usr/share/udhcpc/default.script"
tar -C "$root" --numeric-owner --owner=0 --group=0 -c . |
  "$DOCKER" import \
    --change 'CMD ["/bin/sh"]' \
    --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
    --change "LABEL tsmacvlan.busybox.sha256=$bb_sum" \
    - "$IMAGE" >/dev/null
echo "[test-image] $IMAGE imported into $DOCKER_HOST ($("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE") bytes)"
