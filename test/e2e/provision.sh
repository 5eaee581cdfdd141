#!/usr/bin/env bash
# Provision the end-to-end test environment: the tools the e2e tests spawn, Debian 12's Docker Engine 20.10 unpacked
# into .engines/20.10 (test/lab/engines.sh: nothing installed), and the managed plugin's rootfs in plugin/build. It
# never installs, removes or upgrades a package that provides Docker, containerd or runc (it checks apt's plan before
# it installs anything), starts no dockerd that outlives it and never uses the host's: the e2e suite runs in a lab of
# its own (test/lab/in-lab.sh starts its engine and imports the test image).
# Idempotent: every step checks first and does nothing when already done.
#
#   bash test/e2e/provision.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

# etcd-server, etcd-client: the cluster IPAM's etcd members (integration, e2e); openssl: their TLS test certificates;
# dnsmasq-base: the LAN's DHCP server in the DHCP tests; tcpdump: the DHCP bench's capture of a lease's frames;
# prometheus: the server and promtool the metrics tests start on loopback (its own service is never started: see
# policy-rc.d below, and it is disabled at boot).
# systemd: its systemd-analyze checks plugin/tsmacvlan.service (a unit test).
# Compose v2 and the image registry are unpacked beside the engines (test/lab/engines.sh), not installed.
PACKAGES=(busybox-static iproute2 iputils-ping iperf3 util-linux etcd-server etcd-client openssl dnsmasq-base tcpdump systemd prometheus)

# Packages that provide Docker, containerd or runc: never installed, removed or upgraded by the suite.
DOCKER_PACKAGES='^(docker\.io|docker-ce.*|docker-cli|docker-ee.*|docker-engine|moby-.*|containerd.*|runc|crun|podman-docker)$'

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
  # apt's plan first: it may not touch a package that provides Docker, containerd or runc, whatever depends on what.
  forbidden=$(apt-get -s -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${missing[@]}" |
    awk '/^(Inst|Remv|Purg) / { print $2 }' | grep -E "$DOCKER_PACKAGES" || true)
  if [[ -n $forbidden ]]; then
    echo "[provision] installing ${missing[*]} would install, upgrade or remove $(echo $forbidden): the suite never" \
      "touches a package of Docker, containerd or runc; install the rest by hand without them" >&2
    exit 1
  fi
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
  if [[ $made_policy == 1 ]]; then rm -f /usr/sbin/policy-rc.d; made_policy=0; fi
  # Nor at the next boot: the tests start their own Prometheus on loopback.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v deb-systemd-helper >/dev/null; then
    DPKG_MAINTSCRIPT_PACKAGE=prometheus deb-systemd-helper disable prometheus.service >/dev/null 2>&1 || true
  fi
  step_end "installed ${missing[*]}"
else
  step_end "all present"
fi

# ----------------------------------------------------------------- engines --
# The engine of the build below and of the e2e suite's 20.10 runs, unpacked (the newer ones: test/run-all.sh), and
# the tools the e2e tests run beside it: Compose v2 and the image registry.
step_start "engine 20.10, compose, registry"
bash "$HERE/../lab/engines.sh" 20.10 compose registry
step_end

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
export DOCKER=$HERE/../../.engines/20.10/usr/bin/docker DOCKER_HOST=unix://$BUILD_ENGINE/docker.sock
TSMACVLAN_BUILD_PREFIX=tsmv-pkg- bash "$HERE/../../plugin/create.sh" --reuse "$BUILD_ID:latest"
step_end "plugin/build ready"

# ------------------------------------------------- the previous version's plugin --
# test/e2e/upgrade.test.ts upgrades, with containers running, from the version before this one: 0.1.0, built from its
# own commit by its own plugin/create.sh (into plugin/build-previous; kept while PREVIOUS is the same). Its tree has
# no node_modules: it gets the patched netlink binding npm ci built here.
PREVIOUS=39a3318
step_start "previous version's plugin ($PREVIOUS)"
PREVIOUS_DIR=$HERE/../../plugin/build-previous
if [[ $(cat "$PREVIOUS_DIR/.commit" 2>/dev/null) == "$PREVIOUS" && -d $PREVIOUS_DIR/rootfs ]]; then
  step_end "present"
else
  tree=$(mktemp -d /tmp/tsmv-previous.XXXXXX)
  trap 'rm -rf "$tree"; bash "$HERE/../lab/engine.sh" remove "$BUILD_ENGINE"' EXIT
  git -C "$HERE/../.." archive "$PREVIOUS" | tar -x -C "$tree" ||
    { echo "[provision] commit $PREVIOUS is not in this clone (a shallow clone?): git fetch --unshallow" >&2; exit 1; }
  mkdir -p "$tree/node_modules/netlink/build/Release"
  cp "$HERE/../../node_modules/netlink/build/Release/netlink_binding.node" "$tree/node_modules/netlink/build/Release/"
  rm -rf "$PREVIOUS_DIR"
  TSMACVLAN_BUILD_PREFIX=tsmv-prev- TSMACVLAN_BUILD_DIR=$PREVIOUS_DIR \
    TSMACVLAN_STATE_SOURCE=$BUILD_ENGINE/prev-state TSMACVLAN_TLS_SOURCE=$BUILD_ENGINE/prev-tls \
    bash "$tree/plugin/create.sh" "tsmv-prev-$BUILD_ID:latest"
  echo "$PREVIOUS" > "$PREVIOUS_DIR/.commit"
  rm -rf "$tree"
  step_end "plugin/build-previous ready"
fi
bash "$HERE/../lab/engine.sh" remove "$BUILD_ENGINE"
trap - EXIT

echo "[provision] ready in $(( $(now_ms) - T0 )) ms"
