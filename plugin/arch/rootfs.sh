#!/usr/bin/env bash
# The plugin's root filesystem for another architecture than this machine's, made here without running anything of
# that architecture but the final check (plugin/create.sh --arch ARCH calls it):
#
#   bash plugin/arch/rootfs.sh [--reuse] ARCH BUILD_DIR      (ARCH: arm64)
#
#   1. ARCH's Node from Debian 13's packages, with only the libraries it loads (plugin/arch/fetch.sh node);
#   2. the production node_modules (npm ci --omit=dev --ignore-scripts: every production dependency is JavaScript
#      but netlink's binding) and dist/ compiled by this tree's TypeScript: the very files of every architecture;
#   3. the two native parts cross-compiled with Debian's gcc/g++ for ARCH (the patched netlink binding,
#      scripts/build-netlink.sh; the packet-socket addon, scripts/build-native.sh) -- measured about 11 times less
#      CPU than compiling them inside an ARCH rootfs under qemu (docs/arm64.md);
#   4. what the plugin does not load pruned (plugin/prune.js, as the Dockerfile does for amd64);
#   5. the check: ARCH's node loads both native parts, under qemu's user-mode emulator (plugin/arch/fetch.sh qemu),
#      and the ELF files are ARCH's; without it no rootfs is left in BUILD_DIR.
# The result is BUILD_DIR/rootfs laid out as the amd64 one (/usr/local/bin/node, /opt/tsmacvlan), so config.json is
# the same. --reuse: nothing is done when BUILD_DIR/.stamp says it holds a build of the same inputs.
# Needs: g++-aarch64-linux-gnu (Debian's cross compilers of crossbuild-essential-arm64), node and npm >= 20 here, the
# npm registry (or npm's cache) and a Debian mirror the first time (the .debs stay in .cache/).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/arch.sh

REUSE=0
[[ ${1:-} == --reuse ]] && REUSE=1 && shift
ARCH=${1:-} BUILD_DIR=${2:-}
[[ -n $ARCH && -n $BUILD_DIR ]] || { echo "usage: plugin/arch/rootfs.sh [--reuse] ARCH BUILD_DIR" >&2; exit 2; }
check_arch "$ARCH" || exit 2
[[ $ARCH != "$(host_arch)" ]] || { echo "rootfs.sh: $ARCH is this machine's: plugin/create.sh builds it" >&2; exit 2; }
TRIPLET=$(arch_triplet "$ARCH")

now_ms() { date +%s%3N; }
step() { STEP=$1 STEP_T=$(now_ms); echo "[rootfs $ARCH] $STEP ..."; }
secs() { awk -v ms="$(($(now_ms) - $1))" 'BEGIN { printf "%.1f s", ms / 1000 }'; }
done_step() { echo "[rootfs $ARCH] $STEP: ${1:-done} ($(secs "$STEP_T"))"; }
die() { echo "[rootfs $ARCH] ERROR: $*" >&2; exit 1; }

for tool in "$TRIPLET-gcc" "$TRIPLET-g++" readelf strings dpkg-deb npm; do
  command -v "$tool" >/dev/null || case $tool in
    "$TRIPLET"-*) die "no $tool: apt-get install g++-$TRIPLET (the cross compilers of crossbuild-essential-$ARCH)" ;;
    readelf | strings) die "no $tool: apt-get install binutils" ;;
    *) die "no $tool here" ;;
  esac
done

