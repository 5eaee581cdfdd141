// Summarises a V8 CPU profile (node --cpu-prof): self time by package (fastify, pino, netlink, node core, the
// plugin's own dist/, the garbage collector...) and the functions with the most self time, optionally per unit of
// work (e.g. per endpoint life). `node test/bench/profile.mjs FILE.cpuprofile [units [fromUs toUs]]` prints it.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';

function category(frame) {
  const { functionName, url } = frame;
  if (!url) {
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(garbage collector)') return '(garbage collector)';
    if (functionName === '(program)') return '(program: V8/native, no JS frame)';
    if (functionName === '(root)') return '(root)';
    return 'native (C++ bindings)';
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith('node:')) return 'node core';
  if (/\/dist\//.test(url)) return 'tsmacvlan (dist/)';
  return 'other JS';
}

const BUCKETS = [
  [/^(pino|sonic-boom|thread-stream|on-exit-leak-free)$/, 'logging (pino)'],
  [/^netlink$/, 'netlink library (encode/decode)'],
  [
    /^(fastify|find-my-way|avvio|light-my-request|fast-json-stringify|ajv|ajv-formats|fast-uri|@fastify\/.*|fast-content-type-parse|toad-cache|secure-json-parse|rfdc|fastq|abstract-logging|process-warning)$/,
    'fastify (routing, validation, hooks, reply)',
  ],
  [/^tsmacvlan/, 'tsmacvlan (dist/)'],
];

/** The package a sample is charged to: the innermost frame of a known package (node core and native code count for their caller). */
function bucket(stack) {
  const leaf = stack[0];
  if (leaf.callFrame.functionName === 'send' && /netlink\/dist\/raw\.js$/.test(leaf.callFrame.url))
    return 'kernel: netlink sendmsg (the kernel does the request in it)';
  for (const node of stack) {
    const cat = category(node.callFrame);
    if (cat.startsWith('(')) return cat;
    for (const [re, name] of BUCKETS) if (re.test(cat)) return name;
  }
  const leafCat = category(leaf.callFrame);
  return leafCat === 'node core' || leafCat.startsWith('native')
    ? 'node core (http server, streams, fs, timers)'
    : leafCat;
}

/**
 * Self time by package and by function, and time by "bucket" (the package that caused it). `window` ({ fromUs, toUs },
 * CLOCK_MONOTONIC in µs as process.hrtime.bigint() / 1000n gives in any process) keeps only the samples taken in it,
 * e.g. leaving out start-up. Two weights: `wall` charges each sample the time since the previous one (a thread
 * blocked in a system call, e.g. the netlink sendmsg in which the kernel deletes a link, is sampled when it comes
 * back, still in that call); `cpu` caps that at twice the sampling interval, an estimate of on-CPU time.
 */
export function summarizeProfile(path, units = 1, window = undefined) {
  const profile = JSON.parse(readFileSync(path, 'utf8'));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const stackOf = (id) => {
    const stack = [];
    for (let at = id; at !== undefined; at = parentOf.get(at)) stack.push(byId.get(at));
    return stack;
  };
  const { samples, timeDeltas } = profile;
  const picked = [];
  let at = profile.startTime;
  for (let i = 0; i < samples.length; i++) {
    at += timeDeltas[i];
    if (window && (at < window.fromUs || at > window.toUs)) continue;
    picked.push([samples[i], Math.max(0, timeDeltas[i])]);
  }
  const deltas = picked.map(([, d]) => d).sort((a, b) => a - b);
  const interval = deltas[deltas.length >> 1] ?? 1000;
  const cap = 2 * interval;

  const add = (map, key, wall, cpu) => {
    const entry = map.get(key) ?? { wall: 0, cpu: 0 };
    entry.wall += wall;
    entry.cpu += cpu;
    map.set(key, entry);
  };
  const categories = new Map();
  const functions = new Map();
  const buckets = new Map();
  const total = { wall: 0, cpu: 0 };
  const stacks = new Map();
  for (const [id, wall] of picked) {
    const cpu = Math.min(wall, cap);
    const frame = byId.get(id).callFrame;
    const cat = category(frame);
    add(categories, cat, wall, cpu);
    if (cat === '(idle)') continue;
    total.wall += wall;
    total.cpu += cpu;
    if (!stacks.has(id)) stacks.set(id, bucket(stackOf(id)));
    add(buckets, stacks.get(id), wall, cpu);
    if (cat.startsWith('(')) continue;
    const key = `${frame.functionName || '(anonymous)'} ${frame.url ? `${basename(frame.url)}:${frame.lineNumber + 1}` : '(native)'} [${cat}]`;
    add(functions, key, wall, cpu);
  }
  const per = (us) => +(us / 1000 / units).toFixed(3);
  const view = (map, weight, limit = 100) =>
    Object.fromEntries(
      [...map]
        .filter(([key]) => key !== '(idle)')
        .sort((a, b) => b[1][weight] - a[1][weight])
        .slice(0, limit)
        .map(([key, v]) => [key, per(v[weight])]),
    );
  return {
    file: basename(path),
    units,
    samples: picked.length,
    samplingIntervalUs: interval,
    wallMs: +((window ? window.toUs - window.fromUs : profile.endTime - profile.startTime) / 1000).toFixed(1),
    mainThreadBusyMsPerUnit: { wall: per(total.wall), cpu: per(total.cpu) },
    byCauseMsPerUnit: { wall: view(buckets, 'wall'), cpu: view(buckets, 'cpu') },
    bySelfPackageCpuMsPerUnit: view(categories, 'cpu'),
    topFunctionsCpuMsPerUnit: view(functions, 'cpu', 20),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, units, fromUs, toUs] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node test/bench/profile.mjs FILE.cpuprofile [units]');
    process.exit(2);
  }
  const window = fromUs && toUs ? { fromUs: Number(fromUs), toUs: Number(toUs) } : undefined;
  console.log(JSON.stringify(summarizeProfile(file, Number(units ?? 1), window), null, 2));
}
