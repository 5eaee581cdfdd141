// The netlink package's native binding must be our patched build (scripts/build-netlink.sh, run at npm install): the
// prebuilt binary the package ships aborts the whole process (SIGABRT) when a netlink socket's receive buffer
// overflows, which a storm of link events does.
import { dirname } from 'node:path';

interface NodeGypBuild {
  (dir: string): { tsmacvlanPatch?: number };
  /** The path of the binary `node-gyp-build(dir)` loads: build/Release first, else a prebuild. */
  resolve(dir: string): string;
}

/** Bumped with patches/netlink+0.3.0.patch whenever the patch changes what the plugin relies on. */
export const NETLINK_PATCH_LEVEL = 1;

/**
 * The path of the binding the netlink package in `dir` loads (the same module instance: `require` caches it); throws
 * unless it is ours.
 */
export function checkPatchedNetlink(dir = dirname(require.resolve('netlink/package.json'))): string {
  const nodeGypBuild = require('node-gyp-build') as NodeGypBuild;
  const path = nodeGypBuild.resolve(dir);
  if (nodeGypBuild(dir).tsmacvlanPatch !== NETLINK_PATCH_LEVEL) {
    throw new Error(
      `the netlink native binding loaded from ${path} is not tsmacvlan's patched build (level ${NETLINK_PATCH_LEVEL}); ` +
        'that one aborts the process when a netlink socket overflows. Build it with `npm run build:netlink` ' +
        '(needs g++, make and python3: apt-get install build-essential python3)',
    );
  }
  return path;
}
