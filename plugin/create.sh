#!/usr/bin/env bash
# Builds the tsmacvlan managed Docker plugin from this working tree and installs it into the local dockerd:
#
#   npm run plugin:create [-- [--enable] [--reuse] [--arch ARCH] [NAME]]
#   bash plugin/create.sh [--enable] [--reuse] [--arch ARCH] [NAME]
#
# NAME defaults to tsmacvlan:latest (a tag is added when missing: Docker names managed plugins with one, and users
# must give it, e.g. `docker network create -d tsmacvlan:latest`). Steps:
#   1. the base image (ARG BASE of the Dockerfile): when it is the local default and missing, or its node differs
#      from this machine's, it is built from this machine's own Node (plugin/base-image.sh; no image registry needed);
#   2. `docker build` of the Dockerfile (npm ci + tsc, then production node_modules only);
#   3. `docker create` + `docker export` of that image into plugin/build/rootfs, config.json beside it;
#   4. an existing plugin NAME is disabled and removed -- only when no network uses it, else this fails;
#   5. `docker plugin create NAME plugin/build` (the plugin is left disabled unless --enable).
# --reuse skips steps 1-3 when plugin/build holds a complete export of the same inputs (a hash of the Dockerfile,
# its build context, config.json, these scripts, BASE and this machine's node version, kept in plugin/build/.stamp).
# It prints the rootfs size and the time each step took.
# --arch ARCH: the plugin for ARCH (amd64, the default, or arm64). Another architecture than this machine's is not
# built by steps 1-3 but by plugin/arch/rootfs.sh (Debian's Node for ARCH, the native parts cross-compiled, checked
# under qemu) into plugin/build-ARCH; the plugin it makes runs on ARCH's engines (docs/arm64.md).
#
# Environment:
#   DOCKER                  docker client (default: docker)
#   BASE                    base image (default tsmacvlan-base:node20, built locally; with a registry you may use
#                           BASE=node:20-bookworm-slim, any glibc image with node >= 20 and npm)
#   TSMACVLAN_BUILD_PREFIX  prefix of the images and the container this script makes (default tsmacvlan-):
#                           <prefix>base:node20 (unless BASE is set), <prefix>rootfs:latest, <prefix>export-<pid>
#   TSMACVLAN_BUILD_DIR     where rootfs/ and config.json go (default plugin/build)
#
# The plugin's state needs nothing on the host: it is the plugin's propagated mount, a directory Docker makes for it
# (docs/install.md, "Where the state is"). config.json's description gets the version of package.json.
set -euo pipefail

cd "$(dirname "$0")/.."
source scripts/arch.sh
DOCKER=${DOCKER:-docker}
PREFIX=${TSMACVLAN_BUILD_PREFIX:-tsmacvlan-}
LOCAL_BASE="${PREFIX}base:node20"
BASE=${BASE:-$LOCAL_BASE}
ROOTFS_IMAGE="${PREFIX}rootfs:latest"
VERSION=$(node -p 'require("./package.json").version')

ENABLE=0
REUSE=0
NAME=
ARCH=$(host_arch)
usage="usage: plugin/create.sh [--enable] [--reuse] [--arch ARCH] [NAME]"
while (( $# )); do
  arg=$1 && shift
  case $arg in
    --arch) [[ -n ${1:-} ]] || { echo "create.sh: --arch needs one of ${ARCHES[*]} ($usage)" >&2; exit 2; }
            ARCH=$1 && shift ;;
    --arch=*) ARCH=${arg#--arch=} ;;
    --enable) ENABLE=1 ;;
    --reuse) REUSE=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "create.sh: unknown option '$arg' ($usage)" >&2; exit 2 ;;
    *) [[ -z $NAME ]] || { echo "create.sh: one NAME only" >&2; exit 2; }; NAME=$arg ;;
  esac
