#!/usr/bin/env bash
# Builds the tsmacvlan managed plugin from this working tree and pushes it to a registry, the CLI image beside it:
#
#   npm run plugin:push -- [--reuse] [--no-cli] [--arch ARCH] REF
#   bash plugin/push.sh [--reuse] [--no-cli] [--arch ARCH] REF
#
# REF is [REGISTRY/]REPOSITORY[:TAG], e.g. 127.0.0.1:5000/tsmacvlan:0.2.0. TAG is the version in package.json: it is
# added when missing, and another one is refused (one version in the tag, `tsmacvlan --version`, the start-up log,
# status and doctor). --arch ARCH (amd64, the default, or arm64): the plugin for ARCH, whose tag is VERSION-ARCH
# for any other architecture than amd64 (docs/arm64.md: a managed plugin has one architecture, so each has a tag).
# Steps:
#   1. plugin/create.sh [--reuse] [--arch ARCH] REF: the plugin built and created in the local dockerd under REF,
#      disabled;
#   2. docker plugin push REF;
#   3. unless --no-cli, the CLI image [REGISTRY/]REPOSITORY-cli:TAG: the plugin's root filesystem as an image whose
#      entrypoint is the tsmacvlan CLI (docs/install.md, "The CLI on the host"), imported and pushed;
#   4. the local plugin REF removed again (it was made for the push; plugin/build keeps the build for --reuse).
# Log in first (docker login REGISTRY) where the registry asks for it. 127.0.0.0/8 registries need no TLS.
#
# Environment: DOCKER, BASE and TSMACVLAN_BUILD_PREFIX / TSMACVLAN_BUILD_DIR as for plugin/create.sh.
set -euo pipefail

cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-docker}
source scripts/arch.sh
usage="usage: plugin/push.sh [--reuse] [--no-cli] [--arch ARCH] REF (e.g. 127.0.0.1:5000/tsmacvlan:0.2.0)"

REUSE=() CLI=1 REF= ARCH=$(host_arch)
while (( $# )); do
  arg=$1 && shift
  case $arg in
    --arch) [[ -n ${1:-} ]] || { echo "push.sh: --arch needs one of ${ARCHES[*]} ($usage)" >&2; exit 2; }
            ARCH=$1 && shift ;;
    --arch=*) ARCH=${arg#--arch=} ;;
    --reuse) REUSE=(--reuse) ;;
    --no-cli) CLI=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "push.sh: unknown option '$arg' ($usage)" >&2; exit 2 ;;
    *) [[ -z $REF ]] || { echo "push.sh: one REF only ($usage)" >&2; exit 2; }; REF=$arg ;;
  esac
done
[[ -n $REF ]] || { echo "push.sh: no REF given ($usage)" >&2; exit 2; }
[[ $REF != *@* ]] || { echo "push.sh: '$REF' names a digest; give [REGISTRY/]REPOSITORY[:TAG]" >&2; exit 2; }

check_arch "$ARCH" || exit 2
BUILD_DIR=${TSMACVLAN_BUILD_DIR:-plugin/build}
[[ $ARCH == "$(host_arch)" ]] || BUILD_DIR=${TSMACVLAN_BUILD_DIR:-plugin/build-$ARCH}
VERSION=$(node -p 'require("./package.json").version')
[[ $ARCH == amd64 ]] || VERSION=$VERSION-$ARCH
last=${REF##*/}
if [[ $last == *:* ]]; then
  repository=${REF%:*} tag=${last##*:}
  if [[ $tag != "$VERSION" ]]; then
    echo "push.sh: the tag '$tag' is not the version in package.json ($VERSION): push $repository:$VERSION, or change" \
      "the version in package.json first (it is the one the plugin reports; VERSION-ARCH for --arch ARCH but amd64)" >&2
    exit 2
  fi
else
  repository=$REF
  REF=$REF:$VERSION
fi
CLI_REF=$repository-cli:$VERSION

now_ms() { date +%s%3N; }
T0=$(now_ms)
say() { echo "[plugin:push] $*"; }
die() { echo "[plugin:push] ERROR: $*" >&2; exit 1; }
secs() { echo "$(( ($(now_ms) - $1) / 1000 )).$(( ($(now_ms) - $1) % 1000 / 100 )) s"; }

bash plugin/create.sh "${REUSE[@]}" --arch "$ARCH" "$REF"
trap '"$DOCKER" plugin rm -f "$REF" >/dev/null 2>&1 || true' EXIT

t=$(now_ms)
"$DOCKER" plugin push "$REF" || die "docker plugin push $REF failed (above); a registry that needs it: docker login"
say "pushed the plugin $REF ($(secs "$t"))"

if (( CLI )); then
  t=$(now_ms)
  # The plugin's own files, so the CLI is the very code the plugin runs; `docker run IMAGE doctor` and the like.
  tar -C "$BUILD_DIR/rootfs" --numeric-owner -c . | "$DOCKER" import --platform "linux/$ARCH" \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'WORKDIR /opt/tsmacvlan' \
    --change 'ENTRYPOINT ["node", "/opt/tsmacvlan/dist/cli/main.js"]' --change 'CMD ["--help"]' \
    --change "LABEL org.opencontainers.image.version=$VERSION" - "$CLI_REF" >/dev/null
  "$DOCKER" push "$CLI_REF" || die "docker push $CLI_REF failed (above)"
  say "pushed the CLI image $CLI_REF ($(secs "$t"))"
fi

"$DOCKER" plugin rm -f "$REF" >/dev/null
trap - EXIT
say "done in $(secs "$T0"): install with  docker plugin install --alias tsmacvlan $REF"
