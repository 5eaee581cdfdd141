// `npm run chaos -- --minutes N [--seed S] [--clients C]`: the fault soak (test/chaos/soak.ts) in a lab of its own.
// Prints the seed and the fault schedule first (the same seed replays the same faults), the report at the end, and
// exits 1 when the checker found anything. Usage errors exit 2.
import { CHAOS_FLAGS } from './flags';
import { failures, runSoak } from './soak';

function usage(message: string): never {
  console.error(`chaos: ${message}\nusage: npm run chaos -- --minutes N [--seed S] [--clients PER_HOST]`);
  process.exit(2);
}

function parse(argv: string[]): { minutes: number; seed: number; clients?: number } {
  const out: { minutes: number; seed: number; clients?: number } = {
    minutes: 2,
    seed: Math.floor(Math.random() * 2 ** 31),
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--') continue;
    const value = Number(argv[i + 1]);
    if (!CHAOS_FLAGS.values.includes(flag)) usage(`unknown argument '${flag}'`);
    if (!Number.isFinite(value) || value <= 0) usage(`${flag} needs a positive number, not '${argv[i + 1] ?? ''}'`);
    if (flag === '--minutes') out.minutes = value;
    else if (flag === '--seed') out.seed = Math.floor(value);
    else out.clients = Math.floor(value);
    i++;
  }
  return out;
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const report = await runSoak({ minutes: args.minutes, seed: args.seed, workersPerHost: args.clients });
  console.log(JSON.stringify(report, null, 2));
  const failed = failures(report);
  if (failed.length) {
    console.log(`chaos: FAILED (seed ${report.seed}):\n${failed.map((l) => `  ${l}`).join('\n')}`);
    process.exit(1);
  }
  console.log(
    `chaos: passed (seed ${report.seed}): ${report.starts} starts, ${Object.values(report.faultsByKind).reduce((a, b) => a + b, 0)} faults`,
  );
  process.exit(0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
