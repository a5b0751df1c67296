/**
 * The FUSE kernel protocol (include/uapi/linux/fuse.h, version 7), as far as
 * zkfs speaks it: request decoding and reply encoding, nothing else. All
 * integers are little-endian (host order on every platform zkfs runs on).
 *
 * Pure: adapters/fuse/device.ts moves the bytes, adapters/fuse/ops.ts
 * decides the answers.
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
const OUT_HEADER = 16;
const ATTR_SIZE = 88;
const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
const DIRENT_HEADER = 24;

/** The part of every request that says what it is and whom it is about. */
export interface RequestHeader {
  length: number;
  opcode: number;
  unique: bigint;
  nodeId: number;
  uid: number;
  gid: number;
  pid: number;
}

export function readHeader(buf: Buffer): RequestHeader {
  return {
    length: buf.readUInt32LE(0),
    opcode: buf.readUInt32LE(4),
    unique: buf.readBigUInt64LE(8),
    nodeId: Number(buf.readBigUInt64LE(16)),
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
    const v = Number(this.buf.readBigUInt64LE(this.at));
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

/** What the kernel offers in FUSE_INIT. */
export interface InitRequest {
  major: number;
  minor: number;
  maxReadahead: number;
  flags: number;
}

export function readInit(buf: Buffer, length: number): InitRequest {
  const r = new ArgReader(buf, length);
  return { major: r.u32(), minor: r.u32(), maxReadahead: r.u32(), flags: r.u32() };
}

function reply(unique: bigint, error: number, bodyLength: number): Buffer {
  const out = Buffer.alloc(OUT_HEADER + bodyLength);
  out.writeUInt32LE(out.length, 0);
  out.writeInt32LE(error, 4);
  out.writeBigUInt64LE(unique, 8);
  return out;
}

/** A reply carrying only a status: 0 or a negative errno. */
export function errorReply(unique: bigint, errno: number): Buffer {
  return reply(unique, errno, 0);
}

/** A reply whose body is `data` as it is (READ, READLINK, GETXATTR, LISTXATTR). */
export function dataReply(unique: bigint, data: Buffer): Buffer {
  const out = reply(unique, 0, data.length);
  data.copy(out, OUT_HEADER);
  return out;
}

export interface InitReply {
  maxReadahead: number;
  flags: number;
  maxWrite: number;
  maxPages: number;
  /** Timestamp granularity in nanoseconds. */
  timeGranNs: number;
}

export function initReply(unique: bigint, minor: number, r: InitReply): Buffer {
  const out = reply(unique, 0, 64);
  const o = OUT_HEADER;
  out.writeUInt32LE(FUSE_KERNEL_VERSION, o);
  out.writeUInt32LE(minor, o + 4);
  out.writeUInt32LE(r.maxReadahead, o + 8);
  out.writeUInt32LE(r.flags >>> 0, o + 12);
  out.writeUInt16LE(16, o + 16); // max_background
  out.writeUInt16LE(12, o + 18); // congestion_threshold
  out.writeUInt32LE(r.maxWrite, o + 20);
  out.writeUInt32LE(r.timeGranNs, o + 24);
  out.writeUInt16LE(r.maxPages, o + 28);
  return out;
}

/** File attributes as the kernel wants them. */
export interface Attr {
  ino: number;
  size: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  atimeMs: number;
  mtimeMs: number;
  ctimeMs: number;
}

function writeTime(out: Buffer, secAt: number, nsecAt: number, ms: number): void {
  const whole = Math.floor(ms);
  const sec = Math.floor(whole / 1000);
  out.writeBigInt64LE(BigInt(sec), secAt);
  out.writeUInt32LE((whole - sec * 1000) * 1_000_000, nsecAt);
}

function writeAttr(out: Buffer, at: number, a: Attr): void {
  out.writeBigUInt64LE(BigInt(a.ino), at);
  out.writeBigUInt64LE(BigInt(a.size), at + 8);
  out.writeBigUInt64LE(BigInt(Math.ceil(a.size / 512)), at + 16);
  writeTime(out, at + 24, at + 48, a.atimeMs);
  writeTime(out, at + 32, at + 52, a.mtimeMs);
  writeTime(out, at + 40, at + 56, a.ctimeMs);
  out.writeUInt32LE(a.mode >>> 0, at + 60);
  out.writeUInt32LE(a.nlink, at + 64);
  out.writeUInt32LE(a.uid >>> 0, at + 68);
  out.writeUInt32LE(a.gid >>> 0, at + 72);
  out.writeUInt32LE(0, at + 76); // rdev
  out.writeUInt32LE(4096, at + 80); // blksize
}

function writeValid(out: Buffer, secAt: number, nsecAt: number, seconds: number): void {
  const whole = Math.floor(seconds);
  out.writeBigUInt64LE(BigInt(whole), secAt);
  out.writeUInt32LE(Math.round((seconds - whole) * 1e9), nsecAt);
}

function writeEntry(out: Buffer, at: number, nodeId: number, a: Attr | undefined, validS: number): void {
  out.writeBigUInt64LE(BigInt(nodeId), at);
  // generation 0: node ids are never reused while mounted
  if (!a) return;
  writeValid(out, at + 16, at + 32, validS);
  writeValid(out, at + 24, at + 36, validS);
  writeAttr(out, at + 40, a);
}

/** LOOKUP, MKDIR, SYMLINK reply: a name's node and attributes, both valid for `validS` seconds. */
export function entryReply(unique: bigint, nodeId: number, a: Attr, validS: number): Buffer {
  const out = reply(unique, 0, ENTRY_OUT_SIZE);
  writeEntry(out, OUT_HEADER, nodeId, a, validS);
  return out;
}

/** CREATE reply: the new entry and its open file. */
export function createReply(
  unique: bigint,
  nodeId: number,
  a: Attr,
  validS: number,
  fh: number,
  openFlags: number,
): Buffer {
  const out = reply(unique, 0, ENTRY_OUT_SIZE + 16);
  writeEntry(out, OUT_HEADER, nodeId, a, validS);
  out.writeBigUInt64LE(BigInt(fh), OUT_HEADER + ENTRY_OUT_SIZE);
  out.writeUInt32LE(openFlags, OUT_HEADER + ENTRY_OUT_SIZE + 8);
  return out;
}

/** GETATTR, SETATTR reply. */
export function attrReply(unique: bigint, a: Attr, validS: number): Buffer {
  const out = reply(unique, 0, 16 + ATTR_SIZE);
  writeValid(out, OUT_HEADER, OUT_HEADER + 8, validS);
  writeAttr(out, OUT_HEADER + 16, a);
  return out;
}

export function openReply(unique: bigint, fh: number, openFlags: number): Buffer {
  const out = reply(unique, 0, 16);
  out.writeBigUInt64LE(BigInt(fh), OUT_HEADER);
  out.writeUInt32LE(openFlags, OUT_HEADER + 8);
  return out;
}

export function writeReply(unique: bigint, size: number): Buffer {
  const out = reply(unique, 0, 8);
  out.writeUInt32LE(size, OUT_HEADER);
  return out;
}

/** GETXATTR/LISTXATTR with size 0: how big the answer would be. */
export function xattrSizeReply(unique: bigint, size: number): Buffer {
  const out = reply(unique, 0, 8);
  out.writeUInt32LE(size, OUT_HEADER);
  return out;
}

export interface StatfsValues {
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  bsize: number;
  namemax: number;
  frsize: number;
}

export function statfsReply(unique: bigint, s: StatfsValues): Buffer {
  const out = reply(unique, 0, 80);
  const o = OUT_HEADER;
  out.writeBigUInt64LE(BigInt(s.blocks), o);
  out.writeBigUInt64LE(BigInt(s.bfree), o + 8);
  out.writeBigUInt64LE(BigInt(s.bavail), o + 16);
  out.writeBigUInt64LE(BigInt(s.files), o + 24);
  out.writeBigUInt64LE(BigInt(s.ffree), o + 32);
  out.writeUInt32LE(s.bsize, o + 40);
  out.writeUInt32LE(s.namemax, o + 44);
  out.writeUInt32LE(s.frsize, o + 48);
  return out;
}

/** One directory entry for a READDIR or READDIRPLUS reply. */
export interface DirEntry {
  name: string;
  /** Offset of the entry after this one (what a later READDIR passes back). */
  nextOffset: number;
  ino: number;
  /** S_IFMT bits of the mode. */
  mode: number;
  /** READDIRPLUS: the node handed to the kernel (0 for none) and its attributes. */
  nodeId?: number;
  attr?: Attr | undefined;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Bytes `entry` takes in a READDIR (plus = false) or READDIRPLUS reply. */
export function direntSize(entry: DirEntry, plus: boolean): number {
  return (plus ? ENTRY_OUT_SIZE : 0) + align8(DIRENT_HEADER + Buffer.byteLength(entry.name));
}

/** A READDIR(PLUS) reply of `entries`; the caller keeps the total within the size the kernel asked for. */
export function direntReply(
  unique: bigint,
  entries: readonly DirEntry[],
  plus: boolean,
  validS: number,
): Buffer {
  let total = 0;
  for (const e of entries) total += direntSize(e, plus);
  const out = reply(unique, 0, total);
  let at = OUT_HEADER;
  for (const e of entries) {
    if (plus) {
      writeEntry(out, at, e.nodeId ?? 0, e.nodeId ? e.attr : undefined, validS);
      at += ENTRY_OUT_SIZE;
    }
    const name = Buffer.from(e.name);
    out.writeBigUInt64LE(BigInt(e.ino), at);
    out.writeBigUInt64LE(BigInt(e.nextOffset), at + 8);
    out.writeUInt32LE(name.length, at + 16);
    out.writeUInt32LE((e.mode >>> 12) & 0o17, at + 20);
    name.copy(out, at + DIRENT_HEADER);
    at += align8(DIRENT_HEADER + name.length);
  }
  return out;
}
