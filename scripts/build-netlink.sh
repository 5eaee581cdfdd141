#!/usr/bin/env bash
# postinstall: netlink@0.3.0's native binding with our fix (patches/netlink+0.3.0.patch: a full receive buffer is an
# 'error' event instead of SIGABRT, and an exception in a native callback is an ordinary JS one), built from source
# against this Node's own headers. node-gyp-build loads build/Release before the package's prebuilt binary, and
# `tsmacvlan serve` refuses to start on any binding without the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
package=node_modules/netlink
patch_file=$PWD/patches/netlink+0.3.0.patch

version=$(node -p "require('./$package/package.json').version")
if [ "$version" != 0.3.0 ]; then
  echo "netlink $version is installed but $patch_file is for 0.3.0: port the patch to $version" >&2
  exit 1
fi
for tool in g++ make python3 patch; do
  command -v "$tool" >/dev/null || {
    echo "building netlink's native binding needs $tool: apt-get install build-essential python3" >&2
    exit 1
  }
done
# Applied once: installing over an already patched tree leaves it as it is.
if ! patch -d "$package" -p1 -R --dry-run -f -s <"$patch_file" >/dev/null 2>&1; then
  patch -d "$package" -p1 -N -f -s <"$patch_file" || {
    echo "$package/src/binding.cc is neither netlink 0.3.0's nor patched with $patch_file: run npm ci" >&2
    exit 1
  }
fi

# The headers of the Node that runs us (NodeSource's and Debian's packages ship them): node-gyp downloads nothing.
nodedir=$(node -p "require('path').resolve(process.execPath, '../..')")
if [ ! -f "$nodedir/include/node/node_api.h" ]; then
  echo "no Node headers in $nodedir/include/node: install the Node package that ships them (nodejs from NodeSource, or Debian's libnode-dev)" >&2
  exit 1
fi
# npm hands its own node-gyp to install scripts; run by hand, the one bundled with npm.
node_gyp=${npm_config_node_gyp:-$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js}
cd "$package"
node "$node_gyp" rebuild --nodedir="$nodedir" --loglevel=warn >/dev/null
