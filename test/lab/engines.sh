#!/usr/bin/env bash
# Unpacks every Docker Engine the suite runs from Debian's own packages into .engines/<name>/, installing nothing: a
# private apt sources list, lists directory and (empty) status file per suite, on this machine's Debian mirror (read
# from its apt sources), then `apt-get download` and `dpkg-deb -x`. An engine's directory holds its dockerd, client,
# containerd with its shims, docker-init (tini) and bookworm's runc: the newer suites' runc needs a newer glibc than
# bookworm's, and bookworm's runs on bookworm and everything later. The host's own Docker, containerd and runc, if
# any, are neither used nor touched.
#
# Versions are found, not pinned (a suite keeps only its current build): an engine's docker.io (and docker-cli) is the
# candidate of its suite when that is <name>.*, else another <name>.* the suite lists; the other packages are their
# suite's candidate, or another version it lists when the mirror no longer serves that one. A suite that no longer
# has the engine fails with what to do. Idempotent: an engine already unpacked (its .packages file) is kept.
#
# The same way, the tools the e2e tests run beside the engines (TOOLS below): Compose v2, a CLI plugin, and the image
# registry the release tests push to (its package's system service is never installed, so it never starts).
#
#   bash test/lab/engines.sh            # every engine and tool below
#   bash test/lab/engines.sh 20.10      # one (or several: 20.10 compose registry)
#
# Prints one line per engine: "<name> <dir> <dockerd --version>", and per tool: "<name> <its binary> (<package>)".
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD/.engines

# name suite packages (docker.io first: its version names the engine). docker-cli exists from Debian 13 on (20.10's
# client is in docker.io).
ENGINES=(
  "20.10 bookworm docker.io containerd tini"
  "26.1 trixie docker.io docker-cli containerd tini"
  "28.5 sid docker.io docker-cli containerd tini"
)
RUNC_SUITE=bookworm

# name suite package binary (the newest version its suite has; Compose v2 is a CLI plugin from Debian 13 on).
TOOLS=(
  "compose sid docker-compose usr/libexec/docker/cli-plugins/docker-compose"
  "registry bookworm docker-registry usr/bin/docker-registry"
)

die() { echo "engines.sh: $*" >&2; exit 1; }

mirror() {
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $uri ]] || uri=$(awk '/^deb / && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n $uri ]] || die "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  echo "$uri"
}

# apt-get/apt-cache options of the private apt of a suite (nothing of the host's apt state is read or written).
apt_opts() { # suite
  local apt=$root/.apt-$1
  echo -q -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o "Dir::State::Lists=$apt/lists" -o "Dir::State::status=$apt/status" -o "Dir::Cache=$apt/cache" \
    -o APT::Sandbox::User=root
}

declare -A updated=()
update() { # suite: its package list, read once per run
  local suite=$1 apt=$root/.apt-$1
  [[ -z ${updated[$suite]:-} ]] || return 0
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
  : >"$apt/status"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(mirror) $suite main" >"$apt/sources.list"
  # shellcheck disable=SC2046
  apt-get $(apt_opts "$suite") update >"$apt/update.log" 2>&1 ||
    { cat "$apt/update.log" >&2; die "cannot read the package list of Debian $suite from $(mirror) (above)"; }
  updated[$suite]=1
}

# The versions of a package its suite lists: the candidate first, then the others; with a prefix, only those of it.
versions() { # suite package [prefix]
  local suite=$1 package=$2 prefix=${3:-} candidate
  # shellcheck disable=SC2046
  candidate=$(apt-cache $(apt_opts "$suite") policy "$package" | awk '/Candidate:/ { print $2 }')
  {
    [[ -z $candidate || $candidate == '(none)' ]] || echo "$candidate"
    # shellcheck disable=SC2046
    apt-cache $(apt_opts "$suite") madison "$package" | awk -F'|' '{ gsub(/ /, "", $2); print $2 }'
  } | awk -v prefix="$prefix" 'index($0, prefix) == 1 && !seen[$0]++'
}

# Downloads package=version into dir, trying each version in turn (a mirror may drop a build its list still names).
download() { # suite dir package versions...
  local suite=$1 dir=$2 package=$3
  shift 3
  local version
  for version in "$@"; do
    # shellcheck disable=SC2046
    if (cd "$dir" && apt-get $(apt_opts "$suite") download "$package=$version" >>"$dir/download.log" 2>&1); then
      echo "$package=$version"
      return 0
    fi
  done
  cat "$dir/download.log" >&2
  die "Debian $suite lists $package ${*:-in no version}, and none could be downloaded from $(mirror) (above)"
}

