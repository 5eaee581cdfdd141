#!/usr/bin/env bash
# `npm test`: the whole suite. Provisions what it needs (tools, unpacked Docker Engines, plugin rootfs for amd64 and
# arm64, qemu kernel), builds, runs each suite where it must run, each under a time limit, and ends with one line
# "N passed, N failed". Needs root (it creates links and namespaces).
set -uo pipefail
cd "$(dirname "$0")/.."
results=test-results
rm -rf "$results" && mkdir -p "$results"

if [ "$(id -u)" -ne 0 ]; then
  echo "npm test needs root: it creates network namespaces and links and drives Docker" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

step() { echo; echo "== $*"; }
# vitest with a JSON report, its output (also in <suite>.log) and its exit status (<suite>.exit) per suite: the summary
# counts a suite as passed only when both say so, and a skipped test as a failure (test/summarize.mjs), whoever runs it.
# Each suite runs under a time limit (test/run-suite.sh): a hung one is stopped, counted as failed and named, and the
# rest still runs. The limits are several times a suite's usual time on this 2-core machine, and all of them together
# are held within BUDGET seconds from here, so the summary line comes well within CI's 90 minutes.
BUDGET=4800
declare -A LIMIT=([unit]=600 [integration]=1800 [arm64]=1200 [e2e-20.10]=1800 [e2e-26.1]=1200 [e2e-28.5]=1200 [vm]=1200)
suite() {
  local name=$1 left=$((BUDGET - SECONDS - 60))
  shift
  step "$name"
  if ((left < 60)); then
    echo "not run: the time budget of npm test ($BUDGET s) is spent" | tee "$results/$name.failed"
    return
  fi
  bash test/run-suite.sh "$PWD/$results" "$name" "$((LIMIT[$name] < left ? LIMIT[$name] : left))" "$@"
}

step "provision" && bash test/e2e/provision.sh || echo "provisioning failed" > "$results/provision.failed"
# Every engine of the e2e matrix, unpacked from Debian 12's, 13's and unstable's packages (nothing installed).
step "engines" && bash test/lab/engines.sh ||
  echo "test/lab/engines.sh could not unpack the Docker Engines (its output is above)" > "$results/engines.failed"
step "build" && npm run --silent build || echo "build failed" > "$results/build.failed"
# Tests are not compiled by the build: this checks that every suite (e2e and vm too) still resolves its imports.
step "typecheck" && npm run --silent typecheck || echo "test type-check failed" > "$results/typecheck.failed"
# One print width for every file (prettier); `npm run format` fixes what this reports.
step "format" && npx prettier --check . || echo "files not formatted: run npm run format" > "$results/format.failed"

suite unit npx vitest run --project unit
# Integration tests create links freely: a private namespace of their own, gone when they exit.
suite integration bash test/in-netns.sh npx vitest run --project integration
# The codecs' unit files and the native parts' integration files again on arm64's node, under qemu (test/arm64/run.sh:
# the arm64 plugin's own native builds, from plugin/build-arm64, which provisioning made).
suite arm64 bash test/arm64/run.sh
# e2e tests drive Docker and make links: a lab of their own (a namespace and an engine the lab starts, see test/lab),
# once per engine people run: Debian 12's 20.10, Debian 13's 26.1, unstable's 28.5, each with its own client.
ENGINES=(20.10 26.1 28.5)
for engine in "${ENGINES[@]}"; do
  TSMV_ENGINE=$engine suite "e2e-$engine" bash test/lab/in-lab.sh npx vitest run --project e2e
done
# 802.1q exists only under the VM kernel; the guest writes its report into a directory of ours.
VMRUN_OUT="$PWD/$results" suite vm bash test/vm/vmrun.sh node_modules/.bin/vitest run --project vm

step "time per suite (s)" && cat "$results/seconds"
node test/summarize.mjs "$results" unit integration arm64 "${ENGINES[@]/#/e2e-}" vm
