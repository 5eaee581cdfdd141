// What a test learns about the lab it runs in (test/lab/in-lab.sh made it): its run id and its namespace.
import { readlinkSync, statSync } from 'node:fs';
import { mountedAt } from '../helpers/net';

const HOW = 'run the e2e suite in a lab of its own: bash test/lab/in-lab.sh npx vitest run --project e2e';

/** This run's id: it names the lab's namespace and directory, the plugin instance and the tests' switches. */
export function runId(): string {
  const id = process.env.TSMV_RUN_ID;
  if (!id) throw new Error(`TSMV_RUN_ID is not set: ${HOW}`);
  return id;
}

/**
 * Throws unless this process runs inside the lab's own network and mount namespaces with the lab's engine as its
 * Docker: the e2e tests create links, addresses, routes and plugin sockets and drive Docker, which they may only do
 * there.
 */
export function assertInLab(): void {
  const netns = process.env.TSMV_LAB_NETNS;
  const root = process.env.TSMV_ENGINE_ROOT;
  if (!netns || !root) throw new Error(`not in a lab: ${HOW}`);
  const inode = (path: string) => statSync(path).ino;
  const here = readlinkSync('/proc/self/ns/net');
  if (here !== `net:[${inode(`/run/netns/${netns}`)}]`)
    throw new Error(`this process is in network namespace ${here}, not in the lab's ${netns}: ${HOW}`);
  if (process.env.DOCKER_HOST !== `unix://${root}/docker.sock`)
    throw new Error(`DOCKER_HOST is '${process.env.DOCKER_HOST}', not the lab engine's socket in ${root}: ${HOW}`);
  const own = { '/run/docker/plugins': 'tsmv-lab-plugins', '/run/containerd': 'tsmv-lab-containerd' };
  for (const [dir, source] of Object.entries(own))
    if (mountedAt(dir)?.source !== source)
      throw new Error(`${dir} is not the lab's own tmpfs (test/lab/own-mounts.sh): ${HOW}`);
}
