#!/usr/bin/env bash
# One suite of `npm test` (test/run-all.sh): runs its vitest command CMD with a JSON report, its output in
# DIR/NAME.log (and on the terminal), its exit status in DIR/NAME.exit and its time in DIR/seconds. After LIMIT seconds
# the suite is stopped: SIGTERM to its whole process group (the lab and netns wrappers then clean up), SIGKILL 300 s
# later if it is still there; DIR/NAME.timeout then records the limit, and test/summarize.mjs names the suite as
# failed. A hung suite so costs its limit, never CI's whole time, and the summary line is still printed.
#
#   bash test/run-suite.sh DIR NAME LIMIT CMD...
set -uo pipefail
[[ $# -ge 4 && $3 =~ ^[0-9]+$ ]] || { echo "usage: run-suite.sh DIR NAME LIMIT_SECONDS CMD..." >&2; exit 2; }
dir=$1 name=$2 limit=$3
shift 3
t0=$SECONDS
# timeout makes itself a process group leader and signals that whole group: every process of the suite but the
# daemons it started in sessions of their own (setsid), which its wrapper's clean-up removes.
timeout --kill-after=300 "$limit" "$@" --reporter=default --reporter=json --outputFile.json="$dir/$name.json" 2>&1 |
  tee "$dir/$name.log"
status=${PIPESTATUS[0]}
echo "$status" >"$dir/$name.exit"
# 124: stopped by SIGTERM at the limit; 137: it needed the SIGKILL as well.
if ((status == 124 || (status == 137 && SECONDS - t0 >= limit))); then
  echo "$limit" >"$dir/$name.timeout"
  echo "[run-suite] $name: stopped after its time limit of $limit s" >&2
fi
echo "$name $((SECONDS - t0))" >>"$dir/seconds"
