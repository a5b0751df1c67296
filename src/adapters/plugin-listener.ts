/**
 * Where a plugin server listens: the socket systemd hands over (fd 3, when
 * LISTEN_PID is our pid and LISTEN_FDS >= 1; shared/reference.md §2: Docker's
 * helper library never did this, so its first request got lost), or a unix
 * socket path bound with mode 0660. A stale socket left by a dead server is
 * replaced; a live one, or anything that is not a socket, is left alone.
 */
import { chmod, lstat, stat, unlink } from 'node:fs/promises';
import { connect, type Server } from 'node:net';
import { dirname } from 'node:path';
import { errorMessage, OperationError } from '../core/errors.js';
import { makeDirs } from './make-dirs.js';

/** The first fd systemd passes (SD_LISTEN_FDS_START). */
export const SYSTEMD_FIRST_FD = 3;

export interface ListenOptions {
  /** Socket path used when systemd passed nothing, e.g. /run/docker/plugins/zookeeper.sock. */
  socketPath: string;
  /** Environment to read LISTEN_* from; those variables are deleted from it once used. */
  env?: NodeJS.ProcessEnv;
  pid?: number;
  /** Permission bits of a socket bound by path. */
  mode?: number;
}

export interface BoundListener {
  kind: 'systemd' | 'path';
  /** The socket path, or "fd 3". */
  address: string;
  /** Stops listening; removes the socket file this process created. */
  close(): Promise<void>;
}

/** The fd to serve on when systemd socket activation applies to this process, else undefined. */
export function systemdListenFd(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  if (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) !== pid) return undefined;
  const count = Number(env.LISTEN_FDS);
  if (!Number.isInteger(count) || count < 1) return undefined;
  return SYSTEMD_FIRST_FD;
}

function listen(server: Server, options: { fd: number } | { path: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(options);
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

/** True when something accepts connections on the unix socket at `path`. */
function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const finish = (live: boolean) => {
      socket.destroy();
      resolve(live);
    };
    socket.setTimeout(1000, () => finish(true));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

async function removeStaleSocket(path: string): Promise<void> {
  let stats: Awaited<ReturnType<typeof lstat>>;
  try {
    stats = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!stats.isSocket()) {
    throw new OperationError(`${path} exists and is not a socket; refusing to replace it`);
  }
  if (await isLive(path)) {
    throw new OperationError(`another process is already serving on ${path}`);
  }
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

/** Binds `server` (any net.Server, e.g. an http.Server) per systemd or the socket path. */
export async function listenPlugin(server: Server, options: ListenOptions): Promise<BoundListener> {
  const env = options.env ?? process.env;
  const fd = systemdListenFd(env, options.pid ?? process.pid);
  if (fd !== undefined) {
    // Children (FUSE daemons) must not believe the sockets are theirs.
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
    try {
      await listen(server, { fd });
    } catch (error) {
      throw new OperationError(
        `cannot serve on the socket systemd passed (fd ${fd}): ${errorMessage(error)}`,
      );
    }
    return { kind: 'systemd', address: `fd ${fd}`, close: () => closeServer(server) };
  }

  const path = options.socketPath;
  await makeDirs(dirname(path), 0o755);
  await removeStaleSocket(path);
  // Bind with a tight umask so the socket is never reachable by others, then widen to the group.
  const oldMask = process.umask(0o177);
  let bound: Promise<void>;
  try {
    bound = listen(server, { path });
  } finally {
    process.umask(oldMask);
  }
  try {
    await bound;
  } catch (error) {
    throw new OperationError(`cannot listen on ${path}: ${errorMessage(error)}`);
  }
  await chmod(path, options.mode ?? 0o660);
  const { ino } = await stat(path);
  return {
    kind: 'path',
    address: path,
    close: async () => {
      await closeServer(server);
      // Remove our own socket file only, never one a newer server has bound since.
      const now = await stat(path).catch(() => undefined);
      if (now && now.ino === ino) await unlink(path).catch(() => {});
    },
  };
}