# What a build is made of: this tree's inputs (as plugin/create.sh counts them), the scripts that make it, Debian's
# packages (the .packages of fetch.sh, when fetched) and the cross compiler.
inputs_hash() {
  {
    printf '%s\n' "arch=$ARCH" "$("$TRIPLET-gcc" --version | head -1)"
    cat ".cache/debian/$ARCH/.packages" 2>/dev/null || echo "not fetched yet"
    find config.json package.json package-lock.json tsconfig.json src scripts patches plugin/prune.js plugin/arch \
      -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}
STAMP=$(inputs_hash)
if ((REUSE)) && [[ -d $BUILD_DIR/rootfs && -f $BUILD_DIR/.stamp && $(cat "$BUILD_DIR/.stamp") == "$STAMP" ]]; then
  echo "[rootfs $ARCH] --reuse: $BUILD_DIR holds the build of these very inputs ($STAMP): no build"
  exit 0
fi

T0=$(now_ms)
rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR"
stage=$BUILD_DIR/.stage
rootfs=$BUILD_DIR/.rootfs # renamed to rootfs once checked
app=$rootfs/opt/tsmacvlan

step "Node for $ARCH (Debian 13)"
node_version=$(bash plugin/arch/fetch.sh node "$ARCH" "$rootfs" | tail -1)
done_step "$node_version"

step "npm ci --omit=dev, tsc"
mkdir -p "$stage"
cp package.json package-lock.json "$stage/"
(cd "$stage" && npm ci --omit=dev --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null) ||
  die "npm ci --omit=dev failed in $stage (the npm registry, or npm's cache, is needed)"
npx --no-install tsc -p tsconfig.json --sourceMap false --outDir "$stage/dist" || die "tsc failed"
done_step

step "native parts, cross-compiled with $TRIPLET-g++"
bash scripts/build-netlink.sh --arch "$ARCH" --out "$stage/node_modules/netlink/build/Release/netlink_binding.node"
bash scripts/build-native.sh --arch "$ARCH" --out "$stage/build/packet_socket.node"
done_step

step "prune"
node plugin/prune.js "$stage"
mkdir -p "$app" && cp -a "$stage"/. "$app"/ && rm -rf "$stage"
# The layout of the amd64 rootfs (plugin/base-image.sh): a few empty directories, users for tools that look.
mkdir -p "$rootfs"/{tmp,root,proc,sys,dev,run,etc}
chmod 1777 "$rootfs/tmp" && chmod 700 "$rootfs/root"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
done_step

step "check: $ARCH ELF files, and $ARCH's node loads both native parts (qemu)"
qemu=$(bash plugin/arch/fetch.sh qemu "$ARCH")
machine=$(readelf -h "$rootfs/usr/local/bin/node" | sed -n 's/^ *Machine: *//p')
for elf in "$rootfs/usr/local/bin/node" "$app/node_modules/netlink/build/Release/netlink_binding.node" \
  "$app/build/packet_socket.node"; do
  m=$(readelf -h "$elf" | sed -n 's/^ *Machine: *//p')
  [[ $m == "$machine" ]] || die "${elf#"$rootfs"} is built for '$m', node for '$machine'"
done
# -L: the rootfs is the emulated program's / for its loader and libraries; the application by its path here.
"$qemu" -L "$rootfs" "$rootfs/usr/local/bin/node" -e "
  if (process.arch !== '$(arch_node_gyp "$ARCH")') throw new Error('node is ' + process.arch);
  const app = process.argv[1];
  require(app + '/dist/kernel/netlink-binding.js').checkPatchedNetlink();
  require(app + '/build/packet_socket.node');
  for (const d of Object.keys(require(app + '/package.json').dependencies)) require(app + '/node_modules/' + d);
  console.log(process.arch + ' node ' + process.version + ': the patched netlink binding, the packet socket addon and every dependency load')
" "$(realpath "$app")" || die "the $ARCH rootfs does not load its native parts (above): no plugin is made of it"
mv "$rootfs" "$BUILD_DIR/rootfs"
echo "$STAMP" >"$BUILD_DIR/.stamp"
done_step "$machine"

bytes=$(du -sb "$BUILD_DIR/rootfs" | cut -f1)
echo "[rootfs $ARCH] $BUILD_DIR/rootfs: $((bytes / 1000000)) MB ($bytes bytes), $node_version, built in $(secs "$T0")"
