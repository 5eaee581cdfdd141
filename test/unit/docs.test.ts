// The docs lead only if what they say can be typed: every shell command of README.md and docs/*.md (fenced blocks
// and inline command spans, test/helpers/doc-commands.ts) is checked here against the real thing where it exists
// in this repository (tsmacvlan's usage text, the driver's option parser, the plugin's config.json, package.json's
// scripts, the build scripts' --help) and against the docker flags the lab's clients have (test/helpers/doc-checks.ts,
// itself checked by test/e2e/docs-docker.test.ts). Also: every relative link and anchor resolves, the README stays
// under 15 kB, and docs/compose.md shows the very file the Compose test brings up.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseNetworkOptions, OPTIONS } from '../../src/driver/network-options';
import { IPAM_OPTIONS } from '../../src/ipam/pool-request';
import { COMMAND_FLAGS, INTERNAL_FLAGS } from '../../src/cli/flags';
import { CHAOS_FLAGS } from '../chaos/flags';
import { codeBlocks, commandsOf, type DocCommand, docCommands, markdownFiles } from '../helpers/doc-commands';
import {
  DOCKER_FLAGS,
  dockerSubcommand,
  type FlagSet,
  isPlaceholder,
  OTHER_PROGRAMS,
  parseArgs,
} from '../helpers/doc-checks';

const REPO = join(__dirname, '../..');
const read = (path: string) => readFileSync(join(REPO, path), 'utf8');
const PACKAGE = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
const CONFIG = JSON.parse(read('config.json')) as {
  env: { name: string; settable?: string[] }[];
  mounts?: { name: string; settable?: string[] }[];
};

/** The text every environment variable a command sets must appear in (a misspelt one is then caught). */
const SOURCES = (() => {
  const texts: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(join(REPO, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (path === 'test/unit/docs.test.ts')
        continue; // its own misspellings
      else if (/\.(ts|mjs|sh|yml|json|service)$|Dockerfile$/.test(entry.name)) texts.push(read(path));
    }
  };
  for (const dir of ['src', 'test', 'plugin', 'scripts']) walk(dir);
  return texts.join('\n') + read('Dockerfile') + read('package.json');
})();

const scriptFlagSets = new Map<string, FlagSet>();
/** The flags a build script's --help lists (its usage line: `[--enable] [--reuse] [NAME]`). */
function scriptFlags(script: string): FlagSet {
  const known = scriptFlagSets.get(script);
  if (known) return known;
  const help = execFileSync('bash', [join(REPO, script), '--help'], { encoding: 'utf8' });
  const flags: FlagSet = { values: [], switches: ['--'] };
  for (const m of help.matchAll(/\[(--[a-z-]+)( [A-Z]+)?\]/g)) (m[2] ? flags.values : flags.switches).push(m[1]);
  scriptFlagSets.set(script, flags);
  return flags;
}

/**
 * `docker network create`: the driver options of a tsmacvlan network (or of a config-only network, which the docs
 * make for one) through the driver's own parser, values included unless one is a placeholder (then the names only).
 */
function checkNetworkCreate(values: [string, string][], switches: string[]): void {
  const get = (...flags: string[]) => values.filter(([f]) => flags.includes(f)).map(([, v]) => v);
  const driver = get('-d', '--driver')[0] ?? '';
  const opts: Record<string, string> = {};
  for (const opt of get('-o', '--opt')) {
    const [key, value] = opt.split(/=(.*)/s, 2);
    opts[key] = value ?? '';
  }
  if (driver.startsWith('tsmacvlan') || switches.includes('--config-only')) {
    const unknown = Object.keys(opts).filter((key) => !(OPTIONS as readonly string[]).includes(key));
    if (unknown.length || !Object.values(opts).some(isPlaceholder)) parseNetworkOptions(opts);
  }
  if ((get('--ipam-driver')[0] ?? '').startsWith('tsmacvlan'))
    for (const opt of get('--ipam-opt')) {
      const key = opt.split('=')[0];
      if (!(IPAM_OPTIONS as readonly string[]).includes(key))
        throw new Error(`--ipam-opt ${key} is not an option of the IPAM`);
    }
}

/** `docker plugin set NAME K=V...` / `docker plugin install REF K=V...`: K must be a setting of config.json. */
function checkPluginSettings(settings: string[]): void {
  const names = [
    ...CONFIG.env.filter((e) => e.settable?.includes('value')).map((e) => e.name),
    ...(CONFIG.mounts ?? []).filter((m) => m.settable?.includes('source')).map((m) => `${m.name}.source`),
  ];
  for (const setting of settings) {
    const name = setting.split('=')[0];
    if (!names.includes(name))
      throw new Error(`${name} is not a setting of the plugin (config.json: ${names.join(', ')})`);
  }
}

