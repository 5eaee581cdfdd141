#!/usr/bin/env node
// Command line: `tsmacvlan serve` runs the plugin; doctor, status, gc and uninstall are the operator's (usage.ts).
// A command's modules load when it runs: --version and --help stay quick, and an operator command loads no server.
import { VERSION } from '../version';
import { COMMANDS, type Command, commandHelp, USAGE, UsageError } from './usage';

function isCommand(word: string | undefined): word is Command {
  return (COMMANDS as readonly (string | undefined)[]).includes(word);
}

/** Runs a command line; the exit status is what it resolves to, or 2 for a UsageError, 1 for any other error. */
async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (command === '--version' || command === 'version') {
    if (args.length) throw new UsageError(`${command} takes no arguments`, 'usage: tsmacvlan --version');
    console.log(`tsmacvlan ${VERSION}`);
    return 0;
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    const about = args[0];
    if (about !== undefined && !isCommand(about)) throw new UsageError(`unknown command '${about}'`, USAGE);
    console.log(about ? commandHelp(about) : USAGE);
    return 0;
  }
  if (command === undefined) throw new UsageError('no command given', USAGE);
  if (!isCommand(command)) throw new UsageError(`unknown command '${command}'`, USAGE);
  if (args.includes('--help') || args.includes('-h')) {
    console.log(commandHelp(command));
    return 0;
  }
  switch (command) {
    case 'serve':
      await (await import('./serve')).serveCommand(args);
      return 0;
    case 'doctor': {
      const options = (await import('./flags')).parseDoctorArgs(args);
      return (await import('../inspect/doctor/doctor')).doctor(options);
    }
    case 'status': {
      const options = (await import('./flags')).parseStatusArgs(args);
      return (await import('../inspect/status')).status(options);
    }
    case 'gc':
      return (await import('./gc')).gcCommand(args);
    case 'uninstall':
      return (await import('./uninstall')).uninstallCommand(args);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    console.error(`tsmacvlan: ${err.message}`);
    if (err instanceof UsageError && err.usage) console.error(err.usage);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
