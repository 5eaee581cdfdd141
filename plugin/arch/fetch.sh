#!/usr/bin/env bash
# What a plugin for another architecture is made of and checked with, from Debian 13's own packages, into .cache/
# (nothing is installed; a private apt sources list, lists directory and empty status file per architecture, on this
# machine's Debian mirror, as test/lab/engines.sh does for the engines):
#
#   plugin/arch/fetch.sh node ARCH DIR   DIR: ARCH's Node (Debian 13's nodejs, >= 20) and only what it loads: the
#                                        libraries of its ELF closure (and the dynamic loader) and the JavaScript of
#                                        Debian's unbundled builtins it names; laid out for the plugin's config.json
#                                        (/usr/local/bin/node). Prints "nodejs=VERSION".
#   plugin/arch/fetch.sh tree ARCH       prints the directory where every package of that Node is unpacked (the
#                                        unit suite runs on it: tests load more of glibc than the plugin)
#   plugin/arch/fetch.sh qemu ARCH       prints the path of ARCH's static user-mode emulator (Debian 13's qemu-user,
#                                        the successor of qemu-user-static): only that binary is kept
#
# The .debs stay in .cache/debian/ARCH: later builds need no network (remove the directory for Debian's newer builds).
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/arch.sh
SUITE=trixie
CACHE=$PWD/.cache

die() { echo "fetch.sh: $*" >&2; exit 1; }

