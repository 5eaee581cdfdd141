// The floors an endpoint life is measured against, done directly in one process: no HTTP, no framework, no records
// beyond what is written here. Runs inside a bench cell's network namespace (started with `nsenter -t <plugin pid> -n`,
// next to the plugin it is compared with) and takes commands over the IPC channel; it times itself, so the channel
// costs nothing in the figures.
//
//   kernel       the rtnetlink operations of a life, with dist/kernel/links.js (whatever it does to create and mark a link):
//                look up the parent, create the macvlan with its mark, delete it. What any macvlan driver must pay.
//   kernel+disk  the same plus the file operations the plugin's durability contract needs, done the plugin's way
//                (journal line + fdatasync for each IPAM change, record written, fsync'd, renamed and the directory
//                fsync'd for CreateEndpoint, unlink + directory fsync for DeleteEndpoint), and the link lookup
//                DeleteEndpoint does before deleting. What the plugin must pay before any of its own code runs.
import { mkdirSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { DIST } from './lib.mjs';

const require = createRequire(import.meta.url);
const { Links } = require(join(DIST, 'kernel/links.js'));
// The plugin's own record store, so the floor writes records exactly as the plugin does.
const { RecordStore } = require(join(DIST, 'state/record-store.js'));
const { ENDPOINT_RECORDS } = require(join(DIST, 'driver/record-formats.js'));

const MARK = 'tsmacvlan:endpoint'; // the plugin's alias, so the kernel does the same work
// Marked the way the plugin marks its links (a device group per driver name, where dist/ has kernel/marks.js), as a driver of
// its own: the plugin beside it never takes these links for its own.
let instanceGroup;
try {
  ({ instanceGroup } = require(join(DIST, 'kernel/marks.js')));
} catch {
  instanceGroup = undefined;
}
const links = instanceGroup ? new Links(instanceGroup('tsmv-bench-floor')) : new Links();
let parentName;
let dir;
let store;
let journal;
let counter = 0;

const mac = (n) => `02:43:${[24, 16, 8, 0].map((s) => ((n >>> s) & 255).toString(16).padStart(2, '0')).join(':')}`;
const nameOf = (n) => `tsbfl${n}`;
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

async function journalLine(line) {
  const buffer = Buffer.from(`${line}\n`);
  await journal.write(buffer, 0, buffer.length);
  await journal.datasync();
}

async function create(n) {
  const parent = await links.get(parentName);
  if (!parent) throw new Error(`parent ${parentName} is gone`);
  await links.createChild(
    { kind: 'macvlan', name: nameOf(n), parentIndex: parent.index, mode: 'bridge', mac: mac(n) },
    MARK,
  );
}

async function life(variant, pauseMs = 0) {
  const n = counter++;
  const steps = {};
  const cpu0 = cpuNow();
  let t = performance.now();
  const lap = (step) => {
    const now = performance.now();
    steps[step] = now - t;
    t = now;
  };
  const t0 = t;
  if (variant === 'kernel') {
    await create(n);
    lap('create');
    if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs)); // (experiments: the link's age at deletion)
    t = performance.now();
    await links.delete(nameOf(n));
    lap('delete');
  } else {
    const address = `10.0.${(n >> 8) & 255}.${n & 255}`;
    const id = n.toString(16).padStart(64, '0');
    await journalLine(`{"t":"d","a":"${address}","p":1}`);
    lap('RequestAddress');
    await store.put(id, { id, networkId: 'f'.repeat(64), mac: mac(n), ipv4: `${address}/16` });
    lap('CreateEndpoint');
    await create(n);
    lap('Join');
    lap('Leave');
    const d0 = t;
    const sub = (key, from) => (steps[key] = performance.now() - from);
    const link = await links.get(nameOf(n));
    sub('DeleteEndpoint: get link', d0);
    const d1 = performance.now();
    if (link) await links.delete(nameOf(n));
    sub('DeleteEndpoint: delete link', d1);
    const d2 = performance.now();
    await store.remove(id);
    sub('DeleteEndpoint: unlink + sync dir', d2);
    lap('DeleteEndpoint');
    await journalLine(`{"t":"f","a":"${address}","p":1}`);
    lap('ReleaseAddress');
  }
  return { ms: performance.now() - t0, cpuMs: cpuNow() - cpu0, steps };
}

/** `n` links created (or deleted) at once; how long until all are done, and how many failed. */
async function burst(phase, n) {
  const first = counter;
  if (phase === 'create') counter += n;
  else if (!burst.last) throw new Error('burst delete without a burst create');
  const numbers = phase === 'create' ? Array.from({ length: n }, (_, i) => first + i) : burst.last;
  const t0 = performance.now();
  const results = await Promise.allSettled(
    numbers.map((k) => (phase === 'create' ? create(k) : links.delete(nameOf(k)))),
  );
  const ms = performance.now() - t0;
  if (phase === 'create') burst.last = numbers;
  const failed = results.filter((r) => r.status === 'rejected');
  return { ms, failed: failed.length, firstError: failed[0]?.reason?.message };
}

async function handle(msg) {
  switch (msg.cmd) {
    case 'init':
      parentName = msg.parent;
      dir = msg.dir;
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      store = new RecordStore(dir, ENDPOINT_RECORDS);
      journal = await open(join(dir, 'journal.jnl'), 'a', 0o600);
      // As many records as the plugin next door holds, so a directory fsync costs what it costs the plugin.
      for (let i = 0; i < (msg.records ?? 0); i++) writeFileSync(join(dir, `r${i}.json`), '{}');
      return { pid: process.pid };
    case 'life':
      return life(msg.variant, msg.pauseMs);
    case 'burst':
      return burst(msg.phase, msg.n);
    case 'count': {
      const all = await links.list();
      return { links: all.length, pluginEndpointLinks: all.filter((l) => l.name.startsWith('tsmve')).length };
    }
    case 'metrics': {
      // The plugin's metrics, fetched from inside its namespace: the state's syncs (count and seconds) so far.
      const text = await (await fetch(`http://${msg.address}/metrics`)).text();
      const value = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      return {
        fsyncs: value('tsmacvlan_state_fsync_duration_seconds_count'),
        fsyncSeconds: value('tsmacvlan_state_fsync_duration_seconds_sum'),
      };
    }
    case 'exit':
      await journal?.close();
      links.close();
      setImmediate(() => process.exit(0));
      return {};
    default:
      throw new Error(`unknown command ${msg.cmd}`);
  }
}

process.on('message', (msg) => {
  handle(msg).then(
    (result) => process.send({ id: msg.id, result }),
    (err) => process.send({ id: msg.id, error: err.message }),
  );
});
process.on('disconnect', () => process.exit(0));
