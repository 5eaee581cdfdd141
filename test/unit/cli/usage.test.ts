// Every flag a command takes is in its --help and in docs/cli.md, and so are the exit statuses.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMAND_FLAGS, INTERNAL_FLAGS } from '../../../src/cli/flags';
import { COMMANDS, commandHelp, USAGE } from '../../../src/cli/usage';

const DOC = readFileSync(join(__dirname, '../../../docs/cli.md'), 'utf8');
const README = readFileSync(join(__dirname, '../../../README.md'), 'utf8');

describe('the CLI reference', () => {
  it.each(COMMANDS)('%s: its --help and docs/cli.md name every flag it takes', (command) => {
    const spec = COMMAND_FLAGS[command];
    const flags = [...(spec.values ?? []), ...(spec.lists ?? []), ...(spec.switches ?? [])].filter(
      (flag) => !INTERNAL_FLAGS.includes(flag),
    );
    expect(flags.length).toBeGreaterThan(0);
    const help = commandHelp(command);
    expect(help).toMatch(new RegExp(`^usage: tsmacvlan ${command} `));
    expect(DOC).toContain(`## \`tsmacvlan ${command}\``);
    for (const flag of flags) {
      expect(help, `${command} --help`).toMatch(new RegExp(`${flag}\\b`));
      expect(DOC, `docs/cli.md on ${command} ${flag}`).toMatch(new RegExp(`\`${flag}[\\s\`=]`));
    }
    expect(USAGE).toMatch(new RegExp(`^ {2}${command} `, 'm'));
  });

  it('says what each exit status means, in --help and the docs; the README links the reference', () => {
    for (const text of [USAGE, commandHelp('doctor')])
      expect(text).toContain('exit status: 0 done, 1 a check or the operation failed, 2 a usage error');
    expect(DOC).toMatch(/^\| 2 \| a usage error/m);
    expect(README).toContain('(docs/cli.md)');
  });
});
