# The root filesystem of the tsmacvlan managed Docker plugin. plugin/create.sh builds it, exports it flattened
# into plugin/build/rootfs and runs `docker plugin create`. By hand:
#
#   bash plugin/base-image.sh                     # once, where no image registry is reachable: tsmacvlan-base:node20
#   docker build --network host -t tsmacvlan-rootfs .
#   docker build --network host --build-arg BASE=node:20-bookworm-slim -t tsmacvlan-rootfs .   # with a registry
#
# BASE must have node (>= 20) and npm on PATH, /bin/sh, rm and glibc (the netlink binding links against glibc: no
# Alpine/musl). `--network host` because npm needs the registry and the
# daemon may have no bridge network.
ARG BASE=tsmacvlan-base:node20

# ---- build: every dependency, TypeScript compiled to dist/
FROM ${BASE} AS build
# The npm registry (plugin/create.sh passes this machine's when it is a mirror); build args are RUN's environment.
ARG NPM_CONFIG_REGISTRY=https://registry.npmjs.org/
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_AUDIT=false NPM_CONFIG_FUND=false NPM_CONFIG_CACHE=/tmp/npm-cache
WORKDIR /src
COPY package.json package-lock.json ./
COPY scripts/build-netlink.sh scripts/arch.sh ./scripts/
COPY patches ./patches
RUN npm ci --ignore-scripts
# netlink's native binding must be our patched one (the prebuilt binary aborts the plugin on a netlink overflow): the
# one `npm ci` compiled on the building machine (the local base carries that machine's node and glibc, and an N-API
# binary does not depend on the Node version), replaced by one compiled here when the base can. Only shell builtins
# before that: the local base has no mkdir, cp or bash.
COPY node_modules/netlink/build/Release/netlink_binding.node ./node_modules/netlink/build/Release/
RUN if command -v g++ && command -v make && command -v python3 && command -v patch && command -v bash; then \
      bash scripts/build-netlink.sh; \
    fi >/dev/null
COPY tsconfig.json ./
COPY src ./src
# TypeScript only: the packet-socket addon (DHCP) is the one plugin/create.sh compiled on this machine (below).
RUN npx tsc -p tsconfig.json --sourceMap false && node -e "console.log(require('./dist/kernel/netlink-binding.js').checkPatchedNetlink())"

# ---- deps: production dependencies only
FROM ${BASE} AS deps
ARG NPM_CONFIG_REGISTRY=https://registry.npmjs.org/
ENV NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_AUDIT=false NPM_CONFIG_FUND=false NPM_CONFIG_CACHE=/tmp/npm-cache
WORKDIR /opt/tsmacvlan
COPY package.json package-lock.json ./
# Scripts off: the patched netlink binding comes from the build stage. Then what the plugin never loads goes (types,
# sources, maps, docs, tests, prebuilt binaries: plugin/prune.js, the same for every architecture).
RUN npm ci --omit=dev --ignore-scripts
COPY plugin/prune.js /tmp/
RUN node /tmp/prune.js /opt/tsmacvlan
COPY --from=build /src/node_modules/netlink/build/Release/netlink_binding.node ./node_modules/netlink/build/Release/

# ---- runtime: node, the production node_modules and dist/
FROM ${BASE} AS runtime
# npm, npx, corepack and yarn are not used at run time; the plugin rootfs is exported flattened, so removing
# them here does shrink it.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack /opt/yarn-* \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg \
      /root/.npm /tmp/*
WORKDIR /opt/tsmacvlan
COPY --from=deps /opt/tsmacvlan ./
COPY --from=build /src/dist ./dist
# The N-API addon of DHCP's packet socket, compiled by plugin/create.sh with this machine's C compiler (the base has
# none); like the netlink binding it needs glibc only, not this Node version.
COPY build/packet_socket.node ./build/
# Fail here, not at plugin start, when the patched netlink binding cannot load on this base (e.g. no glibc).
RUN ["node", "-e", "require('/opt/tsmacvlan/dist/kernel/netlink-binding.js').checkPatchedNetlink(); require('/opt/tsmacvlan/build/packet_socket.node'); console.log('patched netlink binding and packet socket addon load')"]
# plugin/create.sh removes the images this label marks once a newer build replaces them.
LABEL tsmacvlan.rootfs=true
ENTRYPOINT ["node", "--max-semi-space-size=1", "/opt/tsmacvlan/dist/cli/main.js"]
CMD ["serve"]
