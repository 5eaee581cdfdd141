#!/usr/bin/env bash
# Tests on arm64's Node, under emulation, so that a byte-order or word-size mistake shows on this amd64 machine:
# Debian 13's arm64 node (plugin/arch/fetch.sh tree: the node the arm64 plugin ships, with all of its packages'
# libraries) runs the test files; vitest's main process stays on this machine's node (test/arm64/vitest.mjs), and
# qemu's emulator is registered with binfmt_misc under this run's own name for as long as it lasts
# (test/lab/qemu-binfmt.sh; removed at exit, whatever happens). A set-up file fails every file whose worker is not
# arm64 (test/arm64/require-arch.ts).
#
#   bash test/arm64/run.sh [VITEST ARGS...]     (test/run-all.sh adds its reporters)
#
# The files are FILES: the codecs' unit files (DHCP and ARP frames with their checksums; netlink attributes, read
# from the kernel's own messages and written by the plugin) and the integration files of the two native parts, run
# with the arm64 builds the plugin ships (plugin/build-arm64) bound over this machine's in a mount namespace of the
# run: the packet socket with its BPF filter and the patched netlink binding, against the kernel. Not the whole unit
# suite: under emulation it took 25 minutes for 5 of its 37 files here (a property test alone over 300 s).
set -euo pipefail
cd "$(dirname "$0")/../.."
FILES=(test/unit/dhcp/codec.test.ts test/unit/kernel/link-codec.test.ts
  test/integration/kernel/packet-socket.test.ts test/integration/kernel/netlink-binding.test.ts)
app=plugin/build-arm64/rootfs/opt/tsmacvlan
NATIVE=("$app/node_modules/netlink/build/Release/netlink_binding.node" node_modules/netlink/build/Release/netlink_binding.node
  "$app/build/packet_socket.node" build/packet_socket.node)

[[ $(id -u) == 0 ]] || { echo "run.sh: binfmt_misc and the test namespaces need root" >&2; exit 1; }
for ((i = 0; i < ${#NATIVE[@]}; i += 2)); do
  [[ -f ${NATIVE[i]} ]] || { echo "run.sh: no ${NATIVE[i]}: bash plugin/arch/rootfs.sh arm64 plugin/build-arm64" >&2; exit 1; }
  [[ -f ${NATIVE[i + 1]} ]] || { echo "run.sh: no ${NATIVE[i + 1]}: npm ci && npm run build" >&2; exit 1; }
done
tree=$(bash plugin/arch/fetch.sh tree arm64)
qemu=$(bash plugin/arch/fetch.sh qemu arm64)
name=tsmv-test-$$-aarch64
trap 'bash test/lab/qemu-binfmt.sh unregister "$name"' EXIT
bash test/lab/qemu-binfmt.sh register "$name" "$qemu"
# QEMU_LD_PREFIX: the emulated node's loader and libraries are the tree's (qemu looks there first for every path).
export QEMU_LD_PREFIX=$tree TSMV_WORKER_NODE=$tree/usr/bin/node TSMV_TEST_ARCH=arm64
"$TSMV_WORKER_NODE" -p '`[arm64] test files run on ${process.arch} node ${process.version}`'
# A network and mount namespace of the run (test/in-netns.sh): the arm64 builds bound over this machine's there only.
bash test/in-netns.sh bash -c 'mount --bind "$1" "$2" && mount --bind "$3" "$4" && shift 4 &&
  exec node test/arm64/vitest.mjs run --project unit --project integration --testTimeout 300000 --hookTimeout 300000 "$@"' \
  run "${NATIVE[@]}" "${FILES[@]}" "$@"
