/**
 * Keeping the kernel's caches of a mount exact, so it may keep attributes,
 * names and file pages for long (--attr-timeout) and still show another
 * host's change within milliseconds.
 *
 * fuse-native does not expose libfuse's notify calls, but a notification is
 * just a message written to the mount's /dev/fuse descriptor, which this
 * process holds (core/zkfs/fuse-notify.ts). It names nodes by the ids
 * libfuse gave them, and libfuse reports those ids as inode numbers (it
 * runs without use_ino), so lstat() of the path on our own mount tells us
 * the id — from the kernel's cache, without asking us, whenever there is
 * anything cached to drop.
 *
 * Only paths whose attributes the kernel got from us within the attribute
 * timeout can be cached there (getattr answers are recorded), so changes to
 * anything else cost nothing. Both lstat and the write run on libuv's
 * thread pool, never on the event loop: the kernel may make a notification
 * wait for a request in flight on the same directory, and only the event
 * loop answers requests.
 */
import { readdirSync, readlinkSync, write } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { FUSE_ROOT_ID, invalEntry, invalInode } from '../../core/zkfs/fuse-notify.js';
import { baseName, parentPath } from '../../core/zkfs/paths.js';
import type { Logger } from '../logger.js';

/**
 * A mount path whose kernel copy a change made stale: its attributes and
 * pages always, its name too when `entry` (type or existence changed; for
 * a directory that also drops the names cached below it).
 */
export interface StaleEntry {
  path: string;
  entry: boolean;
}

/** Stale paths; 'all': everything the kernel holds; 'prune': every name at the top. */
export type Stale = readonly StaleEntry[] | 'all' | 'prune';

/** Invalidations in flight at once (each holds a thread-pool thread). */
const PARALLEL = 2;

function writeMessage(fd: number, message: Buffer): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => write(fd, message, (error) => resolve(error)));
}

/** The process's descriptors open on /dev/fuse. */
function fuseDescriptors(): number[] {
  const fds: number[] = [];
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === '/dev/fuse') fds.push(Number(name));
    } catch {
      // closed meanwhile
    }
  }
  return fds;
}

export interface NotifyCounters {
  /** Notifications the kernel acted on. */
  sent: number;
  /** Notifications for things the kernel no longer had. */
  unknown: number;
}

export class KernelNotifier {
  readonly counters: NotifyCounters = { sent: 0, unknown: 0 };
  /** Mount path → when the kernel was last given its attributes. */
  private readonly served = new Map<string, number>();
  /** Mount path → whether its name must go too. */
  private readonly queue = new Map<string, boolean>();
  private running = 0;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  private constructor(
    private readonly fd: number,
    private readonly dir: string,
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, ttlMs));
    this.sweeper.unref();
  }

  /**
   * Finds the descriptor of the mount at `dir` (the only /dev/fuse one in
   * this process) and checks that the kernel takes notifications on it.
   */
  static async open(dir: string, attrTimeoutMs: number, log: Logger): Promise<KernelNotifier | undefined> {
    const fds = fuseDescriptors();
    if (fds.length !== 1) {
      log.warn(`kernel notifications off: ${fds.length} /dev/fuse descriptors in this process, expected 1`);
      return undefined;
    }
    const fd = fds[0] as number;
    // Dropping a name the kernel does not have answers ENOENT when notifications work.
    const probe = await writeMessage(fd, invalEntry(FUSE_ROOT_ID, `.zkfs-probe-${process.pid}`));
    if (probe && probe.code !== 'ENOENT') {
      log.warn(`kernel notifications off: the kernel refused one (${probe.code})`);
      return undefined;
    }
    return new KernelNotifier(fd, dir, attrTimeoutMs, log);
  }

  /** The kernel was just given the attributes of `path`. */
  attrServed(path: string): void {
    this.served.set(path, Date.now());
  }

  /** A rename through this mount moved what the kernel cached: let it look the new names up afresh. */
  renamed(to: string): void {
    this.enqueue(to, true);
  }

  /** Drops what the kernel may hold of what `stale` names. */
  apply(stale: Stale): void {
    if (stale === 'all') {
      // The watch was down: changes may have gone unreported.
      for (const path of this.served.keys()) this.enqueue(path, path !== '/');
    } else if (stale === 'prune') {
      for (const path of this.served.keys())
        if (path.lastIndexOf('/') === 0) this.enqueue(path, path !== '/');
      this.enqueue('/', false);
    } else {
      const horizon = Date.now() - this.ttlMs - 1000;
      for (const { path, entry } of stale) {
        const at = this.served.get(path);
        if (at !== undefined && at >= horizon) this.enqueue(path, entry);
      }
    }
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    this.queue.clear();
  }

  private enqueue(path: string, entry: boolean): void {
    if (this.closed) return;
    this.queue.set(path, entry || this.queue.get(path) === true);
    this.pump();
  }

  private pump(): void {
    while (this.running < PARALLEL && this.queue.size > 0) {
      const [path, entry] = this.queue.entries().next().value as [string, boolean];
      this.queue.delete(path);
      this.running++;
      this.drop(path, entry)
        .catch((error: unknown) => this.log.debug(`kernel notification for ${path}: ${String(error)}`))
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }

  private full(path: string): string {
    return path === '/' ? this.dir : `${this.dir}${path}`;
  }

  private async drop(path: string, entry: boolean): Promise<void> {
    const parent = parentPath(path);
    const [self, dir] = await Promise.all([
      lstat(this.full(path), { bigint: true }).catch(() => undefined),
      path === '/' || !entry
        ? undefined
        : parent === '/'
          ? { ino: FUSE_ROOT_ID }
          : lstat(this.full(parent), { bigint: true }).catch(() => undefined),
    ]);
    if (self) await this.send(invalInode(self.ino));
    if (dir) await this.send(invalEntry(dir.ino, baseName(path)));
  }

  private async send(message: Buffer): Promise<void> {
    if (this.closed) return;
    const error = await writeMessage(this.fd, message);
    if (!error) this.counters.sent++;
    else if (error.code === 'ENOENT') this.counters.unknown++;
    else this.log.debug(`kernel notification refused: ${error.code}`);
  }

  /** Forgets paths whose attributes the kernel has dropped by itself. */
  private sweep(): void {
    const horizon = Date.now() - this.ttlMs - 1000;
    for (const [path, at] of this.served) if (at < horizon) this.served.delete(path);
  }
}
