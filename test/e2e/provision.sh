#!/usr/bin/env bash
# Provision the end-to-end test environment: Debian's Docker Engine (docker.io, 20.10) and the tools the e2e tests
# spawn, and the managed plugin's rootfs in plugin/build. It starts no dockerd that outlives it and never uses the
# host's: the e2e suite runs in a lab of its own (test/lab/in-lab.sh starts its engine and imports the test image).
# Idempotent: every step checks first and does nothing when already done.
#
#   bash test/e2e/provision.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

# etcd-server, etcd-client: the cluster IPAM's etcd members (integration, e2e); openssl: their TLS test certificates;
# dnsmasq-base: the LAN's DHCP server in the DHCP tests; tcpdump: the DHCP bench's capture of a lease's frames.
PACKAGES=(docker.io docker-compose busybox-static iproute2 iputils-ping iperf3 util-linux etcd-server etcd-client openssl dnsmasq-base tcpdump)

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
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
  if [[ $made_policy == 1 ]]; then rm -f /usr/sbin/policy-rc.d; made_policy=0; fi
  step_end "installed ${missing[*]}"
else
  step_end "all present"
fi

# ------------------------------------------------------ managed plugin rootfs --
# managed-plugin.test.ts and swarm.test.ts install the plugin from plugin/build (create.sh --reuse). Building it needs
# the npm registry, which the lab's namespace cannot reach, so it is built here by an engine of our own in this
# namespace (no docker0, no iptables, nothing of the host's Docker), removed right after. --reuse: no build when
# plugin/build already holds the export of the same inputs.
step_start "plugin rootfs"
BUILD_ID=tsmvb$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
BUILD_ENGINE=/var/tmp/$BUILD_ID
trap 'bash "$HERE/../lab/engine.sh" remove "$BUILD_ENGINE"' EXIT
bash "$HERE/../lab/engine.sh" start "$BUILD_ENGINE" - >/dev/null
DOCKER_HOST=unix://$BUILD_ENGINE/docker.sock TSMACVLAN_BUILD_PREFIX=tsmv-pkg- \
  bash "$HERE/../../plugin/create.sh" --reuse "$BUILD_ID:latest"
bash "$HERE/../lab/engine.sh" remove "$BUILD_ENGINE"
trap - EXIT
step_end "plugin/build ready"

echo "[provision] ready in $(( $(now_ms) - T0 )) ms"
