#!/usr/bin/env bash
# Builds the packet-socket N-API addon with the C compiler and the headers of the node that runs it (no node-gyp,
# no download): Debian's build-essential and the node headers (NodeSource's nodejs ships them in include/node).
set -euo pipefail
cd "$(dirname "$0")/.."
node_prefix=$(node -p 'require("path").resolve(process.execPath, "../..")')
headers=$node_prefix/include/node
[ -f "$headers/node_api.h" ] || { echo "node headers not found in $headers (install the nodejs headers)" >&2; exit 1; }
command -v cc >/dev/null || { echo "no C compiler: apt-get install build-essential" >&2; exit 1; }
mkdir -p build
cc -O2 -Wall -Wextra -Werror -std=gnu11 -fPIC -shared -fvisibility=hidden -I"$headers" \
  -o build/packet_socket.node src/kernel/native/packet_socket.c
