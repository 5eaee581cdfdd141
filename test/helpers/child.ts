// A child process awaited without blocking the event loop (spawnSync would stall the test worker's own RPC to vitest
// for as long as the child runs: minutes for a node under emulation, test/arm64/run.sh). The fields of spawnSync's.
import { spawn } from 'node:child_process';

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs cmd with args to its end (killed with SIGKILL after timeoutMs); never rejects for its exit status. */
export function runChild(cmd: string, args: string[], { cwd, timeoutMs }: { cwd?: string; timeoutMs: number }) {
  return new Promise<ChildResult>((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => (clearTimeout(timer), reject(err)));
    child.on('close', (status, signal) => (clearTimeout(timer), resolve({ status, signal, stdout, stderr })));
  });
}
