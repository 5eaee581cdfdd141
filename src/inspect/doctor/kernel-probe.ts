// Doctor: can this kernel make macvlan, ipvlan and 802.1q links? Tried in a throwaway network namespace.
import { execFile } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Links } from '../../kernel/links';
import { KernelError } from '../../kernel/errors';
import { MARK_PROBE } from '../../kernel/marks';
import type { Check } from './check';
export interface ProbeResult {
  ok: boolean;
  errno?: string;
}

/** What `doctor --probe-kernel` prints: the link it made to hang things on, and whether macvlan, ipvlan and VLAN links could be made (null: not tried). */
export interface KernelProbe {
  lower: 'veth' | 'dummy' | null;
  lowerErrno?: string;
  macvlan: ProbeResult | null;
  ipvlan: ProbeResult | null;
  vlan: ProbeResult | null;
}

function errnoName(err: unknown): string {
  return err instanceof KernelError ? err.errno : err instanceof Error ? err.message : String(err);
}

async function attempt(create: () => Promise<void>, remove: () => Promise<unknown>): Promise<ProbeResult> {
  try {
    await create();
  } catch (err) {
    return { ok: false, errno: errnoName(err) };
  }
  try {
    await remove();
  } catch (err) {
    return { ok: false, errno: `created, but could not delete it: ${errnoName(err)}` };
  }
  return { ok: true };
}

/** Kinds of the fallback devices (tunl0, sit0, gre0...) the kernel puts in every new namespace once their module is loaded. */
const FALLBACK_TUNNELS = new Set([
  'ipip',
  'sit',
  'ip6tnl',
  'gre',
  'gretap',
  'erspan',
  'ip6gre',
  'ip6gretap',
  'ip6erspan',
  'vti',
  'vti6',
]);

/**
 * The kernel test itself, run by `doctor --probe-kernel=<outer netns>` in the throwaway namespace `unshare --net` made.
 * It refuses to run anywhere but a fresh namespace (not doctor's own, and holding nothing but `lo` and the kernel's
 * fallback tunnels, all down), so it can never create links on the host; and it deletes what it made, although the
 * namespace's end would.
 */
export async function probeKernel(outerNetns: string): Promise<KernelProbe> {
  const here = readlinkSync('/proc/self/ns/net');
  const refuse = (why: string) =>
    new Error(`refusing to probe the kernel: ${why}; 'tsmacvlan doctor' runs the probe itself, under 'unshare --net'`);
  if (here === outerNetns) throw refuse(`this is the namespace doctor runs in (${here})`);
  const links = new Links();
  try {
    const others = (await links.list())
      .filter((l) => !l.loopback && !(FALLBACK_TUNNELS.has(l.kind ?? '') && !l.up))
      .map((l) => l.name);
    if (others.length) throw refuse(`this network namespace is not a fresh one (it has ${others.join(', ')})`);
    // The namespace is new and empty: these names cannot clash with anything, and everything dies with it.
    let lower: KernelProbe['lower'] = null;
    let lowerErrno: string | undefined;
    try {
      await links.createVethPair('probe0', 'probe1', MARK_PROBE);
      lower = 'veth';
    } catch (err) {
      lowerErrno = errnoName(err);
      try {
        await links.createDummy('probe0', MARK_PROBE);
        lower = 'dummy';
      } catch {
        // neither: nothing to hang a macvlan or a VLAN on
      }
    }
    const base = lower ? await links.get('probe0') : undefined;
    if (!base) return { lower: null, ...(lowerErrno && { lowerErrno }), macvlan: null, ipvlan: null, vlan: null };
    try {
      const macvlan = await attempt(
        () =>
          links.createChild({ name: 'probemv', parentIndex: base.index, kind: 'macvlan', mode: 'bridge' }, MARK_PROBE),
        () => links.delete('probemv'),
      );
      // After the macvlan is gone: the kernel never puts both kinds on one parent.
      const ipvlan = await attempt(
        () =>
          links.createChild(
            { name: 'probeiv', parentIndex: base.index, kind: 'ipvlan', mode: 'l2', flag: 'bridge' },
            MARK_PROBE,
          ),
        () => links.delete('probeiv'),
      );
      const vlan = await attempt(
        () => links.createVlan('probe0.10', base.index, 10, '802.1q', MARK_PROBE),
        () => links.delete('probe0.10'),
      );
      return { lower, macvlan, ipvlan, vlan };
    } finally {
      await links.delete('probe0').catch(() => undefined); // a veth's peer goes with it
    }
  } finally {
    links.close();
  }
}

/**
 * Runs the probe in a throwaway network namespace and returns what it found.
 * Why a child process under `unshare --net`: Node cannot unshare(2) or setns(2) itself, and the probe must not touch
 * the host's namespace (creating test links there, even briefly, is a change on the host, and one a crash could
 * leave behind). A namespace made by `unshare --net` lives exactly as long as the child: the kernel destroys it, and
 * every link in it, when the child exits, even if it is killed, so nothing is ever left to clean up. The alternatives
 * are worse: `ip netns add` leaves a named namespace behind on a crash; creating links into another namespace by
 * IFLA_NET_NS_PID still needs a child process to hold that namespace, plus netnsid bookkeeping for every later call.
 * util-linux's unshare is on every Debian; the child is this CLI (`doctor --probe-kernel`), never the daemon, which
 * spawns nothing. Creating a macvlan or VLAN link may autoload its kernel module, exactly as the plugin's would.
 */
