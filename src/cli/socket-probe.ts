// Is a server listening on a unix socket? (A second plugin must not steal a live socket; gc and uninstall must not
// run under a live plugin.)
import { connect } from 'node:net';
import { existsSync } from 'node:fs';

/** True when something accepts a connection on `path`; false for no file, or a stale socket nobody listens on. */
export function socketAnswers(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => (probe.destroy(), resolve(true)));
    probe.once('error', () => resolve(false));
  });
}
