#!/usr/bin/env bash
# postinstall: netlink@0.3.0's native binding with our fix (patches/netlink+0.3.0.patch: a full receive buffer is an
# 'error' event instead of SIGABRT, and an exception in a native callback is an ordinary JS one), built from source
# against this Node's own headers. node-gyp-build loads build/Release before the package's prebuilt binary, and
# `tsmacvlan serve` refuses to start on any binding without the fix.
#
#   bash scripts/build-netlink.sh                        node_modules/netlink/build/Release, for this machine
#   bash scripts/build-netlink.sh --arch arm64 --out F   F, cross-compiled (Debian's aarch64-linux-gnu-g++) from a
#                                                        patched copy of the package: this machine's build stays
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/arch.sh
package=node_modules/netlink
patch_file=$PWD/patches/netlink+0.3.0.patch
arch=$(host_arch) out=
while (($#)); do
  case $1 in
    --arch) arch=${2:?--arch needs an architecture} && shift 2 ;;
    --out) out=${2:?--out needs a file} && shift 2 ;;
    *) echo "usage: scripts/build-netlink.sh [--arch ARCH --out FILE]" >&2 && exit 2 ;;
  esac
done
check_arch "$arch" || exit 2
cross=()
if [[ $arch != "$(host_arch)" ]]; then
  [[ -n $out ]] || { echo "build-netlink.sh: --arch $arch needs --out FILE" >&2; exit 2; }
  triplet=$(arch_triplet "$arch")
  command -v "$triplet-g++" >/dev/null || { echo "no $triplet-g++: apt-get install g++-$triplet" >&2; exit 1; }
  # A copy beside its build-time dependency (binding.gyp asks node-addon-api for its headers).
  work=$(mktemp -d /tmp/tsmacvlan-netlink-"$arch".XXXXXX)
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work/node_modules"
  cp -a "$package" "$work/node_modules/netlink"
  rm -rf "$work/node_modules/netlink/build"
  ln -s "$PWD/node_modules/node-addon-api" "$work/node_modules/node-addon-api"
  package=$work/node_modules/netlink
  cross=(env "CC=$triplet-gcc" "CXX=$triplet-g++")
fi

version=$(node -p "require(require('path').resolve('$package', 'package.json')).version")
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
(cd "$package" && "${cross[@]}" node "$node_gyp" rebuild --arch="$(arch_node_gyp "$arch")" --nodedir="$nodedir" \
  --loglevel=warn >/dev/null)
if [[ -n $out ]]; then
  mkdir -p "$(dirname "$out")"
  cp "$package/build/Release/netlink_binding.node" "$out"
fi
