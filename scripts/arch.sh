# The architectures the plugin is built for, by Debian's names (sourced by the build scripts; defines functions only).
# amd64 is built natively (this machine); the others are cross-compiled here and run under qemu for the tests.
ARCHES=(amd64 arm64)

# This machine's architecture, by Debian's name.
host_arch() {
  case $(uname -m) in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    *) uname -m ;;
  esac
}

# The GNU triplet of ARCH: its cross compilers' prefix (aarch64-linux-gnu-gcc) and its multiarch library directory.
arch_triplet() {
  case $1 in
    amd64) echo x86_64-linux-gnu ;;
    arm64) echo aarch64-linux-gnu ;;
    *) return 1 ;;
  esac
}

# The name qemu's user-mode emulator of ARCH has (qemu-aarch64), and node-gyp's --arch.
arch_qemu() { arch_triplet "$1" | cut -d- -f1; }
arch_node_gyp() { case $1 in amd64) echo x64 ;; *) echo "$1" ;; esac; }

# Fails with what to type when ARCH is not one of ARCHES.
check_arch() {
  local a
  for a in "${ARCHES[@]}"; do [[ $1 == "$a" ]] && return 0; done
  echo "unknown architecture '$1': one of ${ARCHES[*]} (Debian's names)" >&2
  return 2
}
