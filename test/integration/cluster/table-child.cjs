// A plugin instance's cluster table in a process of its own, for the crash-point walk: opens the table (which rolls
// back and applies what a killed predecessor left), runs the operations given, prints what they returned.
const pino = require('pino');
const { EtcdKv } = require('../../../dist/cluster/etcd');
const { ClusterTable } = require('../../../dist/cluster/table');
const { parseCidr, parseIp, formatIp, usableBounds } = require('../../../dist/ip/address');

async function main() {
  const args = JSON.parse(process.argv[2]);
  const kv = new EtcdKv({ endpoints: args.endpoints, prefix: args.prefix });
  const log = pino({ level: 'warn' }, pino.destination(2));
  const table = ClusterTable.open({ kv, instance: args.instance, stateDir: args.stateDir, log });
  await table.drained();
  const subnet = parseCidr(args.subnet).cidr;
  const { lo, hi } = usableBounds(subnet);
  const results = [];
  for (const op of args.ops) {
    if (op.op === 'take') {
      const address = op.address === undefined ? undefined : parseIp(op.address).value;
      const got = await table.take({ subnet, lo, hi, kind: op.kind, ref: op.ref, address });
      results.push(formatIp(subnet.v6, got));
    } else if (op.op === 'releasePool') {
      results.push(await table.releasePool(subnet, op.ref));
    } else {
      results.push(await table.release(subnet, parseIp(op.address).value, op.ref));
    }
  }
  await table.drained();
  await table.close();
  await kv.close();
  process.stdout.write(JSON.stringify(results));
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
