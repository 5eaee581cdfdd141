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
# policy-rc.d below, and it is disabled at boot); g++-aarch64-linux-gnu: the cross compilers of
# crossbuild-essential-arm64 (without dpkg-cross's Perl), for the arm64 plugin's native parts.
# systemd: its systemd-analyze checks plugin/tsmacvlan.service (a unit test).
# Compose v2 and the image registry are unpacked beside the engines (test/lab/engines.sh), not installed.
PACKAGES=(busybox-static iproute2 iputils-ping iperf3 util-linux etcd-server etcd-client openssl dnsmasq-base tcpdump systemd prometheus g++-aarch64-linux-gnu)

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
# network namespace (no docker0, no iptables, nothing of the host's Docker), removed right after, in a mount namespace
# of its own (test/lab/own-mounts.sh: 20.10 keeps a managed plugin's runtime dir in /run/docker/plugins, where the
# host's dockerd looks for plugins, and containerd its shims' sockets in /run/containerd). --reuse: no build when
# plugin/build already holds the export of the same inputs.
step_start "managed plugins"
BUILD_ID=tsmvb$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
# upgrade.test.ts upgrades from 0.1.0, built from its own commit (test/e2e/build-plugins.sh).
PREVIOUS=39a3318
bash "$HERE/../lab/own-mounts.sh" tsmv-build bash "$HERE/build-plugins.sh" "/var/tmp/$BUILD_ID" "$BUILD_ID" "$PREVIOUS"
step_end "plugin/build and plugin/build-previous ready"

# ------------------------------------------------------------- arm64 plugin --
# test/e2e/arm64.test.ts installs the arm64 plugin from plugin/build-arm64 (create.sh --arch arm64 --reuse), and
# test/arm64/run.sh runs the codecs' tests on arm64's node: both need Debian's arm64 Node and qemu's emulator, fetched
# into .cache/ (plugin/arch/fetch.sh), and the build needs the npm registry. No engine: the rootfs is assembled here.
step_start "arm64 plugin rootfs"
bash "$HERE/../../plugin/arch/rootfs.sh" --reuse arm64 "$HERE/../../plugin/build-arm64"
step_end "plugin/build-arm64 ready"

echo "[provision] ready in $(( $(now_ms) - T0 )) ms"