done
NAME=${NAME:-tsmacvlan:latest}
check_arch "$ARCH" || exit 2
CROSS=0 BUILD_DIR=${TSMACVLAN_BUILD_DIR:-plugin/build}
if [[ $ARCH != "$(host_arch)" ]]; then CROSS=1 BUILD_DIR=${TSMACVLAN_BUILD_DIR:-plugin/build-$ARCH}; fi
[[ ${NAME##*/} == *:* ]] || NAME="$NAME:latest"

now_ms() { date +%s%3N; }
T0=$(now_ms)
step() { STEP=$1; STEP_T=$(now_ms); echo "[plugin:create] $STEP ..."; }
done_step() { echo "[plugin:create] $STEP: ${1:-done} ($(( ($(now_ms) - STEP_T) / 1000 )).$(( ($(now_ms) - STEP_T) % 1000 / 100 )) s)"; }
die() { echo "[plugin:create] ERROR: $*" >&2; exit 1; }

"$DOCKER" version >/dev/null 2>&1 || die "'$DOCKER version' fails: is dockerd running and are you root?"

# Networks whose driver is the plugin NAME (local and swarm scope; config-only networks have driver null).
networks_using() { "$DOCKER" network ls --filter "driver=$1" --format '{{.Name}}'; }
check_replaceable() {
  "$DOCKER" plugin inspect "$NAME" >/dev/null 2>&1 || return 0
  local nets
  nets=$(networks_using "$NAME")
  if [[ -n $nets ]]; then
    die "plugin $NAME is installed and used by these networks: $(echo $nets). Remove them first (docker network rm ...),
  or build under another name: bash plugin/create.sh tsmacvlan:next"
  fi
}
check_replaceable # fail before spending minutes on a build

# config.json beside the rootfs, its description carrying the version of package.json.
write_config() {
  node -e 'const c = require("./config.json"); c.description = `tsmacvlan ${process.argv[1]}: ${c.description.replace(/^tsmacvlan: /, "")}`; console.log(JSON.stringify(c, null, 2))' \
    "$VERSION" > "$BUILD_DIR/config.json"
}

# ---------------------------------------------------------------- base image --
build_base() {
  step "base image $BASE"
  if [[ $BASE != "$LOCAL_BASE" ]]; then
    done_step "using $BASE (docker build pulls it when missing)"
    return
  fi
  local have want layout
  have=$("$DOCKER" image inspect -f '{{index .Config.Labels "tsmacvlan.base.node"}}' "$BASE" 2>/dev/null || true)
  layout=$("$DOCKER" image inspect -f '{{index .Config.Labels "tsmacvlan.base.layout"}}' "$BASE" 2>/dev/null || true)
  want=$(node --version 2>/dev/null || true)
  if [[ -n $have && ( -z $want || $have == "$want" ) && $layout == "$(sed -n 's/^LAYOUT=//p' plugin/base-image.sh)" ]]; then
    done_step "present (node $have)"
  else
    [[ -n $have ]] && echo "[plugin:create] rebuilding: it has node $have (layout ${layout:-1}), this machine $want"
    DOCKER=$DOCKER bash plugin/base-image.sh "$BASE"
    done_step "built"
  fi
}

# --------------------------------------------------------------------- build --
build_image() {
  step "docker build -> $ROOTFS_IMAGE"
  local build_args=(--build-arg "BASE=$BASE") registry
  if registry=$(npm config get registry 2>/dev/null) && [[ -n $registry && $registry != https://registry.npmjs.org/ ]]; then
    build_args+=(--build-arg "NPM_CONFIG_REGISTRY=$registry") # the same npm registry (mirror) as this machine
  fi
  # --network host: npm needs the registry, and the daemon may have no bridge network (dockerd --bridge=none).
  "$DOCKER" build --network host "${build_args[@]}" -t "$ROOTFS_IMAGE" -f Dockerfile . \
    || die "docker build failed (see above)"
  # Earlier builds that this one untagged (and their own intermediate layers) are of no further use.
  "$DOCKER" image prune -f --filter label=tsmacvlan.rootfs=true >/dev/null || true
  done_step
}

# -------------------------------------------------------------------- export --
export_rootfs() {
  step "export rootfs -> $BUILD_DIR/rootfs"
  local container="${PREFIX}export-$$"
  trap '"$DOCKER" rm -f "'"$container"'" >/dev/null 2>&1 || true' EXIT
  rm -rf "$BUILD_DIR"
  mkdir -p "$BUILD_DIR/rootfs"
  "$DOCKER" create --name "$container" "$ROOTFS_IMAGE" >/dev/null 2> >(grep -v "IPv4 forwarding is disabled" >&2)
  "$DOCKER" export "$container" | tar -x -C "$BUILD_DIR/rootfs"
  "$DOCKER" rm -f "$container" >/dev/null
  trap - EXIT
  # The version first in the description, which `docker plugin ls` shows (an alias hides the tag).
  write_config
  echo "$STAMP" > "$BUILD_DIR/.stamp"
  done_step "$(( $(du -sb "$BUILD_DIR/rootfs" | cut -f1) / 1000000 )) MB"
}

# What an export in $BUILD_DIR is made of: the build context as .dockerignore lets it through, and the rest.
inputs_hash() {
  {
    printf '%s\n' "BASE=$BASE" "node=$(node --version 2>/dev/null || true)"
    find Dockerfile .dockerignore config.json package.json package-lock.json tsconfig.json src scripts patches plugin/prune.js \
      node_modules/netlink/build/Release/netlink_binding.node plugin/base-image.sh plugin/create.sh -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-16
}

if (( CROSS )); then
  reuse=() && (( REUSE )) && reuse=(--reuse)
  bash plugin/arch/rootfs.sh "${reuse[@]}" "$ARCH" "$BUILD_DIR" || die "no $ARCH rootfs (above)"
  write_config
else
  # DHCP's packet-socket addon, compiled here (its source is among the inputs): the image copies it.
  bash scripts/build-native.sh || die "could not compile the packet socket addon (apt-get install build-essential)"
  STAMP=$(inputs_hash)
  if (( REUSE )) && [[ -d $BUILD_DIR/rootfs && -f $BUILD_DIR/.stamp && $(cat "$BUILD_DIR/.stamp") == "$STAMP" ]]; then
    echo "[plugin:create] --reuse: $BUILD_DIR holds the export of these very inputs ($STAMP): no build"
  else
    build_base
    build_image
    export_rootfs
  fi
fi
rootfs_bytes=$(du -sb "$BUILD_DIR/rootfs" | cut -f1)

# -------------------------------------------------------------------- create --
step "docker plugin create $NAME"
check_replaceable # again: a network may have appeared during the build
if "$DOCKER" plugin inspect "$NAME" >/dev/null 2>&1; then
  if [[ $("$DOCKER" plugin inspect -f '{{.Enabled}}' "$NAME") == true ]]; then
    "$DOCKER" plugin disable "$NAME" >/dev/null || die "cannot disable the installed $NAME (see above)"
  fi
  "$DOCKER" plugin rm "$NAME" >/dev/null || die "cannot remove the installed $NAME (see above)"
  echo "[plugin:create] removed the previous $NAME"
fi
"$DOCKER" plugin create "$NAME" "$BUILD_DIR" >/dev/null
done_step "tsmacvlan $VERSION"

if (( ENABLE )); then
  step "docker plugin enable $NAME"
  "$DOCKER" plugin enable "$NAME" >/dev/null
  done_step
fi

total=$(( $(now_ms) - T0 ))
echo "[plugin:create] $NAME: rootfs $(( rootfs_bytes / 1000000 )) MB ($rootfs_bytes bytes), done in $(( total / 1000 )).$(( total % 1000 / 100 )) s$( (( ENABLE )) || echo "; enable it with: $DOCKER plugin enable $NAME")"