mirror() {
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [[ -n $uri ]] || uri=$(awk '/^deb / && $0 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  [[ -n $uri ]] || die "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
  echo "$uri"
}

# apt-get options of the private apt of SUITE for one architecture (nothing of the host's apt state is read or written).
apt_opts() { # arch
  local apt=$CACHE/debian/.apt-$SUITE-$1
  echo -q -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o "Dir::State::Lists=$apt/lists" -o "Dir::State::status=$apt/status" -o "Dir::Cache=$apt/cache" \
    -o APT::Sandbox::User=root -o "APT::Architecture=$1" -o "APT::Architectures=$1"
}

update() { # arch
  local apt=$CACHE/debian/.apt-$SUITE-$1
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
  : >"$apt/status"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(mirror) $SUITE main" >"$apt/sources.list"
  # shellcheck disable=SC2046
  apt-get $(apt_opts "$1") update >"$apt/update.log" 2>&1 ||
    { cat "$apt/update.log" >&2; die "cannot read Debian $SUITE's package list for $1 from $(mirror) (above)"; }
}

# Downloads PACKAGES and everything they depend on (no recommends) for ARCH into DIR, unless DIR/.packages says it
# holds them already. DIR/.packages: one package=version a line.
download() { # arch dir packages...
  local arch=$1 dir=$2
  shift 2
  [[ -f $dir/.packages && $(head -1 "$dir/.packages") == "# $*" ]] && return 0
  update "$arch"
  local plan
  # shellcheck disable=SC2046
  plan=$(apt-get $(apt_opts "$arch") -s install --no-install-recommends "$@" | awk '/^Inst / { print $2 "=" substr($3, 2) }')
  [[ -n $plan ]] || die "Debian $SUITE has no $* for $arch"
  rm -rf "$dir" && mkdir -p "$dir"
  # shellcheck disable=SC2046,SC2086
  (cd "$dir" && apt-get $(apt_opts "$arch") download $plan >"$dir/download.log" 2>&1) ||
    { cat "$dir/download.log" >&2; die "could not download $(echo $plan) from $(mirror) (above)"; }
  { echo "# $*"; echo "$plan"; } >"$dir/.packages"
}

# Copies FILE of the unpacked tree SRC into DST, and, when FILE is a symbolic link, what it points to (relative links).
copy_in() { # src dst file
  local src=$1 dst=$2 file=$3 target
  mkdir -p "$dst/$(dirname "$file")"
  cp -a "$src/$file" "$dst/$file"
  if [[ -L $src/$file ]]; then
    target=$(readlink "$src/$file")
    [[ $target == /* ]] && target=${target#/} || target=$(dirname "$file")/$target
    copy_in "$src" "$dst" "$(realpath -m -s --relative-to=/ "/$target")" # -s: the tree's links, not this machine's
  fi
}

# The shared libraries FILE needs (ELF NEEDED), found in the tree's library directories: paths relative to the tree.
needed() { # tree triplet file
  local tree=$1 triplet=$2 lib dir
  for lib in $(readelf -d "$tree/$3" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    for dir in usr/lib/$triplet lib/$triplet usr/lib lib; do
      [[ -e $tree/$dir/$lib ]] && { echo "$dir/$lib"; continue 2; }
    done
    die "$3 needs $lib, which no package of the closure holds"
  done
}

# Every package of the closure of nodejs for ARCH, unpacked into .cache/debian/ARCH/tree (once per set of .debs):
# the unit suite runs on it, and node_root takes its files from it.
tree() { # arch
  local arch=$1 debs=$CACHE/debian/$1
  local tree=$debs/tree
  download "$arch" "$debs" nodejs
  if ! cmp -s "$debs/.packages" "$tree/.packages" 2>/dev/null; then
    rm -rf "$tree" "$tree.tmp" && mkdir -p "$tree.tmp"
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$tree.tmp"; done
    ln -s usr/lib "$tree.tmp/lib" # merged /usr, which base-files makes on a Debian system
    cp "$debs/.packages" "$tree.tmp/.packages"
    mv "$tree.tmp" "$tree"
  fi
  echo "$tree"
}

node_root() { # arch dir
  local arch=$1 out=$2 triplet debs=$CACHE/debian/$1 tree
  triplet=$(arch_triplet "$arch")
  tree=$(tree "$arch")
  local version
  version=$(grep '^nodejs=' "$debs/.packages" | cut -d= -f2)
  [[ ${version%%.*} -ge 20 ]] || die "Debian $SUITE's nodejs is $version: Node 20 or later is needed"

  rm -rf "$out" && mkdir -p "$out/usr/local/bin" "$out/usr/lib"
  ln -s usr/lib "$out/lib"
  cp -a "$tree/usr/bin/node" "$out/usr/local/bin/node"
  # The ELF closure of node: each library once, with the symbolic links it is known by.
  local queue=(usr/bin/node) seen=" " file lib
  while ((${#queue[@]})); do
    file=${queue[0]} && queue=("${queue[@]:1}")
    for lib in $(needed "$tree" "$triplet" "$file"); do
      [[ $seen == *" $lib "* ]] && continue
      seen+="$lib "
      copy_in "$tree" "$out" "$lib"
      queue+=("$(realpath --relative-to="$tree" "$tree/$lib")")
    done
  done
  # The program interpreter, at the very path node names (e.g. /lib/ld-linux-aarch64.so.1 through /lib -> usr/lib).
  local interp
  interp=$(readelf -l "$tree/usr/bin/node" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')
  copy_in "$tree" "$out" "${interp#/}"
  [[ -e $out$interp ]] || die "the dynamic loader $interp is not in the tree"
  # Debian's node loads some builtins' JavaScript from /usr/share/nodejs (undici for fetch, cjs-module-lexer for
  # import of CommonJS, acorn for the REPL and assert's messages): the packages libnode names.
  local pkg
  for pkg in $(strings -n 8 "$tree/usr/lib/$triplet"/libnode.so.* | grep -o '^/usr/share/nodejs/[^/]*' | sort -u); do
    [[ -d $tree$pkg ]] && copy_in "$tree" "$out" "${pkg#/}"
  done
  echo "nodejs=$version"
}

qemu() { # arch
  local arch=$1 name dir=$CACHE/qemu
  name=qemu-$(arch_qemu "$arch")
  if [[ ! -x $dir/$name ]]; then
    local host
    host=$(host_arch)
    download "$host" "$dir/debs" qemu-user
    local deb
    deb=$(ls "$dir"/debs/qemu-user_*.deb) || die "no qemu-user package in $dir/debs"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -O "./usr/bin/$name" >"$dir/$name.tmp"
    chmod 755 "$dir/$name.tmp" && mv "$dir/$name.tmp" "$dir/$name"
    grep '^qemu-user=' "$dir/debs/.packages" >"$dir/$name.package"
    rm -rf "$dir/debs" # about 70 MB for the one binary kept
  fi
  echo "$dir/$name"
}

case ${1:-} in
  node) check_arch "${2:-}" && node_root "$2" "${3:?fetch.sh node ARCH DIR}" ;;
  tree) check_arch "${2:-}" && tree "$2" ;;
  qemu) check_arch "${2:-}" && qemu "$2" ;;
  *) echo "usage: plugin/arch/fetch.sh node ARCH DIR | tree ARCH | qemu ARCH" >&2 && exit 2 ;;
esac
