/**
 * The FUSE kernel protocol (include/uapi/linux/fuse.h, version 7), as far as
 * zkfs speaks it: request decoding and reply encoding, nothing else. All
 * integers are little-endian (host order on every platform zkfs runs on).
 *
 * Pure: adapters/fuse/device.ts moves the bytes, adapters/fuse/ops.ts
 * decides the answers, replies.ts encodes them.
 */

export const FUSE_KERNEL_VERSION = 7;
/** The minor version zkfs implements; the kernel uses the smaller of its own and this. */
export const FUSE_KERNEL_MINOR = 31;
export const ROOT_ID = 1;

export const Op = {
  LOOKUP: 1,
  FORGET: 2,
  GETATTR: 3,
  SETATTR: 4,
  READLINK: 5,
  SYMLINK: 6,
  MKNOD: 8,
  MKDIR: 9,
  UNLINK: 10,
  RMDIR: 11,
  RENAME: 12,
  LINK: 13,
  OPEN: 14,
  READ: 15,
  WRITE: 16,
  STATFS: 17,
  RELEASE: 18,
  FSYNC: 20,
  SETXATTR: 21,
  GETXATTR: 22,
  LISTXATTR: 23,
  REMOVEXATTR: 24,
  FLUSH: 25,
  INIT: 26,
  OPENDIR: 27,
  READDIR: 28,
  RELEASEDIR: 29,
  FSYNCDIR: 30,
  ACCESS: 34,
  CREATE: 35,
  INTERRUPT: 36,
  DESTROY: 38,
  BATCH_FORGET: 42,
  FALLOCATE: 43,
  READDIRPLUS: 44,
  RENAME2: 45,
  LSEEK: 46,
  COPY_FILE_RANGE: 47,
  SYNCFS: 50,
  TMPFILE: 51,
} as const;

/** FUSE_INIT capability bits zkfs asks for. */
export const InitFlag = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  AUTO_INVAL_DATA: 1 << 12,
  DO_READDIRPLUS: 1 << 13,
  NO_OPEN_SUPPORT: 1 << 17,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  NO_OPENDIR_SUPPORT: 1 << 24,
  /** The second word of flags (flags2) is meant. */
  INIT_EXT: 1 << 30,
} as const;

/** FUSE_INIT capability bits of flags2 (bit 32 of the kernel's 64-bit flags is bit 0 here). */
export const InitFlag2 = {
  /** Requests come over io_uring, a queue per CPU (Linux 6.14; the fuse module's enable_uring). */
  OVER_IO_URING: 1 << 9,
} as const;

/** open_flags of an OPEN or CREATE reply. */
export const OpenFlag = {
  KEEP_CACHE: 1 << 1,
  NOFLUSH: 1 << 5,
} as const;

/** SETATTR `valid` bits. */
export const SetattrValid = {
  MODE: 1 << 0,
  UID: 1 << 1,
  GID: 1 << 2,
  SIZE: 1 << 3,
  ATIME: 1 << 4,
  MTIME: 1 << 5,
  FH: 1 << 6,
  ATIME_NOW: 1 << 7,
  MTIME_NOW: 1 << 8,
} as const;

export const RENAME_NOREPLACE = 1;

const IN_HEADER = 40;

/**
 * A request's unique id, which its answer repeats: a number whenever it
 * holds the id exactly, as it always does in practice (the kernel counts
 * ids up from 0), else a bigint. Reading and writing it as a bigint took
 * more time than the rest of the header.
 */
export type Unique = number | bigint;

const TWO_32 = 0x1_0000_0000;
/** The high half of a u64 below which a number holds its value exactly (2^53 = 2^21 * 2^32). */
const EXACT_HIGH = 0x20_0000;

/** The u64 at `at` as a number (rounded to the nearest above 2^53, as Number(bigint) does). */
export function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32LE(at) + buf.readUInt32LE(at + 4) * TWO_32;
}

/** The part of every request that says what it is and whom it is about. */
export interface RequestHeader {
  length: number;
  opcode: number;
  unique: Unique;
  nodeId: number;
  uid: number;
  gid: number;
  pid: number;
}

const OP_NAMES: ReadonlyMap<number, string> = new Map(
  Object.entries(Op).map(([name, opcode]) => [opcode, name.toLowerCase()]),
);

/** A request's name as the FUSE protocol spells it, in lower case (`readdirplus`), or `opcode N`. */
export function opName(opcode: number): string {
  return OP_NAMES.get(opcode) ?? `opcode ${opcode}`;
}

