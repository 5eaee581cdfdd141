// The 2-minute fault soak (issue 28; test/chaos/soak.ts, `npm run chaos` for longer ones): 3 hosts and 3 etcd members,
// one cluster-wide range near full, clients starting and removing containers on every host while a seeded nemesis
// kills plugins, restarts dockerd, stops etcd members, wipes one's data, partitions hosts and fills a state disk. The checker, which
// shares no code with the plugin, must find nothing: no address on the wire claimed by two MACs at once, none doubled
// in Docker's view, no claim, record or link left, no refusal that lies, no request hung, every recovery within 5 s.
// Seeded: the seed and the schedule are in the output, and `npm run chaos -- --minutes 2 --seed <seed>` replays them.
import { expect, it } from 'vitest';
import { CI_SEED } from '../chaos/schedule';
import { failures, runSoak } from '../chaos/soak';

const SEED = Number(process.env.TSMV_CHAOS_SEED ?? CI_SEED);

it('a 2-minute soak of overlapping faults: nothing doubled, nothing leaked, no refusal that lies', async () => {
  const report = await runSoak({ minutes: 2, seed: SEED, workersPerHost: 5 });
  console.log(JSON.stringify(report, null, 2));
  expect(report.starts).toBeGreaterThan(20);
  expect(Object.values(report.faultsByKind).reduce((a, b) => a + b, 0)).toBeGreaterThan(5);
  expect(failures(report)).toEqual([]);
}, 600_000);
