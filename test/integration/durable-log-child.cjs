// A process that keeps a durable log (the build, dist/state/durable-log.js) busy: workers append values in
// parallel and mark each one answered once it is durable, with a small slack so rewrites come often. Its memory is
// what the file replays to: every value, and whether it is answered. It says each acknowledged step on stdout,
// straight to the pipe (SIGKILL loses what process.stdout buffers). Killed from outside, or by itself at the
// n-th time a step of the log is reached (argv: path, workers, step, n).
const { readFileSync, existsSync, writeSync } = require('node:fs');
const { join } = require('node:path');
const { DurableLog, readLogLines } = require(join(__dirname, '../../dist/state/durable-log.js'));
const pino = require('pino');

const [path, workers, step, n] = process.argv.slice(2);
const silent = pino({ level: 'silent' });
const say = (line) => {
  for (;;) {
    try {
      return void writeSync(1, `${line}\n`);
    } catch (err) {
      if (err.code !== 'EAGAIN') throw err;
    }
  }
};

/** The file replayed: value -> answered. */
function replay() {
  const state = new Map();
  if (!existsSync(path)) return { state, lines: undefined };
  const lines = readLogLines(path, 'test log', silent);
  for (const line of lines) {
    const record = JSON.parse(line); // a line that is not whole JSON fails the run
    if (record.v !== undefined) state.set(record.v, state.get(record.v) || false);
    else if (record.a !== undefined) state.set(record.a, true);
    else for (const [v, a] of record.s) state.set(v, state.get(v) || a);
  }
  return { state, lines: lines.length };
}

const { state, lines } = replay();
let reached = 0;
const kill = (at) => () => {
  if (at === step && ++reached === Number(n)) process.kill(process.pid, 'SIGKILL');
};
const log = new DurableLog({
  path,
  name: 'test log',
  // A snapshot holds ten values a line, the appends one a line and one mark each: rewrites come every few batches.
  source: {
    snapshot: () => {
      const entries = [...state];
      const out = [];
      for (let i = 0; i < entries.length; i += 10) out.push(JSON.stringify({ s: entries.slice(i, i + 10) }));
      return out;
    },
    liveLines: () => Math.ceil(state.size / 10),
  },
  log: silent,
  slack: 16,
  lines,
  steps: { saved: kill('saved'), rewriteWritten: kill('rewriteWritten'), answered: kill('answered') },
});

let next = Math.max(0, ...state.keys()) + 1;
async function worker() {
  for (;;) {
    const v = next++;
    state.set(v, false);
    if (v % 2) {
      await log.append(JSON.stringify({ v }));
      say(`v ${v}`);
      log.mark(JSON.stringify({ a: v })); // a mark from outside the loop, at any time, as the cluster table's
      state.set(v, true);
      say(`a ${v}`);
    } else {
      let answered = false;
      await log.append(JSON.stringify({ v }), {
        answered: { line: JSON.stringify({ a: v }), apply: () => ((answered = true), state.set(v, true)) },
      });
      say(`v ${v}`);
      if (answered) say(`a ${v}`);
    }
  }
}
say(`start ${state.size}`);
Promise.all(Array.from({ length: Number(workers) }, worker)).catch((err) => {
  say(`error ${err.message}`);
  process.exit(1);
});
