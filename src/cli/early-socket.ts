// The plugin's socket, bound before the server's modules load, holding the connections that arrive meanwhile.
// Docker waits for a managed plugin's socket about 12 s (a dial, then 4 more 3 s apart) whatever `docker plugin
// enable --timeout` says, then stops the plugin; loading the server can take longer on a slow CPU (an arm64 plugin
// under emulation: docs/arm64.md). Docker's requests themselves wait for the answer as long as --timeout allows.
import { existsSync, mkdirSync, rmSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { socketAnswers } from './socket-probe';

export class EarlySocket {
  /** The socket bound and not handed over yet: what a start that failed meanwhile gives up (abandonUnclaimed). */
  private static unclaimed: EarlySocket | undefined;
  private readonly held = new Set<Socket>();

  /** A start that fails before the server listens leaves no socket file (the process exits on its error). */
  private readonly removeOnExit = () => rmSync(this.path, { force: true });

  private constructor(
    readonly path: string,
    private readonly server: Server,
  ) {
    server.on('connection', (socket) => {
      this.held.add(socket);
      socket.once('close', () => this.held.delete(socket));
    });
    process.once('exit', this.removeOnExit);
    EarlySocket.unclaimed = this;
  }

  /**
   * A start failed before the server took the socket over: it stops listening, drops the connections it held (Docker
   * then gets an error at once rather than waiting on them) and removes the file, for a process that does not exit
   * yet (cli/serve.ts, stayUntilStopped).
   */
  static abandonUnclaimed(): void {
    const early = EarlySocket.unclaimed;
    EarlySocket.unclaimed = undefined;
    if (!early) return;
    early.server.close();
    for (const socket of early.held) socket.destroy();
    early.held.clear();
    process.off('exit', early.removeOnExit);
    early.removeOnExit();
  }

  /**
   * Listens on `path`, 0600 (only root may talk to the plugin; a umask, so it is never briefly open to others).
   * Refuses a socket another server answers on; a stale one is replaced.
   */
  static async bind(path: string): Promise<EarlySocket> {
    if (existsSync(path)) {
      if (await socketAnswers(path)) throw new Error(`another server is already listening on ${path}`);
      unlinkSync(path);
    }
    mkdirSync(dirname(path), { recursive: true });
    const server = createServer({ pauseOnConnect: true }); // nothing is read: the HTTP server reads it all
    const umask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => (server.off('error', reject), resolve()));
      });
    } finally {
      process.umask(umask);
    }
    return new EarlySocket(path, server);
  }

  /**
   * Stops listening and removes the file, so that the server can listen on it next, and gives the connections held
   * so far (still paused, unread) to `take`, once it is called: `take` then owns them. Connections still waiting in
   * the kernel's queue when the socket closes would be reset: the event loop runs first, which accepts them (while the
   * modules load, nothing does). One that comes after finds no socket until the server listens, and Docker retries it.
   */
  async handOver(): Promise<(take: (socket: Socket) => void) => void> {
    for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve)); // a whole turn, its I/O polled
    EarlySocket.unclaimed = undefined;
    this.server.close();
    process.off('exit', this.removeOnExit);
    rmSync(this.path, { force: true });
    const held = [...this.held];
    this.held.clear();
    return (take) => {
      for (const socket of held) if (!socket.destroyed) take(socket);
    };
  }
}
