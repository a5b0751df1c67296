/**
 * Types for fuse-native 2.2.6 (it ships none), written from its index.js:
 * callbacks take a negative errno (or 0) first; read, write take the byte
 * count in that place instead.
 */
declare module 'fuse-native' {
  type Done = (errno: number) => void;
  type Reply<T> = (errno: number, value?: T) => void;

  export interface FuseStat {
    mode: number;
    uid: number;
    gid: number;
    size: number;
    nlink?: number;
    ino?: number;
    dev?: number;
    rdev?: number;
    blksize?: number;
    blocks?: number;
    /** Date or milliseconds since the epoch. */
    atime: Date | number;
    mtime: Date | number;
    ctime: Date | number;
  }

  export interface FuseStatfs {
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    fsid?: number;
    flag?: number;
    namemax: number;
  }

  export interface FuseOperations {
    init?(cb: Done): void;
    statfs?(path: string, cb: Reply<FuseStatfs>): void;
    getattr?(path: string, cb: Reply<FuseStat>): void;
    fgetattr?(path: string, fd: number, cb: Reply<FuseStat>): void;
    access?(path: string, mode: number, cb: Done): void;
    readdir?(path: string, cb: (errno: number, names?: string[], stats?: FuseStat[]) => void): void;
    open?(path: string, flags: number, cb: Reply<number>): void;
    create?(path: string, mode: number, cb: Reply<number>): void;
    read?(
      path: string,
      fd: number,
      buffer: Buffer,
      length: number,
      position: number,
      cb: (bytesOrErrno: number) => void,
    ): void;
    write?(
      path: string,
      fd: number,
      buffer: Buffer,
      length: number,
      position: number,
      cb: (bytesOrErrno: number) => void,
    ): void;
    flush?(path: string, fd: number, cb: Done): void;
    fsync?(path: string, datasync: number, fd: number, cb: Done): void;
    fsyncdir?(path: string, datasync: number, fd: number, cb: Done): void;
    release?(path: string, fd: number, cb: Done): void;
    releasedir?(path: string, fd: number, cb: Done): void;
    truncate?(path: string, size: number, cb: Done): void;
    ftruncate?(path: string, fd: number, size: number, cb: Done): void;
    utimens?(path: string, atime: number, mtime: number, cb: Done): void;
    readlink?(path: string, cb: Reply<string>): void;
    chown?(path: string, uid: number, gid: number, cb: Done): void;
    chmod?(path: string, mode: number, cb: Done): void;
    mknod?(path: string, mode: number, dev: number, cb: Done): void;
    setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Done): void;
    getxattr?(path: string, name: string, position: number, cb: Reply<Buffer | null>): void;
    listxattr?(path: string, cb: Reply<string[]>): void;
    removexattr?(path: string, name: string, cb: Done): void;
    unlink?(path: string, cb: Done): void;
    rename?(src: string, dest: string, cb: Done): void;
    link?(src: string, dest: string, cb: Done): void;
    symlink?(target: string, path: string, cb: Done): void;
    mkdir?(path: string, mode: number, cb: Done): void;
    rmdir?(path: string, cb: Done): void;
  }

  export interface FuseOptions {
    force?: boolean;
    mkdir?: boolean;
    debug?: boolean;
    allowOther?: boolean;
    allowRoot?: boolean;
    autoUnmount?: boolean;
    defaultPermissions?: boolean;
    maxRead?: number;
    fsname?: string;
    subtype?: string;
    kernelCache?: boolean;
    autoCache?: boolean;
    umask?: number;
    uid?: number;
    gid?: number;
    entryTimeout?: number;
    attrTimeout?: number;
    acAttrTimeout?: number;
    noforget?: boolean;
    /** Per-operation reply timeout in ms (default 15000); false disables it. */
    timeout?: number | false | Record<string, number | false>;
  }

  class Fuse {
    constructor(mountPoint: string, ops: FuseOperations, options?: FuseOptions);
    readonly mnt: string;
    mount(cb: (error: Error | null) => void): void;
    unmount(cb: (error: (Error & { unmountFailure?: boolean }) | null) => void): void;
    static unmount(mountPoint: string, cb: (error: Error | null) => void): void;
    static readonly EPERM: number;
    static readonly ENOENT: number;
    static readonly EIO: number;
    static readonly EBADF: number;
    static readonly EACCES: number;
    static readonly EBUSY: number;
    static readonly EEXIST: number;
    static readonly EXDEV: number;
    static readonly ENOTDIR: number;
    static readonly EISDIR: number;
    static readonly EINVAL: number;
    static readonly EFBIG: number;
    static readonly ENOSPC: number;
    static readonly EROFS: number;
    static readonly ERANGE: number;
    static readonly ENAMETOOLONG: number;
    static readonly ENOSYS: number;
    static readonly ENOTEMPTY: number;
    static readonly ENODATA: number;
    static readonly ETIMEDOUT: number;
    static readonly EOPNOTSUPP: number;
  }
  export default Fuse;
}