function checkDocker(words: string[]): void {
  if (words[0] === 'compose') {
    const global = parseArgs(words.slice(1), { ...DOCKER_FLAGS.compose, stopAfterPositionals: 1 });
    const [sub, ...rest] = global.positionals;
    if (sub === undefined) return;
    const flags = DOCKER_FLAGS[`compose ${sub}`];
    if (!flags) throw new Error(`docker compose ${sub} is not among the subcommands the docs may use`);
    parseArgs(rest, flags);
    return;
  }
  const sub = dockerSubcommand(words);
  if (!sub) throw new Error(`docker ${words.slice(0, 2).join(' ')} is not among the subcommands the docs may use`);
  const { positionals, values, switches } = parseArgs(sub.args, DOCKER_FLAGS[sub.path]);
  if (sub.path === 'network create') checkNetworkCreate(values, switches);
  if (sub.path === 'plugin set' || sub.path === 'plugin install') checkPluginSettings(positionals.slice(1));
}

let usage: Map<string, FlagSet> | undefined;
function checkTsmacvlan(words: string[]): void {
  // The CLI's own flag table, the one its parser uses (a unit test keeps every flag in --help and docs/cli.md).
  usage ??= new Map(
    Object.entries(COMMAND_FLAGS).map(([name, spec]) => [
      name,
      {
        values: [...(spec.values ?? []), ...(spec.lists ?? [])].filter((flag) => !INTERNAL_FLAGS.includes(flag)),
        switches: spec.switches ?? [],
      },
    ]),
  );
  const [command, ...args] = words;
  if (command === undefined || command.startsWith('-')) {
    parseArgs(words, { values: [], switches: ['--help', '-h', '--version'] });
    return;
  }
  // `tsmacvlan help COMMAND` and `tsmacvlan COMMAND --help`, COMMAND as a placeholder, are the CLI's own help.
  if (command === 'help' && args.length <= 1) return;
  if (command === 'COMMAND' && args.join(' ') === '--help') return;
  const flags = usage.get(command);
  if (!flags) throw new Error(`tsmacvlan has no command ${command} (its usage: ${[...usage.keys()].join(', ')})`);
  parseArgs(args, { ...flags, switches: [...flags.switches, '--help', '-h'] });
}

function checkNpm(words: string[]): void {
  const [verb, ...args] = words;
  if (['ci', 'test', 'start', 'pack'].includes(verb) && args.length === 0) return;
  if (verb === 'prune' && args.join(' ') === '--omit=dev') return;
  // The CLI from a packed tarball (docs/cli.md): `npm install -g ./tsmacvlan-X.tgz`, `npm uninstall -g tsmacvlan`.
  if (verb === 'install' && args[0] === '-g' && /^\.\/tsmacvlan-[\w.]+\.tgz$/.test(args[1] ?? '') && args.length === 2)
    return;
  if (verb === 'uninstall' && args.join(' ') === '-g tsmacvlan') return;
  if (verb !== 'run') throw new Error(`npm ${verb} ${args.join(' ')} is not a command the docs may use`);
  const [script, ...rest] = args;
  if (!PACKAGE.scripts[script]) throw new Error(`package.json has no script ${script}`);
  const file = /^bash (plugin\/[\w-]+\.sh)$/.exec(PACKAGE.scripts[script])?.[1];
  if (rest.length === 0) return;
  if (!file && script !== 'chaos') throw new Error(`npm run ${script} takes no arguments`);
  if (rest[0] !== '--') throw new Error(`npm run ${script} ${rest[0]}: arguments go after --`);
  parseArgs(rest.slice(1), file ? scriptFlags(file) : { ...CHAOS_FLAGS, switches: ['--'] });
}

/** Checks one command; throws what is wrong with it. */
function check(cmd: DocCommand): void {
  for (const assignment of cmd.env) {
    const name = assignment.split('=')[0];
    const shellVariable = cmd.words.length === 0 && /^[a-z]+$/.test(name); // state=$(...): the reader's own
    if (!shellVariable && !new RegExp(`\\b${name}\\b`).test(SOURCES))
      throw new Error(`the environment variable ${name} is read nowhere in this repository`);
  }
  const [program, ...words] = cmd.words;
  if (program === undefined) return;
  if (program === 'docker') return checkDocker(words);
  if (program === 'tsmacvlan') return checkTsmacvlan(words);
  if (program === 'npm') return checkNpm(words);
  if (program === 'bash' && words[0]?.includes('/') && !existsSync(join(REPO, words[0])))
    throw new Error(`${words[0]} does not exist`);
  if (!OTHER_PROGRAMS.includes(program))
    throw new Error(`${program} is not a program the docs may name (test/helpers/doc-checks.ts OTHER_PROGRAMS)`);
}

