#!/usr/bin/env bash
# Runs a command in a lab of its own: a fresh network namespace, and inside it a Docker Engine this lab starts (own
# data root, exec root, socket; the test image imported into it). The command runs inside that namespace too, so
# every link, address and route the tests make is there, and the host's namespace, Docker and any tsmacvlan on it are
# never touched. The lab also has a mount namespace of its own (test/lab/own-mounts.sh) with a private, empty
# /run/docker/plugins and /run/containerd: the tests' plugin sockets, 20.10's managed plugin dirs and containerd's shim
# sockets never land in the host's, where the host's Docker would find them, and go with the lab even after a SIGKILL;
# its engines' mounts and its namespaces' files are the lab's alone.
# At exit (whatever happens) the lab removes its engines, the namespaces named after its run id (the tests' switches)
# and its directory.
#
#   bash test/lab/in-lab.sh CMD...
#
# Environment: TSMV_RUN_ID (default: a fresh random one; names the namespace, the lab dir and the plugin instance),
#              TSMV_ENGINE (default 20.10; 20.10, 26.1 or 28.5: the engine test/lab/engines.sh unpacked into
#              .engines/<name>, run with its own client; the host's own Docker, if any, is never used). The lab checks
#              that the engine it started reports that version. The command gets DOCKER_HOST, TSMV_RUN_ID,
#              TSMV_LAB_NETNS, TSMV_LAB_DIR, TSMV_ENGINE_ROOT, TSMV_ENGINE, TSMV_ENGINE_BIN (the engine's binary dirs,
#              for the engines the multi-host labs start), TSMV_DOCKER (the engine's own client) and DOCKER_CONFIG.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ ${TSMV_LAB_MOUNTS:-} != private ]]; then
  TSMV_LAB_MOUNTS=private exec bash test/lab/own-mounts.sh tsmv-lab bash test/lab/in-lab.sh "$@"
fi
export TSMV_RUN_ID=${TSMV_RUN_ID:-tsmv$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')}
[[ $TSMV_RUN_ID =~ ^[a-zA-Z][a-zA-Z0-9]{1,11}$ ]] || { echo "TSMV_RUN_ID must be 2-12 letters and digits" >&2; exit 2; }
export TSMV_LAB_NETNS=$TSMV_RUN_ID TSMV_LAB_DIR=/var/tmp/$TSMV_RUN_ID
export TSMV_ENGINE_ROOT=$TSMV_LAB_DIR/e0 DOCKER_HOST=unix://$TSMV_LAB_DIR/e0/docker.sock
# The clients' configuration too is the lab's (empty): a contributor's ~/.docker/config.json (its proxies, credential
# helpers, current context) neither shapes the lab's containers nor gets written by them.
export DOCKER_CONFIG=$TSMV_LAB_DIR/client
[[ ! -e /run/netns/$TSMV_LAB_NETNS && ! -e $TSMV_LAB_DIR ]] || { echo "a lab $TSMV_RUN_ID exists already" >&2; exit 2; }

export TSMV_ENGINE=${TSMV_ENGINE:-20.10}
unpacked=$PWD/.engines/$TSMV_ENGINE
[[ -x $unpacked/usr/sbin/dockerd ]] ||
  { echo "no engine $TSMV_ENGINE in $unpacked: unpack it with bash test/lab/engines.sh $TSMV_ENGINE" >&2; exit 2; }
# The engine's own binaries only (dockerd, containerd, shims, runc, docker-init), and the client of its own version for
# the tests (TSMV_DOCKER) and the lab's scripts (DOCKER).
export TSMV_ENGINE_BIN=$unpacked/usr/bin:$unpacked/usr/sbin
export TSMV_DOCKER=$unpacked/usr/bin/docker DOCKER=$unpacked/usr/bin/docker

cleanup() {
  set +e # remove all that can be removed, whatever fails
  local root ns
  for root in "$TSMV_LAB_DIR"/*/; do
    [[ -f $root/engine.env ]] && bash test/lab/engine.sh remove "$root"
  done
  # Whatever still runs in the lab's namespace was started by this run (a plugin daemon a crashed test left): only
  # this run's processes can be in it, and they would keep the namespace alive.
  local labns p
  labns="net:[$(stat -L -c %i "/run/netns/$TSMV_LAB_NETNS" 2>/dev/null)]"
  for p in /proc/[0-9]*; do
    [[ $(readlink "$p/ns/net" 2>/dev/null) == "$labns" ]] && kill -9 "${p#/proc/}" 2>/dev/null && echo "[lab] killed ${p#/proc/}"
  done
  for ns in $(ip netns list | awk '{print $1}'); do
    if [[ $ns == "$TSMV_LAB_NETNS" || $ns == "$TSMV_RUN_ID"-* ]]; then ip netns del "$ns"; fi
  done
  rm -rf --one-file-system "$TSMV_LAB_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$TSMV_LAB_DIR"
ip netns add "$TSMV_LAB_NETNS"
ip -n "$TSMV_LAB_NETNS" link set lo up
bash test/lab/engine.sh start "$TSMV_ENGINE_ROOT" "$TSMV_LAB_NETNS" "$TSMV_ENGINE_BIN"
version=$("$DOCKER" version -f '{{.Server.Version}}')
[[ $version == "$TSMV_ENGINE".* ]] || { echo "the lab's engine is $version, not the $TSMV_ENGINE asked for" >&2; exit 1; }
echo "[lab] Docker Engine $version (client $("$DOCKER" version -f '{{.Client.Version}}'))"
bash test/lab/test-image.sh
rc=0
nsenter "--net=/run/netns/$TSMV_LAB_NETNS" -- "$@" || rc=$?
exit "$rc"
