#!/usr/bin/env bash
# A Docker Engine the test suite owns: its own data root, exec root, socket, pid file and (empty) config file, all
# under ROOT, started inside the network namespace NETNS (`-` for the caller's: the provisioning's build engine), from
# the engine binaries in BINDIR, a directory or a PATH-like list of them searched first for dockerd, containerd and
# runc (by default the 20.10 that test/lab/engines.sh unpacked into .engines/20.10; never the host's own Docker).
#
#   engine.sh start ROOT NETNS [BINDIR]   start it (NETNS and BINDIR are kept in ROOT/engine.env for restarts)
#   engine.sh restart ROOT                start it again as it was started (after a kill)
#   engine.sh kill ROOT                   SIGKILL its dockerd and the containerd that dockerd started, as a crash would
#   engine.sh remove ROOT                 remove its containers, stop it, unmount and delete ROOT
#
# It only ever signals the pid in ROOT/dockerd.pid (after checking that process is a dockerd of ROOT) and processes
# whose command line names ROOT's own containerd socket: never a process it did not start.
set -euo pipefail
UNPACKED=$(cd "$(dirname "$0")/../.." && pwd)/.engines/20.10
DOCKER=${DOCKER:-$UNPACKED/usr/bin/docker}
cmd=${1:-} root=${2:-}
[[ -n $cmd && -n $root ]] || { echo "usage: engine.sh start|restart|kill|remove ROOT [NETNS [BINDIR]]" >&2; exit 2; }
root=$(realpath -m "$root")
sock=$root/docker.sock pidfile=$root/dockerd.pid log=$root/dockerd.log

say() { echo "[engine $root] $*" >&2; }