/** Requests the kernel expects no answer to. */
const UNANSWERED: ReadonlySet<number> = new Set([Op.FORGET, Op.BATCH_FORGET, Op.INTERRUPT]);

export function expectsAnswer(opcode: number): boolean {
  return !UNANSWERED.has(opcode);
}

/**
 * The unique id of a request, or of the answer to it (both headers carry it
 * at the same offset), as a number: the kernel counts them up from 0, so
 * they stay far below 2^53.
 */
export function uniqueOf(message: Buffer): number {
  return readU64(message, 8);
}

export function readHeader(buf: Buffer): RequestHeader {
  return {
    length: buf.readUInt32LE(0),
    opcode: buf.readUInt32LE(4),
    unique: buf.readUInt32LE(12) < EXACT_HIGH ? readU64(buf, 8) : buf.readBigUInt64LE(8),
    nodeId: readU64(buf, 16),
    uid: buf.readUInt32LE(24),
    gid: buf.readUInt32LE(28),
    pid: buf.readUInt32LE(32),
  };
}

/** A request's argument bytes, after the header, read front to back. */
export class ArgReader {
  private at: number;
  private readonly end: number;

  constructor(
    private readonly buf: Buffer,
    length: number,
  ) {
    this.at = IN_HEADER;
    this.end = length;
  }

  u32(): number {
    const v = this.buf.readUInt32LE(this.at);
    this.at += 4;
    return v;
  }

  u64(): number {
    const v = readU64(this.buf, this.at);
    this.at += 8;
    return v;
  }

  /** A signed 64-bit field (a time, which is before 1970 when negative). */
  i64(): number {
    const v = Number(this.buf.readBigInt64LE(this.at));
    this.at += 8;
    return v;
  }

  skip(bytes: number): this {
    this.at += bytes;
    return this;
  }

  /** A NUL-terminated name. */
  name(): string {
    const nul = this.buf.indexOf(0, this.at);
    const stop = nul < 0 || nul > this.end ? this.end : nul;
    const s = this.buf.toString('utf8', this.at, stop);
    this.at = stop + 1;
    return s;
  }

  /** `n` bytes, copied out of the (reused) request buffer. */
  bytes(n: number): Buffer {
    const b = Buffer.from(this.buf.subarray(this.at, Math.min(this.at + n, this.end)));
    this.at += n;
    return b;
  }
}

/** A SETATTR request: `valid` says which of the other fields apply (SetattrValid). */
export interface SetattrRequest {
  valid: number;
  fh: number;
  size: number;
  atimeMs: number;
  mtimeMs: number;
  mode: number;
  uid: number;
  gid: number;
}

export function readSetattr(r: ArgReader): SetattrRequest {
  const valid = r.u32();
  r.skip(4);
  const fh = r.u64();
  const size = r.u64();
  r.skip(8); // lock owner
  // time64_t, signed: read as unsigned, a time before 1970 became one 584 billion years ahead.
  const atime = r.i64();
  const mtime = r.i64();
  r.skip(8); // ctime
  const atimensec = r.u32();
  const mtimensec = r.u32();
  r.skip(4);
  const mode = r.u32();
  r.skip(4);
  const uid = r.u32();
  const gid = r.u32();
  const ms = (sec: number, nsec: number) => sec * 1000 + Math.floor(nsec / 1_000_000);
  return { valid, fh, size, atimeMs: ms(atime, atimensec), mtimeMs: ms(mtime, mtimensec), mode, uid, gid };
}

/** RENAME (flags 0) or RENAME2: a name in node `h.nodeId` moves to `newName` in node `newDir`. */
export interface RenameRequest {
  newDir: number;
  flags: number;
  oldName: string;
  newName: string;
}

export function readRename(r: ArgReader, withFlags: boolean): RenameRequest {
  const newDir = r.u64();
  const flags = withFlags ? r.u32() : 0;
  if (withFlags) r.skip(4);
  const oldName = r.name();
  return { newDir, flags, oldName, newName: r.name() };
}

/** What the kernel offers in FUSE_INIT. */
export interface InitRequest {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
  /** The kernel's second word of flags: 0 where it sends none (before 7.36), or without INIT_EXT. */
  flags2: number;
}

export function readInit(buf: Buffer, length: number): InitRequest {
  const r = new ArgReader(buf, length);
  const init = { major: r.u32(), minor: r.u32(), maxReadahead: r.u32(), flags: r.u32(), flags2: 0 };
  if (init.flags & InitFlag.INIT_EXT && length >= IN_HEADER + 20) init.flags2 = r.u32();
  return init;
}