export function runKernelProbe(
  cli = join(__dirname, '../../cli/main.js'),
  timeoutMs = 60_000,
): Promise<KernelProbe | { error: string }> {
  const outer = readlinkSync('/proc/self/ns/net');
  return new Promise((resolve) => {
    execFile(
      'unshare',
      ['--net', '--', process.execPath, cli, 'doctor', `--probe-kernel=${outer}`],
      { timeout: timeoutMs, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          const why =
            (err as NodeJS.ErrnoException).code === 'ENOENT'
              ? `'unshare' (util-linux) is not installed`
              : /Operation not permitted/.test(stderr)
                ? 'this process may not make a network namespace (it needs CAP_SYS_ADMIN, which the CLI image is not given)'
                : (stderr.trim() || err.message).split('\n')[0];
          resolve({ error: why });
          return;
        }
        try {
          resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '') as KernelProbe);
        } catch {
          resolve({ error: `the probe printed no result: ${(stdout + stderr).trim().slice(0, 200)}` });
        }
      },
    );
  });
}

const LOAD_MACVLAN =
  "load the module: modprobe macvlan; if it is not found, install your kernel's full module package (e.g. linux-modules-extra-$(uname -r) on Ubuntu) or use a kernel built with CONFIG_MACVLAN";
const LOAD_8021Q =
  'load 802.1q support: modprobe 8021q (at every boot: echo 8021q > /etc/modules-load.d/8021q.conf); if the module is not found, this kernel was built without CONFIG_VLAN_8021Q: install one with it. Networks on plain interfaces do not need it';
const NOT_SUPPORTED = new Set(['EOPNOTSUPP', 'ENOTSUP']);

const LOAD_IPVLAN =
  "load the module: modprobe ipvlan (at every boot: echo ipvlan > /etc/modules-load.d/ipvlan.conf); if it is not found, install your kernel's full module package (e.g. linux-modules-extra-$(uname -r) on Ubuntu) or use a kernel built with CONFIG_IPVLAN. macvlan networks do not need it";

/**
 * A verdict on a kind of link only some networks need (802.1q for VLAN parents, ipvlan for ipvlan networks): FAIL when
 * `users` (recorded networks, --parents) need it, else a WARN for the future.
 */
function optionalCheck(
  id: string,
  what: string,
  result: ProbeResult,
  users: { names: string[]; consequence: string },
  future: string,
  load: string,
): Check {
  const where = 'tried in a throwaway network namespace';
  if (result.ok) return { id, status: 'OK', message: `the kernel creates and deletes ${what} (${where})` };
  const { names, consequence } = users;
  return {
    id,
    status: names.length ? 'FAIL' : 'WARN',
    message: `the kernel cannot create ${what} (${result.errno}, ${where}): ${
      names.length
        ? `needed by ${names.join(', ')}, ${consequence}`
        : `no recorded network and no --parent needs one, only a future ${future} would`
    }`,
    fix: NOT_SUPPORTED.has(result.errno ?? '')
      ? load
      : `the kernel refused for another reason (${result.errno}); check 'dmesg'`,
  };
}

/**
 * The kernel's verdicts. Without 802.1q only networks on `<interface>.<vlan id>` parents fail, and without ipvlan only
 * ipvlan networks, so their absence FAILs only when `vlanUsers` / `ipvlanUsers` (recorded networks, `--parent`s) has
 * one; otherwise it is a WARN for the future.
 */
export function kernelChecks(
  probe: KernelProbe | { error: string },
  vlanUsers: string[] = [],
  ipvlanUsers: string[] = [],
): Check[] {
  const where = 'tried in a throwaway network namespace';
  const ids = ['kernel.macvlan', 'kernel.8021q', 'kernel.ipvlan'];
  if ('error' in probe) {
    const fix =
      'run doctor as root on the host, with util-linux installed, so it can test the kernel in a throwaway network namespace';
    const what = ['macvlan', '802.1q VLAN', 'ipvlan'];
    return ids.map((id, i) => ({
      id,
      status: 'WARN',
      message: `could not test ${what[i]} support: ${probe.error}`,
      fix,
    }));
  }
  if (!probe.lower || !probe.macvlan || !probe.vlan || !probe.ipvlan) {
    const message = `could not test: this kernel has neither veth nor dummy links (${probe.lowerErrno ?? 'unknown error'}), so doctor has no link to hang a test link on`;
    const fix =
      'load veth (modprobe veth) and run doctor again, or create a network on a spare interface to see whether it works';
    return ids.map((id) => ({ id, status: 'WARN', message, fix }));
  }
  const macvlan: Check = probe.macvlan.ok
    ? { id: 'kernel.macvlan', status: 'OK', message: `the kernel creates and deletes macvlan links (${where})` }
    : {
        id: 'kernel.macvlan',
        status: 'FAIL',
        message: `the kernel cannot create macvlan links (${probe.macvlan.errno}, ${where}): macvlan networks cannot work on this kernel (ipvlan networks may: see kernel.ipvlan)`,
        fix: NOT_SUPPORTED.has(probe.macvlan.errno ?? '')
          ? LOAD_MACVLAN
          : `the kernel refused for another reason (${probe.macvlan.errno}); check 'dmesg'`,
      };
  const vlan = optionalCheck(
    'kernel.8021q',
    '802.1q VLAN links',
    probe.vlan,
    { names: vlanUsers, consequence: 'whose VLAN parent cannot be created' },
    '-o parent=<interface>.<vlan id>',
    LOAD_8021Q,
  );
  const ipvlan = optionalCheck(
    'kernel.ipvlan',
    'ipvlan links',
    probe.ipvlan,
    { names: ipvlanUsers, consequence: 'whose containers cannot join it' },
    '-o ipvlan_mode=<l2|l3|l3s>',
    LOAD_IPVLAN,
  );
  return [macvlan, vlan, ipvlan];
}
