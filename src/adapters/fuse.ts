/**
 * The FUSE face of the ZooKeeper filesystem: fuse-native callbacks in,
 * ZkVfs calls out, and the one place FsError codes become kernel errnos
 * (toErrno — keep it in step with FS_ERROR_CODES in core/zkfs/errors.ts).
 *
 * Two fuse-native 2.2.6 defects are handled here:
 * - its utimens passes the access time twice, losing the modification time
 *   (fuse-native.c passes `l->atime` for both). The real mtime is still in
 *   the per-thread struct the native side hands to the JS handler, at a
 *   fixed offset; we read it there, after checking that the atime next to
 *   it matches, and fall back to the atime otherwise.
 * - after an unmount it did not do itself (umount(8), fusermount -u) it
 *   never releases the libuv handle that keeps the process alive;
 *   closeNative() does that.
 * libfuse 2 itself ignores a timestamp update that sets only one of atime
 * and mtime (touch -m, tar's extraction): such calls never reach us.
 */
import { createRequire } from 'node:module';
import Fuse, { type FuseOperations } from 'fuse-native';
import { type FsErrorCode, fsCodeForZk, isFsError } from '../core/zkfs/errors.js';
import type { Logger } from './logger.js';
import type { ZkVfs } from './zkfs/vfs.js';
import { ZkError } from './zookeeper.js';

const ERRNO: Record<FsErrorCode, number> = {
  ENOENT: -2,
  EIO: -5,
  EBADF: -9,
  EACCES: -13,
  EBUSY: -16,
  EEXIST: -17,
  EXDEV: -18,
  ENOTDIR: -20,
  EISDIR: -21,
  EINVAL: -22,
  EFBIG: -27,
  ENOSPC: -28,
  EROFS: -30,
  ERANGE: -34,
  ENAMETOOLONG: -36,
  ENOTEMPTY: -39,
  ENODATA: -61,
  ENOTSUP: -95,
  ETIMEDOUT: -110,
  EPERM: -1,
};

/** The FsError code an operation's failure stands for (a ZooKeeper failure no operation wrapped included). */
function failureCode(error: unknown): FsErrorCode {
  if (isFsError(error)) return error.code;
  if (error instanceof ZkError) return fsCodeForZk(error.zkName);
  return 'EIO';
}

