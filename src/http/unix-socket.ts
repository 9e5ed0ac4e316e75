/**
 * A host-local Unix domain socket beside the TCP listener, the way a VMM reaches libvirt or
 * containerd: the same app answers on both (requests are handed to its server), and who may
 * connect is the socket file's mode and owner. A socket file left by a crash is replaced; one a
 * live server still answers on is refused, and so is a path that is not a socket.
 */
import { chmod, lstat, unlink } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';

/** Whether a server accepts connections on the socket at `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Removes a stale socket file at `path`; throws when the path is taken. */
async function clear(path: string): Promise<void> {
  const stat = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
  if (stat === null) return;
  if (!stat.isSocket()) throw new Error(`SOCKET_PATH ${path} exists and is not a socket: refusing to replace it`);
  if (await answers(path)) throw new Error(`SOCKET_PATH ${path} is in use: another server answers on it`);
  await unlink(path);
}

export interface UnixListener {
  readonly path: string;
  /**
   * Stops accepting and removes the file; resolves once every connection has ended (idle ones
   * at once, the others after their answers; `force` ends those still open, such as event
   * streams, after the app has closed).
   */
  close(): Promise<void>;
  force(): void;
}

/** Serves `app` on a Unix socket at `path` too, with file mode `mode` (e.g. 0o660). */
export async function listenUnix(app: FastifyInstance, path: string, mode: number): Promise<UnixListener> {
  await clear(path);
  const main = app.server;
  const server: Server = createServer({ keepAliveTimeout: main.keepAliveTimeout });
  server.on('request', (req, res) => main.emit('request', req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, mode);
  let closed: Promise<void> | null = null;
  return {
    path,
    close: () => {
      closed ??= (async () => {
        const ended = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await unlink(path).catch(() => undefined);
        await ended;
      })();
      return closed;
    },
    force: () => server.closeAllConnections()
  };
}