# The dockerd pid of this engine, if it is alive and really ours (a pid file may outlive its process).
engine_pid() {
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && tr "\\0" " " 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "--pidfile $pidfile " || return 1
  [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
  echo "$pid"
}

# Processes of this engine's containerd (the daemon and its shims name its socket on their command lines).
containerd_pids() {
  local address=$root/exec/containerd/containerd.sock p
  for p in /proc/[0-9]*; do
    tr "\\0" " " 2>/dev/null < "$p/cmdline" | grep -qF -- "$address" && echo "${p#/proc/}"
  done
  return 0
}

gone() { # pids...: true once none of them is alive (zombies count as gone)
  local p
  for p in "$@"; do
    [[ -e /proc/$p && $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]] && return 1
  done
  return 0
}

wait_gone() { # seconds pids...
  local deadline=$(( $(date +%s) + $1 )); shift
  until gone "$@"; do (( $(date +%s) < deadline )) || return 1; sleep 0.2; done
}

start() {
  # shellcheck source=/dev/null
  source "$root/engine.env"
  if engine_pid >/dev/null; then say "already running (pid $(engine_pid))"; return 0; fi
  mkdir -p "$root/data" "$root/exec"
  rm -f "$sock" "$pidfile" "$root/exec/containerd/containerd.pid" # stale after a kill
  local enter=() dockerd
  [[ $NETNS == - ]] || enter=(nsenter "--net=/run/netns/$NETNS" --)
  dockerd=$(PATH=$BINDIR command -v dockerd) ||
    { say "no dockerd in $BINDIR: unpack the engines with bash test/lab/engines.sh"; return 1; }
  # Never the host's /etc/docker/daemon.json. 20.10 also keeps an identity key, by default in /etc/docker/key.json
  # (created when missing): under ROOT instead. Later engines have none, and refuse the setting.
  if [[ ! -f $root/daemon.json ]]; then
    if [[ $("$dockerd" --version) == "Docker version 20."* ]]; then
      printf '{"deprecated-key-path": "%s"}\n' "$root/key.json" > "$root/daemon.json"
    else
      echo '{}' > "$root/daemon.json"
    fi
  fi
  echo "=== $(date -u +%FT%TZ) engine.sh starts dockerd in netns $NETNS from $BINDIR" >> "$log"
  # setsid: the engine outlives the test process that (re)started it; the lab's clean-up stops it.
  # The engine's own binaries first: containerd, its shims, runc and docker-init are found on this PATH.
  PATH="$BINDIR:$PATH" setsid "${enter[@]}" "$dockerd" --config-file "$root/daemon.json" \
    --data-root "$root/data" --exec-root "$root/exec" -H "unix://$sock" --pidfile "$pidfile" \
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    >> "$log" 2>&1 < /dev/null &
  local child=$! deadline=$(( $(date +%s) + 180 )) # restoring containers calls their plugins: it can take a while
  until timeout 10 "$DOCKER" -H "unix://$sock" version > /dev/null 2>&1; do
    if gone "$child" || (( $(date +%s) >= deadline )); then
      say "dockerd did not come up; its last log lines:"
      grep -v 'module=grpc' "$log" | tail -n 30 >&2
      return 1
    fi
    sleep 0.25
  done
  say "up: pid $(engine_pid), DOCKER_HOST=unix://$sock"
}

kill_engine() {
  local pid pids
  pid=$(engine_pid) || { say "not running"; return 0; }
  mapfile -t pids < <(echo "$pid"; containerd_pids)
  kill -9 "${pids[@]}" 2> /dev/null || true
  wait_gone 30 "${pids[@]}" || { say "pids ${pids[*]} survived SIGKILL for 30 s"; return 1; }
}

stop() {
  local pid
  if pid=$(engine_pid); then
    kill -TERM "$pid"
    wait_gone 60 "$pid" || { say "dockerd $pid ignored SIGTERM for 60 s: SIGKILL"; kill_engine; }
  fi
  # Shims of containers a killed dockerd left running, and their containerd.
  local left
  mapfile -t left < <(containerd_pids)
  if (( ${#left[@]} )); then
    kill -9 "${left[@]}" 2> /dev/null || true
    wait_gone 30 "${left[@]}" || say "containerd pids ${left[*]} survived SIGKILL"
  fi
}

remove() {
  [[ -d $root ]] || return 0
  if engine_pid > /dev/null; then
    local ids
    ids=$(timeout 60 "$DOCKER" -H "unix://$sock" ps -aq 2> /dev/null || true)
    [[ -z $ids ]] || timeout 120 "$DOCKER" -H "unix://$sock" rm -f -v $ids > /dev/null 2>&1 || true
  fi
  stop
  # Docker 20.10 keeps a managed plugin's runtime dir in the shared /run/docker/plugins/<plugin id> (ids are unique).
  local dirs=() id
  for id in "$root"/data/plugins/*/; do
    id=$(basename "$id")
    [[ $id =~ ^[0-9a-f]{64}$ && -d /run/docker/plugins/$id ]] && dirs+=("/run/docker/plugins/$id")
  done
  # Mounts dockerd left under ROOT (overlay layers, netns files, plugin rootfs) and in those dirs, deepest first.
  findmnt -rn -o TARGET | { grep -F -e "$root/" "${dirs[@]/#/-e}" || true; } | sort -r |
    while read -r m; do umount -l "$m" || true; done
  (( ${#dirs[@]} == 0 )) || rm -rf --one-file-system "${dirs[@]}"
  rm -rf --one-file-system "$root"
}

case $cmd in
  start)
    mkdir -p "$root"
    printf 'NETNS=%q\nBINDIR=%q\n' "${3:?start needs NETNS (- for this namespace)}" \
      "${4:-$UNPACKED/usr/bin:$UNPACKED/usr/sbin}" > "$root/engine.env"
    start
    ;;
  restart) start ;;
  kill) kill_engine ;;
  remove) remove ;;
  *) echo "engine.sh: unknown command '$cmd' (start, restart, kill, remove)" >&2; exit 2 ;;
esac
