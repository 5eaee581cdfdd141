// The soak's nemesis: it runs a planned fault (test/chaos/schedule.ts) against the multi-host lab and heals it. Faults
// of different kinds overlap; two faults that need one thing (a host's plugin or engine, the etcd cluster, the
// switch's port flags) wait for each other, so every heal restores what its own fault took.
import { execFile, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FaultRecord } from './checker';
import type { FaultKind, PlannedFault } from './schedule';
import type { MultiHostLab } from '../lab/multi-host';

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const FILLER = '.soak-filler';

/** What a fault needs to itself while it lasts. */
function resourceOf(kind: FaultKind, target: number): string {
  if (kind.startsWith('etcd')) return 'etcd';
  if (kind.startsWith('partition')) return 'switch-flags';
  return `host${target}`;
}

/** The command every container of the soak runs (test/chaos/soak.ts): how its processes are told from others. */
export const CLAIMER = 'while :; do ping -c 1 -W 1 10.201.0.250 >/dev/null 2>&1; done';

/** The parent pid of `pid`, or 0 when it is gone. */
function parentOf(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]);
  } catch {
    return 0;
  }
}

/** Whether a containerd shim is among the ancestors of `pid`. */
function underShim(pid: number): boolean {
  for (let p = parentOf(pid); p > 1; p = parentOf(p)) {
    try {
      if (readFileSync(`/proc/${p}/comm`, 'utf8').startsWith('containerd-shim')) return true;
    } catch {
      return false;
    }
  }
  return false;
}

/**
 * SIGKILLs the processes of an engine's containers that no shim holds any more, and says how many. engine.sh's kill
 * takes containerd and its shims with dockerd, but a container's own processes outlive their shim, and one whose
 * start was under way at the kill (its runc still running) comes alive after it: the restarted engine counts such a
 * container dead and its address is handed out again while the orphan still answers for it, which no real crash of
 * a host does. A container's processes are told by their root: the overlay mount of a layer under the engine's data
 * root, in a mount namespace of their own (their /proc/PID/root reads '/').
 */
