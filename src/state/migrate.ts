// The state dir's formats: every kind of file in it carries its own format version, and `format.json` says which
// formats the whole dir is in. The plugin migrates an older state at start, before anything reads it: each file of
// an older format is rewritten in the current one (temp, sync, rename, sync dir: the file is whole in its old form or
// its new one), files already current are skipped (so a migration a crash cut short resumes where it stopped), and
// format.json is written last. Until it is, the state is the old one as far as any version can tell: every reader
// reads both forms of each file. A state written by a newer version is refused, never read in part.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { crashPoint } from './crash';
import { replaceFileSync } from './files';
import { isJsonObject } from './record-store';
import { softwareVersion } from './software-version';

/** One kind of file of the state dir (network records, IPAM journals, ...), for the migration and the readers. */
export interface StateFiles {
  /** Its name in format.json and in messages: 'network-record'. */
  kind: string;
  /** The format this code writes. */
  version: number;
  /** Its files in `stateDir` (paths). */
  files(stateDir: string): string[];
  /** The format a file is in; throws an Error naming the file when it cannot tell. */
  versionOf(path: string): number;
  /** Rewrites an older file in the current format, durably; `beforeRename` runs once the new form is synced. */
  migrate(path: string, beforeRename: () => void): void;
}

/** What format.json holds: the format of each kind of file, and the version of tsmacvlan that wrote it. */
export interface StateFormat {
  formats: Record<string, number>;
  writtenBy: string;
}

export const MARKER = 'format.json';

/** format.json of `stateDir`, or undefined when there is none (a state of 0.1.0, which had no formats, or none yet). */
export function readMarker(stateDir: string): StateFormat | undefined {
  const path = join(stateDir, MARKER);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(
      `${path} is not valid JSON (${(err as Error).message}); it is written whole or not at all, so something else changed it: restore it`,
    );
  }
  const formats = isJsonObject(value) ? value.formats : undefined;
  if (!isJsonObject(value) || !isJsonObject(formats) || Object.values(formats).some((v) => !Number.isSafeInteger(v)))
    throw new Error(`${path} does not say which formats the state is in ({"formats": {...}}); restore it`);
  return { formats: formats as Record<string, number>, writtenBy: String(value.writtenBy ?? 'an unknown version') };
}

/** The formats this code writes, as format.json holds them. */
export function currentFormats(kinds: readonly StateFiles[]): Record<string, number> {
  return Object.fromEntries(kinds.map((k) => [k.kind, k.version]));
}

/** Where `marker` says the state is newer than this code reads: "network-record format 3 (this one: 2)", ... */
function newerThanCode(marker: StateFormat, kinds: readonly StateFiles[]): string[] {
  const ours = currentFormats(kinds);
  return Object.entries(marker.formats).flatMap(([kind, version]) =>
    ours[kind] === undefined
      ? [`${kind} files, which this version does not know`]
      : version > ours[kind]
        ? [`${kind} format ${version} (this version reads up to ${ours[kind]})`]
        : [],
  );
}

/** The refusal of a state a newer version wrote: both versions, and what to do. */
function refusal(stateDir: string, marker: StateFormat, newer: string[]): string {
  return (
    `the state in ${stateDir} was written by tsmacvlan ${marker.writtenBy}, in formats newer than this tsmacvlan ` +
    `(${softwareVersion()}) reads: ${newer.join(', ')}. Run tsmacvlan ${marker.writtenBy} or newer on it ` +
    `(docker plugin upgrade, or the newer package). An older version cannot go back to a state a newer one ` +
    `migrated: to downgrade, remove the tsmacvlan networks with the newer version running, stop it, then move ` +
    `${stateDir} away`
  );
}

