#!/usr/bin/env bash
# Provision the end-to-end test environment: Debian's Docker Engine (docker.io,
# 20.10), the tools the e2e tests spawn, a running dockerd, and the local test
# image tsmacvlan-test/busybox:latest. Idempotent: every step checks first and
# does nothing when already done, so CI and developers may run it any number
# of times.
#
#   bash test/e2e/provision.sh
#
# Environment:
#   TSMV_DOCKERD_LOG    dockerd log file      (default /var/log/tsmacvlan-dockerd.log)
#   TSMV_DOCKERD_FLAGS  replaces the default dockerd flags below
#   TSMV_TEST_IMAGE     image name            (default tsmacvlan-test/busybox:latest)
#
# The tests must use Debian's client, /usr/bin/docker (see DOCKER below).
set -euo pipefail

DOCKER=/usr/bin/docker          # Debian docker.io client, same version as the daemon
DOCKERD=/usr/sbin/dockerd
LOG=${TSMV_DOCKERD_LOG:-/var/log/tsmacvlan-dockerd.log}
PIDFILE=/run/tsmacvlan-dockerd.pid
IMAGE=${TSMV_TEST_IMAGE:-tsmacvlan-test/busybox:latest}
PACKAGES=(docker.io docker-compose busybox-static iproute2 iputils-ping iperf3)

# dockerd flags. Nothing is *needed* on this machine kind (overlay2 on ext4,
# cgroupfs on cgroup v1 and runc all work with the defaults); these flags only
# keep dockerd from changing the host's network: no docker0 bridge, no
# iptables/NAT rules, no net.ipv4.ip_forward=1. The e2e tests only use
# macvlan / plugin networks, "none" and "host".
# shellcheck disable=SC2206
DOCKERD_FLAGS=(${TSMV_DOCKERD_FLAGS:---bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false})

now_ms() { date +%s%3N; }
T0=$(now_ms)
step_start() { STEP_NAME=$1; STEP_T=$(now_ms); echo "[provision] $STEP_NAME ..."; }
step_end() { echo "[provision] $STEP_NAME: ${1:-done} ($(( $(now_ms) - STEP_T )) ms)"; }

if [[ $(id -u) -ne 0 ]]; then
  echo "[provision] must run as root" >&2
  exit 1
fi

# ---------------------------------------------------------------- packages --
step_start "packages"
missing=()
for p in "${PACKAGES[@]}"; do
  if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true) != installed ]]; then
    missing+=("$p")
  fi
done
if (( ${#missing[@]} )); then
  echo "[provision] installing: ${missing[*]}"
  # Keep the packages' maintainer scripts from starting docker/containerd with
  # their default flags (iptables, docker0): we start dockerd ourselves.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
    trap '[[ $made_policy == 1 ]] && rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [[ $made_policy == 1 ]]; then rm -f /usr/sbin/policy-rc.d; made_policy=0; fi
  step_end "installed ${missing[*]}"
else
  step_end "all present"
fi

# ----------------------------------------------------------------- dockerd --
# The log lines of the last start attempt, without grpc chatter.
last_log() { awk '/^=== .* provision.sh starts dockerd/ { buf = "" } { buf = buf $0 "\n" } END { printf "%s", buf }' "$LOG" | grep -v 'module=grpc' | tail -n "$1" >&2; }

docker_up() { timeout 10 "$DOCKER" info >/dev/null 2>&1; }

wait_docker() { # $1 = seconds; fails early if the dockerd we started died
  local deadline=$(( $(date +%s) + $1 ))
  while (( $(date +%s) < deadline )); do
    docker_up && return 0
    if [[ -n ${2:-} ]] && ! kill -0 "$2" 2>/dev/null; then return 1; fi
    sleep 0.25
  done
  return 1
}

start_dockerd() {
  echo "[provision] starting: $DOCKERD $*  (log: $LOG)"
  mkdir -p "$(dirname "$LOG")"
  echo "=== $(date -u +%FT%TZ) provision.sh starts dockerd $*" >> "$LOG"
  # setsid + nohup: the daemon outlives this script and the shell that ran it.
  setsid nohup "$DOCKERD" "$@" >> "$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  # Generous: restoring containers after a crash calls their network plugins, which can take a while; a daemon
  # that dies returns at once instead.
  wait_docker 180 "$(cat "$PIDFILE")"
}

step_start "dockerd"
if docker_up; then
  step_end "already answering"
else
  running=$(pidof dockerd || true) # pidof skips zombies: a just-killed daemon may linger as one
  if [[ -n $running ]]; then
    # A dockerd exists but does not answer (yet): give it time, never kill it.
    echo "[provision] dockerd (pid $running) is running but not answering; waiting"
    wait_docker 60 || { echo "[provision] dockerd pid $running never answered" >&2; exit 1; }
    step_end "came up"
  else
    # A stale socket or pidfile from a dead daemon would make dockerd refuse to start.
    rm -f /var/run/docker.pid /var/run/docker.sock
    if start_dockerd "${DOCKERD_FLAGS[@]}"; then
      step_end "started, pid $(cat "$PIDFILE")"
    else
      echo "[provision] dockerd did not come up; last log lines:" >&2
      last_log 30
      exit 1
    fi
  fi
fi
"$DOCKER" version --format '[provision] client {{.Client.Version}} (API {{.Client.APIVersion}}), server {{.Server.Version}} (API {{.Server.APIVersion}})'
"$DOCKER" info --format '[provision] storage={{.Driver}} cgroup={{.CgroupDriver}}/v{{.CgroupVersion}} ipv4-forwarding={{.IPv4Forwarding}}'
if pid=$(pidof -s dockerd); then
  args=$(tr '\0' ' ' < "/proc/$pid/cmdline")
  if [[ $args != *--iptables=false* ]]; then
    echo "[provision] WARNING: the running dockerd ($args) was not started by this script and may manage iptables/docker0" >&2
  fi
fi

# -------------------------------------------------------------- test image --
step_start "image $IMAGE"
BUSYBOX=/bin/busybox
bb_sum=$(sha256sum "$BUSYBOX" | cut -d' ' -f1)
have_sum=$("$DOCKER" image inspect -f '{{index .Config.Labels "tsmacvlan.busybox.sha256"}}' "$IMAGE" 2>/dev/null || true)
if [[ $have_sum == "$bb_sum" ]]; then
  step_end "present"
else
  [[ -n $have_sum ]] && echo "[provision] rebuilding: busybox changed"
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
  cat > "$root/usr/share/udhcpc/default.script" <<'EOF'
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
EOF
  chmod 755 "$root/usr/share/udhcpc/default.script"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -c . | \
    "$DOCKER" import \
      --change 'CMD ["/bin/sh"]' \
      --change 'ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin' \
      --change "LABEL tsmacvlan.busybox.sha256=$bb_sum" \
      - "$IMAGE" >/dev/null
  rm -rf "$root"; trap - EXIT
  step_end "built ($("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE") bytes)"
fi

echo "[provision] ready in $(( $(now_ms) - T0 )) ms; tests use DOCKER=$DOCKER"
