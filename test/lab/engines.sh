#!/usr/bin/env bash
# Unpacks newer Docker Engines from Debian's own packages into .engines/<name>/ without installing them: a private
# apt sources list and lists directory (the suites of this machine's Debian mirror, read from its apt sources),
# `apt-get download`, `dpkg-deb -x`. Their binaries need glibc >= 2.34 and run here with bookworm's runc.
# Idempotent: an engine already unpacked is kept.
#
#   bash test/lab/engines.sh            # every engine below
#   bash test/lab/engines.sh 28.5       # one
#
# Prints one line per engine: "<name> <dir>/usr/sbin/dockerd <version>".
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD/.engines

# name suite packages (exact versions, so a run is repeatable; a mirror that moved on fails here, clearly)
ENGINES=(
  "26.1 trixie docker.io=26.1.5+dfsg1-9+deb13u1+b1 docker-cli=26.1.5+dfsg1-9+deb13u1+b1 containerd=1.7.24~ds1-6+deb13u1"
  "28.5 sid docker.io=28.5.2+dfsg4-5 docker-cli=28.5.2+dfsg4-5 containerd=2.1.9+ds1-5"
)

mirror() {
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $uri ]] || uri=$(awk '/^deb / && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n $uri ]] || { echo "engines.sh: no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list" >&2; exit 1; }
  echo "$uri"
}

unpack() { # name suite packages...
  local name=$1 suite=$2
  shift 2
  local dir=$root/$name
  if [[ -x $dir/usr/sbin/dockerd && -x $dir/usr/bin/docker && -x $dir/usr/bin/containerd ]]; then
    return 0
  fi
  local apt=$root/.apt-$suite
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(mirror) $suite main" >"$apt/sources.list"
  local opts=(-q -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update >"$apt/update.log" 2>&1 || { cat "$apt/update.log" >&2; exit 1; }
  rm -f "$apt"/debs/*.deb
  (cd "$apt/debs" && apt-get "${opts[@]}" download "$@" >"$apt/download.log" 2>&1) || { cat "$apt/download.log" >&2; exit 1; }
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  for deb in "$apt"/debs/*.deb; do dpkg-deb -x "$deb" "$dir.tmp"; done
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
}

for engine in "${ENGINES[@]}"; do
  read -r name suite packages <<<"$engine"
  if [[ $# -gt 0 && " $* " != *" $name "* ]]; then continue; fi
  # shellcheck disable=SC2086
  unpack "$name" "$suite" $packages
  echo "$name $root/$name/usr/sbin/dockerd $("$root/$name/usr/sbin/dockerd" --version)"
done
