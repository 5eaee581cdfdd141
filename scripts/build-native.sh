#!/usr/bin/env bash
# Builds the packet-socket N-API addon with the C compiler and the headers of the node that runs it (no node-gyp,
# no download): Debian's build-essential and the node headers (NodeSource's nodejs ships them in include/node).
#
#   bash scripts/build-native.sh                        build/packet_socket.node, for this machine
#   bash scripts/build-native.sh --arch arm64 --out F   F, cross-compiled with Debian's aarch64-linux-gnu-gcc (the
#                                                       N-API headers are the same for every architecture)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/arch.sh
arch=$(host_arch) out=build/packet_socket.node
while (($#)); do
  case $1 in
    --arch) arch=${2:?--arch needs an architecture} && shift 2 ;;
    --out) out=${2:?--out needs a file} && shift 2 ;;
    *) echo "usage: scripts/build-native.sh [--arch ARCH] [--out FILE]" >&2 && exit 2 ;;
  esac
done
check_arch "$arch" || exit 2
cc=cc
if [[ $arch != "$(host_arch)" ]]; then
  cc=$(arch_triplet "$arch")-gcc
  command -v "$cc" >/dev/null || { echo "no $cc: apt-get install gcc-$(arch_triplet "$arch")" >&2; exit 1; }
fi
node_prefix=$(node -p 'require("path").resolve(process.execPath, "../..")')
headers=$node_prefix/include/node
[ -f "$headers/node_api.h" ] || { echo "node headers not found in $headers (install the nodejs headers)" >&2; exit 1; }
command -v "$cc" >/dev/null || { echo "no C compiler: apt-get install build-essential" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
"$cc" -O2 -Wall -Wextra -Werror -std=gnu11 -fPIC -shared -fvisibility=hidden -I"$headers" \
  -o "$out" src/kernel/native/packet_socket.c
