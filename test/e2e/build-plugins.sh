#!/usr/bin/env bash
# The managed plugins the e2e tests install, built by an engine of our own (ENGINE_DIR, removed on exit) for
# test/e2e/provision.sh, which runs this in a mount namespace of its own (test/lab/own-mounts.sh):
# - plugin/build from this tree (create.sh --reuse: no build when it holds the export of the same inputs);
# - plugin/build-previous, the version before this one, built from its own commit PREVIOUS by its own create.sh, for
#   test/e2e/upgrade.test.ts (kept while PREVIOUS is the same). Its tree has no node_modules: it gets the patched
#   netlink binding npm ci built here.
#
#   bash test/e2e/build-plugins.sh ENGINE_DIR BUILD_ID PREVIOUS
set -euo pipefail
[[ $# -eq 3 ]] || { echo "usage: build-plugins.sh ENGINE_DIR BUILD_ID PREVIOUS" >&2; exit 2; }
engine=$1 id=$2 previous=$3
repo=$(cd "$(dirname "$0")/../.." && pwd)
lab=$repo/test/lab
tree=
trap 'bash "$lab/engine.sh" remove "$engine"; [[ -z $tree ]] || rm -rf "$tree"' EXIT
trap 'exit 143' TERM INT
now_ms() { date +%s%3N; }

bash "$lab/engine.sh" start "$engine" - >/dev/null
export DOCKER=$repo/.engines/20.10/usr/bin/docker DOCKER_HOST=unix://$engine/docker.sock DOCKER_CONFIG=$engine/client
t=$(now_ms)
TSMACVLAN_BUILD_PREFIX=tsmv-pkg- bash "$repo/plugin/create.sh" --reuse "$id:latest"
echo "[provision] plugin/build ready ($(( $(now_ms) - t )) ms)"

previous_dir=$repo/plugin/build-previous
if [[ $(cat "$previous_dir/.commit" 2>/dev/null) == "$previous" && -d $previous_dir/rootfs ]]; then
  echo "[provision] previous version's plugin ($previous): present"
  exit 0
fi
t=$(now_ms)
tree=$(mktemp -d /tmp/tsmv-previous.XXXXXX)
git -C "$repo" archive "$previous" | tar -x -C "$tree" ||
  { echo "[provision] commit $previous is not in this clone (a shallow clone?): git fetch --unshallow" >&2; exit 1; }
mkdir -p "$tree/node_modules/netlink/build/Release"
cp "$repo/node_modules/netlink/build/Release/netlink_binding.node" "$tree/node_modules/netlink/build/Release/"
rm -rf "$previous_dir"
TSMACVLAN_BUILD_PREFIX=tsmv-prev- TSMACVLAN_BUILD_DIR=$previous_dir \
  TSMACVLAN_STATE_SOURCE=$engine/prev-state TSMACVLAN_TLS_SOURCE=$engine/prev-tls \
  bash "$tree/plugin/create.sh" "tsmv-prev-$id:latest"
echo "$previous" > "$previous_dir/.commit"
echo "[provision] previous version's plugin ($previous): plugin/build-previous ready ($(( $(now_ms) - t )) ms)"