/** The negative errno for anything an operation threw; unexpected errors are logged as bugs. */
export function toErrno(error: unknown, log: Logger, what: string): number {
  if (isFsError(error) || error instanceof ZkError) {
    const code = failureCode(error);
    if (code === 'EIO' || code === 'ETIMEDOUT') log.warn(`${what}: ${error.message}`);
    else log.debug(`${what}: ${error.message}`);
    return ERRNO[code];
  }
  log.error(
    `${what}: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
  );
  return ERRNO.EIO;
}

export interface FuseMountOptions {
  allowOther?: boolean;
  allowRoot?: boolean;
  /** Shown as the mount's source in the mount table. */
  fsname: string;
  /** Makes the mount type `fuse.<subtype>`. */
  subtype: string;
  /**
   * Seconds the kernel may cache attributes and names (libfuse default 1).
   * fuse-native cannot tell the kernel to drop an entry; zkfs/kernel-notify.ts
   * does, through `observer`.
   */
  attrTimeoutS?: number;
  /** Told of every path whose attributes the kernel is given, and of renames (zkfs/kernel-notify.ts). */
  observer?: FuseObserver | undefined;
  log: Logger;
}

export interface FuseObserver {
  attrServed(path: string): void;
  renamed(from: string, to: string): void;
}

export interface FuseMount {
  dir: string;
  /** Unmounts (lazily if busy) and releases the native side. Idempotent. */
  unmount(): Promise<void>;
  /** Releases the native side after someone else unmounted. Idempotent. */
  closeNative(): void;
}

const UTIMENS_OP = 12; // binding.op_utimens
const THREAD_LOCALS_SIZE = 360; // sizeof(fuse_thread_locals_t) on x86-64 in 2.2.6
const ATIME_OFFSET = 104;
const MTIME_OFFSET = 112;

type NativeHandler = (nativeBuf: Buffer, op: number, path: string, ...ints: number[]) => unknown;

function patchUtimens(fuse: Fuse, log: Logger): void {
  const handlers = (fuse as unknown as { _handlers?: NativeHandler[] })._handlers;
  const original = handlers?.[UTIMENS_OP];
  if (!handlers || !original) return;
  handlers[UTIMENS_OP] = function (
    this: unknown,
    nativeBuf,
    op,
    path,
    aLow = 0,
    aHigh = 0,
    mLow = 0,
    mHigh = 0,
  ) {
    let low = mLow;
    let high = mHigh;
    if (Buffer.isBuffer(nativeBuf) && nativeBuf.length === THREAD_LOCALS_SIZE) {
      const atime = nativeBuf.readBigUInt64LE(ATIME_OFFSET);
      if (atime === BigInt(aLow) + (BigInt(aHigh) << 32n)) {
        const mtime = nativeBuf.readBigUInt64LE(MTIME_OFFSET);
        low = Number(mtime & 0xffffffffn);
        high = Number(mtime >> 32n);
      } else {
        log.debug('utimens: unexpected fuse-native layout; using the access time as modification time');
      }
    }
    return original.call(this, nativeBuf, op, path, aLow, aHigh, low, high);
  };
}

/** The native binding fuse-native loaded (node-gyp-build caches it per directory). */
function nativeBinding(): { fuse_native_unmount(mnt: string, thread: Buffer): void } | undefined {
  try {
    const require = createRequire(import.meta.url);
    const fuseDir = require.resolve('fuse-native').replace(/\/index\.js$/, '');
    const load = createRequire(`${fuseDir}/index.js`)('node-gyp-build') as (dir: string) => unknown;
    return load(fuseDir) as { fuse_native_unmount(mnt: string, thread: Buffer): void };
  } catch {
    return undefined;
  }
}

function operations(vfs: ZkVfs, log: Logger, observer?: FuseObserver): FuseOperations {
  const run = <T>(what: string, work: () => Promise<T> | T, reply: (errno: number, value?: T) => void) => {
    vfs.counters.ops++;
    Promise.resolve()
      .then(work)
      .then(
        (value) => reply(0, value),
        (error: unknown) => {
          const errno = toErrno(error, log, what);
          const code = failureCode(error);
          vfs.counters.errors[code] = (vfs.counters.errors[code] ?? 0) + 1;
          reply(errno);
        },
      );
  };
  return {
    statfs: (_path, cb) => cb(0, vfs.statfs()),
    getattr: (path, cb) =>
      run(
        `getattr ${path}`,
        () => vfs.getattr(path),
        (errno, a) => {
          if (errno !== 0 || !a) return cb(errno);
          observer?.attrServed(path);
          cb(0, {
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            size: a.size,
            nlink: a.nlink,
            blksize: 4096,
            blocks: Math.ceil(a.size / 512),
            atime: a.atimeMs,
            mtime: a.mtimeMs,
            ctime: a.ctimeMs,
          });
        },
      ),
    readdir: (path, cb) =>
      run(
        `readdir ${path}`,
        () => vfs.readdir(path),
        (errno, names) => cb(errno, names),
      ),
    mkdir: (path, mode, cb) => run(`mkdir ${path}`, () => vfs.mkdir(path, mode), cb),
    rmdir: (path, cb) => run(`rmdir ${path}`, () => vfs.rmdir(path), cb),
    unlink: (path, cb) => run(`unlink ${path}`, () => vfs.unlink(path), cb),
    rename: (from, to, cb) =>
      run(
        `rename ${from} ${to}`,
        () => vfs.rename(from, to),
        (errno) => {
          if (errno === 0) observer?.renamed(from, to);
          cb(errno);
        },
      ),
    symlink: (target, path, cb) => run(`symlink ${path}`, () => vfs.symlink(target, path), cb),
    readlink: (path, cb) =>
      run(
        `readlink ${path}`,
        () => vfs.readlink(path),
        (errno, t) => cb(errno, t),
      ),
    link: (_from, _to, cb) => cb(ERRNO.EPERM),
    mknod: (_path, _mode, _dev, cb) => cb(ERRNO.EPERM),
    create: (path, mode, cb) =>
      run(
        `create ${path}`,
        () => vfs.create(path, mode),
        (errno, fh) => cb(errno, fh),
      ),
    open: (path, flags, cb) =>
      run(
        `open ${path}`,
        () => vfs.open(path, flags),
        (errno, fh) => cb(errno, fh),
      ),
    read: (path, fh, buffer, length, position, cb) =>
      run(
        `read ${path}`,
        () => vfs.read(fh, length, position),
        (errno, data) => {
          if (errno !== 0 || !data) return cb(errno);
          data.copy(buffer);
          cb(data.length);
        },
      ),
    write: (path, fh, buffer, length, position, cb) => {
      // The buffer is kernel memory lent for this call only: copy before anything async.
      const data = Buffer.from(buffer.subarray(0, length));
      run(
        `write ${path}`,
        () => vfs.write(fh, data, position),
        (errno, n) => cb(errno !== 0 ? errno : (n ?? 0)),
      );
    },
    flush: (path, fh, cb) => run(`flush ${path}`, () => vfs.flush(fh), cb),
    fsync: (path, _datasync, fh, cb) => run(`fsync ${path}`, () => vfs.fsync(fh), cb),
    release: (path, fh, cb) => run(`release ${path}`, () => vfs.release(fh), cb),
    truncate: (path, size, cb) => run(`truncate ${path}`, () => vfs.truncate(path, size), cb),
    ftruncate: (path, fh, size, cb) => run(`ftruncate ${path}`, () => vfs.ftruncate(fh, size), cb),
    chmod: (path, mode, cb) => run(`chmod ${path}`, () => vfs.chmod(path, mode), cb),
    chown: (path, uid, gid, cb) => run(`chown ${path}`, () => vfs.chown(path, uid, gid), cb),
    utimens: (path, atime, mtime, cb) => run(`utimens ${path}`, () => vfs.utimens(path, atime, mtime), cb),
    getxattr: (path, name, _position, cb) =>
      run(
        `getxattr ${path}`,
        () => vfs.getxattr(path, name),
        (errno, value) => cb(errno, value ?? null),
      ),
    listxattr: (path, cb) =>
      run(
        `listxattr ${path}`,
        () => vfs.listxattr(path),
        (errno, list) => cb(errno, list),
      ),
    setxattr: (path, name, _value, _position, _flags, cb) =>
      run(`setxattr ${path}`, () => vfs.setxattr(path, name), cb),
    removexattr: (path, name, cb) => run(`removexattr ${path}`, () => vfs.setxattr(path, name), cb),
  };
}

/** Mounts `vfs` at `dir`; resolves once the kernel has initialised the mount. */
export async function mountFuse(vfs: ZkVfs, dir: string, options: FuseMountOptions): Promise<FuseMount> {
  const log = options.log;
  // fuse-native drops a 0 (libfuse would then use 1 s): the shortest it passes on is 1 ms.
  const attrTimeout = Math.max(options.attrTimeoutS ?? 1, 0.001);
  const fuse = new Fuse(dir, operations(vfs, log, options.observer), {
    fsname: options.fsname,
    subtype: options.subtype,
    allowOther: options.allowOther ?? false,
    allowRoot: options.allowRoot ?? false,
    // The kernel checks mode bits and owners against what getattr reports.
    defaultPermissions: true,
    attrTimeout,
    entryTimeout: attrTimeout,
    // Page cache kept across opens while size and mtime are unchanged, dropped when they change.
    autoCache: true,
    acAttrTimeout: attrTimeout,
    // A reply later than this is an error to the caller rather than a hung process.
    timeout: 120_000,
  });
  patchUtimens(fuse, log);
  await new Promise<void>((resolve, reject) => {
    fuse.mount((error) => (error ? reject(error) : resolve()));
  });
  let closed = false;
  const closeNative = () => {
    if (closed) return;
    closed = true;
    const thread = (fuse as unknown as { _thread?: Buffer })._thread;
    if (thread) nativeBinding()?.fuse_native_unmount(fuse.mnt, thread);
  };
  return {
    dir: fuse.mnt,
    closeNative,
    unmount: async () => {
      if (closed) return;
      await new Promise<void>((resolve) => {
        fuse.unmount((error) => {
          if (error) {
            log.debug(`fusermount: ${error.message}`);
            closeNative();
          }
          closed = true;
          resolve();
        });
      });
    },
  };
}