# Every binary the engine runs finds its shared libraries here (the host's, as they are Debian's) in the versions it
# needs (tini, not run, is the one of trixie and sid that needs glibc 2.38; docker-init is its static build).
ENGINE_BINARIES=(usr/sbin/dockerd usr/bin/docker usr/bin/containerd usr/bin/containerd-shim-runc-v2 usr/bin/ctr
  usr/sbin/runc usr/sbin/docker-proxy)
check_libraries() { # dir
  local problems
  problems=$(cd "$1" && for b in "${ENGINE_BINARIES[@]}"; do ldd "$b" 2>&1 | sed -n "s|^|  $b: |; /not found/p"; done)
  [[ -z $problems ]] || die "the engine's binaries do not run on this machine: a library is missing (install its
  package with apt-get) or too old (this Debian is too old for the engine):
$problems"
}

unpack() { # name suite packages...
  local name=$1 suite=$2
  shift 2
  local dir=$root/$name
  if [[ -f $dir/.packages && -x $dir/usr/sbin/dockerd && -x $dir/usr/bin/docker && -x $dir/usr/sbin/runc ]]; then
    return 0
  fi
  local debs=$root/.debs-$name
  rm -rf "$debs" && mkdir -p "$debs"
  update "$suite"
  update "$RUNC_SUITE"
  local engine package found=() listed
  mapfile -t engine < <(versions "$suite" docker.io "$name.")
  if (( ${#engine[@]} == 0 )); then
    listed=$(versions "$suite" docker.io | tr '\n' ' ')
    die "Debian $suite lists docker.io ${listed:-in no version}, no $name.x: the engine $name is no longer there.
  Point its line in ENGINES (test/lab/engines.sh) at a suite that has it (https://tracker.debian.org/pkg/docker.io),
  or rename the engine after the version $suite has now (also in test/run-all.sh's ENGINES and in the README)."
  fi
  for package in "$@"; do
    case $package in
      # The client is built from the same source as the daemon: the same version.
      docker.io | docker-cli) found+=("$(download "$suite" "$debs" "$package" "${engine[@]}")") ;;
      *) mapfile -t listed < <(versions "$suite" "$package") && found+=("$(download "$suite" "$debs" "$package" "${listed[@]}")") ;;
    esac
  done
  mapfile -t listed < <(versions "$RUNC_SUITE" runc)
  found+=("$(download "$RUNC_SUITE" "$debs" runc "${listed[@]}")")
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$dir.tmp"; done
  printf '%s\n' "${found[@]}" >"$dir.tmp/.packages"
  check_libraries "$dir.tmp"
  rm -rf "$dir" "$debs" && mv "$dir.tmp" "$dir"
}

unpack_tool() { # name suite package binary
  local name=$1 suite=$2 package=$3 binary=$4 dir=$root/$1
  if [[ -f $dir/.packages && -x $dir/$binary ]]; then
    return 0
  fi
  local debs=$root/.debs-$name listed found
  rm -rf "$debs" && mkdir -p "$debs"
  update "$suite"
  mapfile -t listed < <(versions "$suite" "$package")
  found=$(download "$suite" "$debs" "$package" "${listed[@]}")
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  dpkg-deb -x "$debs"/*.deb "$dir.tmp"
  echo "$found" >"$dir.tmp/.packages"
  [[ -x $dir.tmp/$binary ]] || die "$found holds no $binary"
  local missing
  missing=$(ldd "$dir.tmp/$binary" 2>&1 | grep 'not found' || true)
  [[ -z $missing ]] || die "$binary of $found does not run on this machine: $missing"
  rm -rf "$dir" "$debs" && mv "$dir.tmp" "$dir"
}

for tool in "${TOOLS[@]}"; do
  read -r name suite package binary <<<"$tool"
  if [[ $# -gt 0 && " $* " != *" $name "* ]]; then continue; fi
  unpack_tool "$name" "$suite" "$package" "$binary"
  echo "$name $root/$name/$binary ($(cat "$root/$name/.packages"))"
done

for engine in "${ENGINES[@]}"; do
  read -r name suite packages <<<"$engine"
  if [[ $# -gt 0 && " $* " != *" $name "* ]]; then continue; fi
  # shellcheck disable=SC2086
  unpack "$name" "$suite" $packages
  echo "$name $root/$name $("$root/$name/usr/sbin/dockerd" --version) ($(tr '\n' ' ' <"$root/$name/.packages"))"
done