function sameFormats(a: Record<string, number>, b: Record<string, number>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** Writes format.json: the last step of a migration, and the first of a new state. */
function writeMarker(stateDir: string, kinds: readonly StateFiles[]): void {
  const marker: StateFormat = { formats: currentFormats(kinds), writtenBy: softwareVersion() };
  replaceFileSync(join(stateDir, MARKER), `${JSON.stringify(marker)}\n`);
}

/**
 * Brings `stateDir` to the formats of `kinds` before the plugin reads it (see the top of this file); creates it when
 * it does not exist. Throws the refusal for a state of newer formats, and an Error naming a file it cannot read.
 * Returns how many files it rewrote.
 */
export function migrateState(stateDir: string, kinds: readonly StateFiles[], log: Logger): number {
  const marker = readMarker(stateDir);
  if (marker) {
    const newer = newerThanCode(marker, kinds);
    if (newer.length) throw new Error(refusal(stateDir, marker, newer));
    if (sameFormats(marker.formats, currentFormats(kinds))) return 0;
  }
  if (!marker && holdsNoState(stateDir, kinds)) {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    writeMarker(stateDir, kinds);
    return 0;
  }
  const from = marker ? JSON.stringify(marker.formats) : 'tsmacvlan 0.1.0 (no format.json)';
  // Every file's format first: a file of a newer one refuses the state before anything is rewritten.
  const older: { kind: StateFiles; path: string; version: number }[] = [];
  for (const kind of kinds) {
    for (const path of kind.files(stateDir)) {
      const version = kind.versionOf(path);
      if (version > kind.version)
        throw new Error(
          `state file ${path} is ${kind.kind} format ${version}, newer than this tsmacvlan (${softwareVersion()}) reads (up to ${kind.version}); run the version that wrote it or a newer one`,
        );
      if (version < kind.version) older.push({ kind, path, version });
    }
  }
  for (const { kind, path, version } of older) {
    kind.migrate(path, () => crashPoint('migration-file-synced'));
    crashPoint('migration-file-replaced');
    log.info({ file: path, kind: kind.kind, from: version, to: kind.version }, 'migrated a state file');
  }
  crashPoint('migration-files-done');
  writeMarker(stateDir, kinds);
  log.warn(
    { stateDir, from, to: currentFormats(kinds), files: older.length },
    'migrated the state to the formats of this version; older versions cannot read it any more',
  );
  return older.length;
}

/** How a reader (status, doctor, gc) finds the state's formats. It never changes them: the plugin does, at start. */
export interface FormatReport {
  /** current: what this version writes; older: the plugin migrates it at its next start; newer: refused. */
  state: 'none' | 'current' | 'older' | 'newer';
  formats: Record<string, number> | null;
  writtenBy: string | null;
  message: string;
}

/**
 * True when `stateDir` holds no file of any kind: it does not exist, or it is a directory made for it before the
 * plugin's first start (the managed plugin's propagated mount, which Docker creates; its `tls/` put there first).
 */
function holdsNoState(stateDir: string, kinds: readonly StateFiles[]): boolean {
  return !existsSync(stateDir) || kinds.every((kind) => kind.files(stateDir).length === 0);
}

/** Reads format.json only (not every file): what a reader tells the operator about the state's formats. */
export function stateFormatOf(stateDir: string, kinds: readonly StateFiles[]): FormatReport {
  const marker = readMarker(stateDir);
  const current = JSON.stringify(currentFormats(kinds));
  if (!marker) {
    return holdsNoState(stateDir, kinds)
      ? { state: 'none', formats: null, writtenBy: null, message: 'no state yet' }
      : {
          state: 'older',
          formats: null,
          writtenBy: null,
          message: `written by tsmacvlan 0.1.0 (no ${MARKER}): the plugin migrates it to ${current} at its next start`,
        };
  }
  const newer = newerThanCode(marker, kinds);
  if (newer.length)
    return {
      state: 'newer',
      formats: marker.formats,
      writtenBy: marker.writtenBy,
      message: refusal(stateDir, marker, newer),
    };
  const same = sameFormats(marker.formats, currentFormats(kinds));
  return {
    state: same ? 'current' : 'older',
    formats: marker.formats,
    writtenBy: marker.writtenBy,
    message: same
      ? `formats ${current} (written by tsmacvlan ${marker.writtenBy})`
      : `formats ${JSON.stringify(marker.formats)} (written by tsmacvlan ${marker.writtenBy}): the plugin migrates it to ${current} at its next start`,
  };
}

/** Refuses (throws) a state of newer formats: for gc, which repairs but never migrates. */
export function refuseNewerState(stateDir: string, kinds: readonly StateFiles[]): void {
  const report = stateFormatOf(stateDir, kinds);
  if (report.state === 'newer') throw new Error(report.message);
}
