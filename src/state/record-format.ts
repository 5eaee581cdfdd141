// The format version every JSON state record carries in its `format` field, and the upgrades that bring a record of
// an older format up to the one this code writes. Readers upgrade in memory (status, doctor and gc never write); the
// plugin's start-up migration (migrate.ts) rewrites the files.
import { softwareVersion } from './software-version';

export type JsonObject = Record<string, unknown>;

/** The field of a record that holds its format. A record without it was written before formats existed: format 1. */
export const FORMAT_FIELD = 'format';

export interface RecordFormat {
  /** What the records are, for messages: 'network record'. */
  name: string;
  /** The format this code writes. */
  version: number;
  /**
   * `upgrades[v]` turns a record of format v - 1 into format v (pure, given the record without its `format`
   * field); one for every v from 2 up to `version`. Adding a format: bump `version`, add its upgrade.
   */
  upgrades: Readonly<Record<number, (record: JsonObject) => JsonObject>>;
}

/** Thrown for a record of a format newer than this code reads: names both formats and what to do. */
export class NewerFormatError extends Error {}

export function newerFormatMessage(what: string, found: number, reads: number): string {
  return `${what} is in format ${found}, newer than this tsmacvlan (${softwareVersion()}) reads (up to format ${reads}): a newer tsmacvlan wrote it; run that version or a newer one`;
}

/** Whether an error message is newerFormatMessage's (whose advice is not "fix or remove it"). */
export function isNewerFormatMessage(message: string): boolean {
  return message.includes(', newer than this tsmacvlan (');
}

/** The format a parsed record is in, or a problem with its `format` field. */
export function formatOf(record: JsonObject): number | string {
  const value = record[FORMAT_FIELD];
  if (value === undefined) return 1;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)
    return `field '${FORMAT_FIELD}' is not a format version (a whole number from 1)`;
  return value;
}

/**
 * The record in the format this code writes, without its `format` field, or why it cannot be: a malformed
 * `format` (a string) or a newer one (a NewerFormatError).
 */
export function upgradeRecord(format: RecordFormat, record: JsonObject): JsonObject | string {
  const found = formatOf(record);
  if (typeof found === 'string') return found;
  if (found > format.version)
    throw new NewerFormatError(newerFormatMessage(`this ${format.name}`, found, format.version));
  const { [FORMAT_FIELD]: _, ...rest } = record;
  let value: JsonObject = rest;
  for (let v = found + 1; v <= format.version; v++) value = format.upgrades[v](value);
  return value;
}

/** The text of a record as it is written: its format first, then its fields. */
export function recordText(format: RecordFormat, record: object): string {
  return JSON.stringify({ [FORMAT_FIELD]: format.version, ...record });
}
