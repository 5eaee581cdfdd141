#!/usr/bin/env bash
# Runs a command in a fresh, private network namespace: every link it creates disappears when it exits.
set -euo pipefail
export TSMV_OUTER_NETNS
TSMV_OUTER_NETNS=$(readlink /proc/self/ns/net)
exec unshare --net -- bash -c 'ip link set lo up && exec "$@"' in-netns "$@"