describe('the commands in README.md and docs/*.md', () => {
  const commands = docCommands(REPO);

  it('are found: the fenced blocks and the inline command spans', () => {
    expect(commands.length).toBeGreaterThan(50);
    expect(commands.some((c) => c.file === 'README.md' && c.words[0] === 'docker')).toBe(true);
  });

  it('name only flags, options, settings, scripts and files that exist', () => {
    const wrong: string[] = [];
    for (const cmd of commands) {
      const refused = /\brefused\b/.test(cmd.comment);
      let problem: string | undefined;
      try {
        check(cmd);
      } catch (err) {
        problem = (err as Error).message.split('\n')[0];
      }
      if (refused && !problem) wrong.push(`${cmd.file}:${cmd.line}: marked refused, yet passes: ${cmd.source}`);
      if (!refused && problem) wrong.push(`${cmd.file}:${cmd.line}: ${problem}: ${cmd.source}`);
    }
    expect(wrong).toEqual([]);
  }, 60_000); // it runs the CLI and the build scripts for their usage: seconds on a busy machine
});

describe('the checks themselves', () => {
  const fails = (text: string) => {
    try {
      for (const c of commandsOf('test', 1, text)) check(c);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  };

  it('refuse a misspelt flag, option, setting, script, subcommand and program', { timeout: 60_000 }, () => {
    expect(fails('docker network create -d tsmacvlan --subnett 10.0.0.0/24 lan')).toMatch(/unknown flag --subnett/);
    expect(fails('docker network create -d tsmacvlan -o parnet=eth1 lan')).toMatch(/unknown option 'parnet'/);
    expect(fails('docker network create -d tsmacvlan -o macvlan_mode=brdge lan')).toMatch(/not a macvlan mode/);
    expect(fails('docker network create -d tsmacvlan --ipam-driver tsmacvlan --ipam-opt scop=host lan')).toMatch(
      /scop is not an option/,
    );
    expect(fails('docker plugin set tsmacvlan:latest LOGLEVEL=debug')).toMatch(/LOGLEVEL is not a setting/);
    expect(fails('npm run plugin:pusj -- x')).toMatch(/no script plugin:pusj/);
    expect(fails('npm run plugin:create -- --enabel')).toMatch(/unknown flag --enabel/);
    expect(fails('tsmacvlan doctor --parnet eth1')).toMatch(/unknown flag --parnet/);
    expect(fails('tsmacvlan dcotor')).toMatch(/no command dcotor/);
    expect(fails('docker plugin instal x')).toMatch(/not among the subcommands/);
    expect(fails('docker compose up --detatch')).toMatch(/unknown flag --detatch/);
    expect(fails('TSMACVLAN_PARNET=eth1 docker compose up -d')).toMatch(/TSMACVLAN_PARNET is read nowhere/);
    expect(fails('rm -rf /var/lib/tsmacvlan')).toMatch(/rm is not a program/);
    expect(fails('bash plugin/nothing.sh')).toMatch(/does not exist/);
  });

  it('accept what the parsers accept', () => {
    expect(fails('docker network create -d tsmacvlan:latest -o parent=eth1.10 -o macvlan_mode=private lan')).toBe(
      undefined,
    );
    expect(fails('tsmacvlan gc --cluster --forget-instance ID --dry-run --etcd http://e:2379')).toBe(undefined);
    expect(fails('state=$(docker plugin inspect -f {{.Id}} x) && echo "$state"')).toBe(undefined);
  });
});

describe('the links of README.md and docs/*.md', () => {
  it('lead to files and headings that exist', () => {
    const broken: string[] = [];
    for (const file of markdownFiles(REPO)) {
      const text = read(file);
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1];
        if (/^[a-z]+:/.test(target)) continue; // http(s), mailto
        const [path, anchor] = target.split('#');
        const resolved = path ? normalize(join(dirname(file), path)) : file;
        if (!existsSync(join(REPO, resolved))) broken.push(`${file}: ${target}: no file ${resolved}`);
        else if (anchor && statSync(join(REPO, resolved)).isFile() && !anchors(read(resolved)).includes(anchor))
          broken.push(`${file}: ${target}: no heading #${anchor} in ${resolved}`);
      }
    }
    expect(broken).toEqual([]);
  });
});

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens. */
function anchors(markdown: string): string[] {
  return [...markdown.matchAll(/^#+ (.+)$/gm)].map((m) =>
    m[1]
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, '')
      .replace(/ /g, '-'),
  );
}

describe('README.md', () => {
  it('stays under 15 kB', () => {
    expect(statSync(join(REPO, 'README.md')).size).toBeLessThanOrEqual(15_000);
  });
});

describe('docs/compose.md', () => {
  it('shows the very Compose file test/e2e/compose.test.ts brings up', () => {
    const [block] = codeBlocks('docs/compose.md', read('docs/compose.md')).filter((b) => b.lang === 'yaml');
    const file = read('test/e2e/compose.yml').replace(/^#.*\n/gm, '');
    expect(block.text.trim()).toBe(file.trim());
  });
});
