// What a command of the docs may say: the docker subcommands and flags the docs use (test/e2e/docs-docker.test.ts
// checks each against the lab engines' own clients), tsmacvlan's commands and flags as its usage text gives them,
// and the programs the docs may name. test/unit/docs.test.ts applies them to every command of the docs.

/** A command's flags: those that take a value, and those that do not. */
export interface FlagSet {
  values: string[];
  switches: string[];
  /** Positional words after which the rest belongs to something else (docker run's image: the container's command). */
  stopAfterPositionals?: number;
}

/** docker subcommands (as word paths) and their flags; short and long spellings both listed. */
export const DOCKER_FLAGS: Record<string, FlagSet> = {
  'network create': {
    values: [
      '-d',
      '--driver',
      '--subnet',
      '--gateway',
      '--ip-range',
      '--aux-address',
      '--ipam-driver',
      '--ipam-opt',
    ].concat(['-o', '--opt', '--scope', '--config-from', '--label']),
    switches: ['--ipv6', '--internal', '--attachable', '--config-only'],
  },
  'network rm': { values: [], switches: ['-f', '--force'] },
  'network connect': { values: ['--ip', '--ip6', '--alias', '--driver-opt'], switches: [] },
  'network disconnect': { values: [], switches: ['-f', '--force'] },
  'network inspect': { values: ['-f', '--format'], switches: [] },
  'network ls': { values: ['-f', '--filter', '--format'], switches: ['-q', '--quiet'] },
  run: {
    values: [
      '--name',
      '--network',
      '--ip',
      '--ip6',
      '--mac-address',
      '-v',
      '--volume',
      '-e',
      '--env',
      '--cap-add',
    ].concat(['--entrypoint']),
    switches: ['--rm', '-d', '--detach', '--privileged'],
    stopAfterPositionals: 1,
  },
  rm: { values: [], switches: ['-f', '--force'] },
  exec: { values: [], switches: [], stopAfterPositionals: 1 },
  info: { values: ['-f', '--format'], switches: [] },
  login: { values: ['-u', '--username'], switches: ['--password-stdin'] },
  'plugin install': { values: ['--alias'], switches: ['--grant-all-permissions', '--disable'] },
  'plugin upgrade': { values: [], switches: ['--grant-all-permissions', '--skip-remote-check'] },
  'plugin enable': { values: ['--timeout'], switches: [] },
  'plugin disable': { values: [], switches: ['-f', '--force'] },
  'plugin rm': { values: [], switches: ['-f', '--force'] },
  'plugin inspect': { values: ['-f', '--format'], switches: [] },
  'plugin set': { values: [], switches: [] },
  'plugin push': { values: [], switches: [] },
  'plugin ls': { values: [], switches: [] },
  'swarm init': { values: ['--advertise-addr'], switches: [] },
  'swarm join': { values: ['--token', '--advertise-addr'], switches: [] },
  'swarm leave': { values: [], switches: ['-f', '--force'] },
  'service create': { values: ['--name', '--network', '--endpoint-mode', '--replicas', '--mode'], switches: [] },
  'service scale': { values: [], switches: [] },
  'node update': { values: ['--availability'], switches: [] },
  // Compose v2, a CLI plugin: its own flags before the subcommand, then the subcommand's.
  compose: { values: ['-p', '--project-name', '-f', '--file'], switches: [] },
  'compose up': { values: [], switches: ['-d', '--detach', '--wait'] },
  'compose down': { values: ['-t', '--timeout'], switches: [] },
  'compose ps': { values: [], switches: ['-q', '--quiet'] },
};

/** Programs other than docker, tsmacvlan and npm that the docs may name (their arguments are not checked). */
export const OTHER_PROGRAMS = [
  'apt-get',
  'bash',
  'cd',
  'cp',
  'curl',
  'echo',
  'install',
  'ip',
  'journalctl',
  'modprobe',
  'npx',
  'promtool',
  'systemctl',
];

/** Walks a command's arguments against its flags: the positional words, values and switches; throws at the first problem. */
export function parseArgs(
  args: string[],
  flags: FlagSet,
): { positionals: string[]; values: [string, string][]; switches: string[] } {
  const positionals: string[] = [];
  const values: [string, string][] = [];
  const switches: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (flags.stopAfterPositionals !== undefined && positionals.length >= flags.stopAfterPositionals) {
      positionals.push(...args.slice(i));
      break;
    }
    if (arg === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const [flag, inline] = arg.split(/=(.*)/s, 2);
    if (flags.switches.includes(flag) && inline === undefined) {
      switches.push(flag);
      continue;
    }
    if (!flags.values.includes(flag)) throw new Error(`unknown flag ${flag}`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    values.push([flag, value]);
  }
  return { positionals, values, switches };
}

/** The longest docker subcommand path that starts the words after `docker`, and the words after it. */
export function dockerSubcommand(words: string[]): { path: string; args: string[] } | undefined {
  for (let n = Math.min(2, words.length); n >= 1; n--) {
    const path = words.slice(0, n).join(' ');
    if (DOCKER_FLAGS[path]) return { path, args: words.slice(n) };
  }
  return undefined;
}

/** True for a value that stands for something the reader fills in (`<...>`, `...`, `$VAR`, `URL`). */
export function isPlaceholder(value: string): boolean {
  return /[<>…$]|\.\.\.|^[A-Z][A-Z_]*$/.test(value);
}
