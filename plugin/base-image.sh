#!/usr/bin/env bash
# Builds a minimal Node.js base image from this machine's own Node (no image registry needed):
#
#   bash plugin/base-image.sh [IMAGE]        (default tsmacvlan-base:node20)
#
# The image holds what the Dockerfile needs, laid out like the official node:20-bookworm-slim image
# so the same Dockerfile works on either base:
#   /usr/local/bin/node                     the host's node binary (Node >= 20 required)
#   /usr/local/lib/node_modules/npm         the host's npm, with /usr/local/bin/npm and npx
#   /bin/sh                                 the host's /bin/sh (dash) for RUN and npm's lifecycle scripts
#   /usr/bin/env, /usr/bin/rm               npm's `#!/usr/bin/env node`; clean-ups in RUN steps
#   /usr/bin/unshare                        doctor's kernel test in a throwaway network namespace, when the CLI
#                                           runs from the plugin's image (`docker run ... doctor`)
#   the shared libraries of node and sh     found with ldd (glibc, libstdc++, ...), plus the dynamic loader
#   /etc/ssl/certs/ca-certificates.crt      the host's CA bundle (NODE_EXTRA_CA_CERTS), so npm trusts what
#                                           the host trusts (e.g. a TLS-inspecting egress proxy's CA)
#   /etc/passwd, /etc/group, /tmp, /root
#
# Environment: DOCKER (client, default `docker`), NODE (default `command -v node`), NPM_DIR (npm's package
# dir, default found from `command -v npm`).
set -euo pipefail

IMAGE=${1:-tsmacvlan-base:node20}
DOCKER=${DOCKER:-docker}
NODE=$(readlink -f "${NODE:-$(command -v node)}")
SH=$(readlink -f /bin/sh)
# A few host tools: env (npm's `#!/usr/bin/env node`) and rm for the Dockerfile's RUN steps; unshare for doctor.
TOOLS=("$(readlink -f /usr/bin/env)" "$(readlink -f "$(command -v rm)")" "$(readlink -f "$(command -v unshare)")")
# What the image holds, as a label: plugin/create.sh rebuilds an image of another layout.
LAYOUT=2

die() { echo "base-image: $*" >&2; exit 1; }
[[ -x $NODE ]] || die "no node binary found (set NODE=/path/to/node)"
major=$("$NODE" -p 'process.versions.node.split(".")[0]')
(( major >= 20 )) || die "$NODE is Node $("$NODE" --version); Node 20 or later is needed"
if [[ -z ${NPM_DIR:-} ]]; then
  npm_bin=$(command -v npm) || die "no npm found (set NPM_DIR=/path/to/node_modules/npm)"
  NPM_DIR=$(cd "$(dirname "$(readlink -f "$npm_bin")")/.." && pwd) # .../node_modules/npm/bin/npm-cli.js -> .../npm
fi
[[ -f $NPM_DIR/bin/npm-cli.js ]] || die "$NPM_DIR is not npm's package directory"

root=$(mktemp -d /tmp/tsmacvlan-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc/ssl/certs,tmp,root,usr/local/bin,usr/local/lib/node_modules,proc,sys,dev,run}
chmod 1777 "$root/tmp"
chmod 700 "$root/root"

# Debian/NodeSource builds of node carry ~12 MB of symbols and debug info: strip them from the copy when binutils
# is there (the dynamic symbol table that native addons link against stays).
if command -v strip >/dev/null; then strip -o "$root/usr/local/bin/node" "$NODE"; else cp "$NODE" "$root/usr/local/bin/node"; fi
cp -a "$NPM_DIR" "$root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
cp "$SH" "$root/bin/sh"
mkdir -p "$root/usr/bin"
for t in "${TOOLS[@]}"; do cp "$t" "$root/usr/bin/$(basename "$t")"; done

# Shared libraries (and the loader) of node and sh, at the paths the binaries look for them.
for lib in $(ldd "$NODE" "$SH" "${TOOLS[@]}" | grep -oE '/[^ ]+\.so[^ ]*' | sort -u); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# The dynamic loader must be at the very path the binaries name (e.g. /lib64/ld-linux-x86-64.so.2).
interp=$(grep -aoE '/lib(64)?/ld-linux[^ ]*\.so\.[0-9]+' <<<"$(ldd "$NODE")" | head -1 || true)
[[ -n $interp && -e $root$interp ]] || die "dynamic loader not copied ($interp)"

ca=/etc/ssl/certs/ca-certificates.crt
[[ -f $ca ]] && cp "$ca" "$root$ca"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"

changes=(--change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change 'CMD ["node"]'
         --change "LABEL tsmacvlan.base.node=$("$NODE" --version)" --change "LABEL tsmacvlan.base.layout=$LAYOUT")
[[ -f $root$ca ]] && changes+=(--change "ENV NODE_EXTRA_CA_CERTS=$ca")
tar -C "$root" --numeric-owner --owner=0 --group=0 -c . | "$DOCKER" import "${changes[@]}" - "$IMAGE" >/dev/null
echo "base-image: $IMAGE from $NODE ($("$NODE" --version)), npm $(cat "$NPM_DIR/package.json" | "$NODE" -p 'JSON.parse(require("fs").readFileSync(0)).version'), $(( $("$DOCKER" image inspect -f '{{.Size}}' "$IMAGE") / 1000000 )) MB"