function killOrphans(engineRoot: string): number {
  const ours = readlinkSync('/proc/self/ns/mnt');
  const upper = ` / / `;
  const layer = `upperdir=${engineRoot}/data/`;
  let killed = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/mnt`) === ours) continue;
      const root = readFileSync(`/proc/${entry}/mountinfo`, 'utf8')
        .split('\n')
        .find((line) => line.includes(upper));
      if (!root?.includes(layer) || underShim(Number(entry))) continue;
      process.kill(Number(entry), 'SIGKILL');
      killed++;
    } catch {
      // gone meanwhile
    }
  }
  return killed;
}

export class Nemesis {
  readonly faults: FaultRecord[] = [];
  /** Per host index, when its dockerd was killed (its containers died then). */
  readonly deaths = new Map<number, number[]>();
  private readonly busy = new Map<string, Promise<void>>();

  constructor(
    private readonly lab: MultiHostLab,
    private readonly t0: number,
    private readonly log: (line: string) => void,
    /** Called when a fault heals, with the hosts it hit that no other fault hits now. */
    private readonly onHealed: (healed: FaultRecord, quietHosts: number[]) => void,
  ) {}

  private now(): number {
    return Date.now() - this.t0;
  }

  /** Kills the orphans of the host's engine (see killOrphans) and logs how many there were. */
  private sweepOrphans(host: MultiHostLab['hosts'][number], when: string): void {
    const killed = killOrphans(host.engine.root);
    if (killed)
      this.log(
        `nemesis: +${(this.now() / 1000).toFixed(1)}s ${killed} orphaned container processes of ${host.name}'s engine killed ${when}`,
      );
  }

  /** Runs the plan to its end: each fault at its moment (or once what it needs is free), held, then healed. */
  async run(plan: PlannedFault[], stopped: () => boolean): Promise<void> {
    const running: Promise<void>[] = [];
    for (const fault of plan) {
      const wait = fault.at - this.now();
      if (wait > 0) await sleep(wait);
      if (stopped()) break;
      running.push(this.one(fault));
    }
    await Promise.all(running);
  }

  private async one(fault: PlannedFault): Promise<void> {
    const key = resourceOf(fault.kind, fault.target);
    const before = this.busy.get(key) ?? Promise.resolve();
    const mine = before.then(() => this.inflict(fault));
    this.busy.set(
      key,
      mine.catch(() => {}),
    );
    await mine.catch((err: Error) => this.log(`nemesis: ${fault.kind} ${fault.target} failed: ${err.message}`));
  }

  private async inflict(fault: PlannedFault): Promise<void> {
    const record: FaultRecord = { kind: fault.kind, started: this.now() };
    const host = this.lab.hosts[fault.target % this.lab.hosts.length];
    if (!fault.kind.startsWith('etcd') && fault.kind !== 'partition-hosts') record.host = fault.target;
    this.faults.push(record);
    let heal: () => Promise<void>;
    try {
      heal = await this.start(fault, host, record);
      await sleep(fault.hold);
    } catch (err) {
      heal = async () => {};
      this.log(
        `nemesis: +${(record.started / 1000).toFixed(1)}s ${fault.kind} could not start: ${(err as Error).message}`,
      );
    }
    try {
      await heal();
    } finally {
      record.healed = this.now();
      this.log(
        `nemesis: +${(record.started / 1000).toFixed(1)}s ${fault.kind}${/^etcd-(stop-one|data-loss)$/.test(record.kind) ? ` m${fault.target % 3}` : record.host === undefined ? '' : ` h${fault.target + 1}`} healed after ${record.healed - record.started} ms`,
      );
      const hit = record.host === undefined ? this.lab.hosts.map((_, h) => h) : [record.host];
      const inPlace = this.faults.filter((f) => f.healed === undefined);
      const quiet = hit.filter((h) => !inPlace.some((f) => f.host === undefined || f.host === h));
      this.onHealed(record, quiet);
    }
  }

  /** Puts the fault in place; resolves to its heal. */
  private async start(
    fault: PlannedFault,
    host: MultiHostLab['hosts'][number],
    record: FaultRecord,
  ): Promise<() => Promise<void>> {
    const lab = this.lab;
    switch (fault.kind) {
      case 'plugin-kill':
        await lab.killPlugin(host);
        return () => this.restartPlugin(host);
      case 'dockerd-restart': {
        await host.engine.kill();
        this.sweepOrphans(host, 'at the kill');
        this.deaths.set(fault.target, [...(this.deaths.get(fault.target) ?? []), this.now()]);
        return async () => {
          this.sweepOrphans(host, 'before the restart');
          await host.engine.restart();
          this.sweepOrphans(host, 'after the restart');
        };
      }
      case 'etcd-stop-one':
        return this.stopMembers([fault.target % 3]);
      case 'etcd-data-loss': {
        // Killed, wiped and removed; added back as a new member at the heal, which returns once it serves.
        const member = fault.target % 3;
        await lab.etcd.loseMember(member);
        return () => lab.etcd.rejoinMember(member);
      }
      case 'etcd-stop-majority':
        return this.stopMembers([fault.target % 3, (fault.target + 1) % 3]);
      case 'etcd-stop-leader': {
        const leader = lab.etcd.leader();
        record.kind = `etcd-stop-leader`;
        return this.stopMembers([leader]);
      }
      case 'partition-etcd': {
        // Isolated bridge ports do not forward to each other: the host and the etcd members' port, not the other hosts.
        const ports = [`h${fault.target + 1}`, 'lab'];
        await this.isolate(ports, true);
        return () => this.isolate(ports, false);
      }
      case 'partition-hosts': {
        // Every host isolated from every other; all still reach etcd.
        const ports = lab.hosts.map((h) => h.name);
        await this.isolate(ports, true);
        return () => this.isolate(ports, false);
      }
      case 'isolate':
        await execFileP('ip', ['-n', lab.switchNs, 'link', 'set', host.name, 'down']);
        return async () => void (await execFileP('ip', ['-n', lab.switchNs, 'link', 'set', host.name, 'up']));
      case 'disk-full': {
        const filler = join(host.stateDir, FILLER);
        // dd stops at ENOSPC (and fails then): the tmpfs is full.
        await execFileP('dd', ['if=/dev/zero', `of=${filler}`, 'bs=64k']).catch(() => undefined);
        return async () => rmSync(filler, { force: true });
      }
    }
  }

  /** The plugin again, on its state; tried until it comes up (a full disk may refuse a start). */
  private async restartPlugin(host: MultiHostLab['hosts'][number]): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        return await this.lab.restartPlugin(host);
      } catch (err) {
        if (tries >= 30) throw err;
        this.log(`nemesis: the plugin of ${host.name} did not start: ${(err as Error).message.slice(0, 300)}`);
        await this.lab.killPlugin(host); // one that came up late would share the socket with the next
        await sleep(1_000);
      }
    }
  }

  private async stopMembers(members: number[]): Promise<() => Promise<void>> {
    // The etcd helper keeps its children private; their PIDs are what SIGSTOP needs.
    const children = (this.lab.etcd as unknown as { members: { child?: ChildProcess }[] }).members;
    const pids = members.map((i) => children[i].child?.pid).filter((pid): pid is number => pid !== undefined);
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    return async () => {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    };
  }

  private async isolate(ports: string[], on: boolean): Promise<void> {
    for (const port of ports)
      await execFileP('ip', [
        '-n',
        this.lab.switchNs,
        'link',
        'set',
        'dev',
        port,
        'type',
        'bridge_slave',
        'isolated',
        on ? 'on' : 'off',
      ]);
  }
}
