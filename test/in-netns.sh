#!/usr/bin/env bash
# Runs a command in a fresh, private network namespace: every link it creates disappears when it exits. It also gets
# a private, empty /run/docker/plugins (a mount namespace of its own), so the plugin sockets its tests make there
# cannot collide with another run's or be found by a dockerd.
set -euo pipefail
export TSMV_OUTER_NETNS
TSMV_OUTER_NETNS=$(readlink /proc/self/ns/net)
mkdir -p /run/docker/plugins
exec unshare --net --mount --propagation private -- bash -c \
  'ip link set lo up && mount -t tmpfs tsmv-plugins /run/docker/plugins && exec "$@"' in-netns "$@"
