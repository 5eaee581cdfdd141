// Removes from the plugin's /opt/tsmacvlan what the plugin never loads, for every architecture (the Dockerfile runs it
// with the base's node, plugin/arch/rootfs.sh with this machine's):
//
//   node plugin/prune.js DIR      (DIR: the application directory, holding dist/ and node_modules/)
//
// Gone: type declarations, TypeScript sources, source maps (node reads them only with --enable-source-maps), Markdown
// other than licences, packages' test, doc and example directories, the @types packages, node-addon-api (headers for
// compiling, read by nothing at run time) and the netlink package's sources, prebuilt binaries (unpatched: the
// plugin refuses them) and object files. Licence files stay. Prints what it removed.
'use strict';
const { readdirSync, rmSync, statSync } = require('node:fs');
const { join } = require('node:path');

const FILE = /\.(d\.[cm]?ts|[cm]?ts|map)$|^(?!licen[cs]e).*\.(md|markdown)$/i;
const DIRECTORY = new Set(['test', 'tests', '__tests__', 'doc', 'docs', 'example', 'examples', 'benchmark', '.github']);
const PACKAGE_PATHS = [
  '@types',
  'node-addon-api',
  'netlink/prebuilds',
  'netlink/src',
  'netlink/binding.gyp',
  'netlink/build/Release/obj.target',
  'netlink/build/Release/.deps',
];

function sizeOf(path) {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.size;
  return readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0);
}

function remove(path) {
  const bytes = sizeOf(path);
  rmSync(path, { recursive: true, force: true });
  return bytes;
}

/** Walks a tree, removing what FILE and DIRECTORY name; returns the bytes removed. */
function prune(dir) {
  let bytes = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) bytes += DIRECTORY.has(entry.name) ? remove(path) : prune(path);
    else if (FILE.test(entry.name)) bytes += remove(path);
  }
  return bytes;
}

const app = process.argv[2];
if (!app || !statSync(join(app, 'node_modules'), { throwIfNoEntry: false })?.isDirectory()) {
  console.error('usage: node plugin/prune.js DIR (the directory holding node_modules/ and dist/)');
  process.exit(2);
}
let removed = PACKAGE_PATHS.reduce((sum, p) => sum + remove(join(app, 'node_modules', p)), 0);
removed += prune(join(app, 'node_modules'));
if (statSync(join(app, 'dist'), { throwIfNoEntry: false })) removed += prune(join(app, 'dist'));
console.log(`prune: ${(removed / 1e6).toFixed(1)} MB the plugin does not load removed from ${app}`);
