#!/usr/bin/env bash
# Runs CMD in a mount namespace of its own in which /run/docker/plugins and /run/containerd are private, empty tmpfs
# (sources NAME-plugins and NAME-containerd): what the suite's engines and plugins put there (the tests' plugin
# sockets, 20.10's managed plugin dirs, the shim sockets containerd always makes under /run/containerd/s) never lands
# in the host's, where the host's Docker and containerd look, and goes with the namespace, even after a SIGKILL.
#
#   bash test/lab/own-mounts.sh NAME CMD...
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: own-mounts.sh NAME CMD..." >&2; exit 2; }
name=$1
shift
mkdir -p /run/docker/plugins /run/containerd
exec unshare --mount --propagation private -- bash -c \
  'mount -t tmpfs "$0-plugins" /run/docker/plugins && mount -t tmpfs "$0-containerd" /run/containerd && exec "$@"' \
  "$name" "$@"
