/**
 * FUSE replies (include/uapi/linux/fuse.h), encoded: a 16-byte header (length,
 * status as a negative errno or 0, the request's `unique`) and the body its
 * request calls for. Pure.
 */
import { zeroedBuffer } from '../zeroed-buffer.js';
import { FUSE_KERNEL_VERSION, readU64, type Unique } from './protocol.js';

const OUT_HEADER = 16;
const ATTR_SIZE = 88;
const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
const DIRENT_HEADER = 24;
const ERANGE = -34;

/** A message to the kernel with room for `bodyLength` bytes after its header. */
export function frame(unique: Unique, error: number, bodyLength: number): Buffer {
  const out = zeroedBuffer(OUT_HEADER + bodyLength);
  out.writeUInt32LE(out.length, 0);
  out.writeInt32LE(error, 4);
  if (typeof unique === 'number') writeU64(out, unique, 8);
  else out.writeBigUInt64LE(unique, 8);
  return out;
}

const TWO_32 = 0x1_0000_0000;

/**
 * Writes a whole number in [0, 2^53) as a little-endian u64: two 32-bit
 * halves, where BigInt(value) would allocate a BigInt per field, nine per
 * directory entry.
 */
export function writeU64(out: Buffer, value: number, at: number): void {
  out.writeUInt32LE(value % TWO_32, at);
  out.writeUInt32LE(Math.floor(value / TWO_32), at + 4);
}

/** Writes a whole number in (-2^53, 2^53) as a little-endian s64 (two's complement). */
export function writeI64(out: Buffer, value: number, at: number): void {
  const high = Math.floor(value / TWO_32);
  out.writeUInt32LE(value - high * TWO_32, at);
  out.writeInt32LE(high, at + 4);
}

/** A reply carrying only a status: 0 or a negative errno. */
export function errorReply(unique: Unique, errno: number): Buffer {
  return frame(unique, errno, 0);
}

/** A reply whose body is `data` as it is (READ, READLINK, GETXATTR, LISTXATTR). */
export function dataReply(unique: Unique, data: Buffer): Buffer {
  const out = frame(unique, 0, data.length);
  data.copy(out, OUT_HEADER);
  return out;
}

export interface InitReply {
  maxReadahead: number;
  flags: number;
  /** The second word of flags, read by the kernel where flags has INIT_EXT. */
  flags2?: number;
  maxWrite: number;
  maxPages: number;
  /** Timestamp granularity in nanoseconds. */
  timeGranNs: number;
}

export function initReply(unique: Unique, minor: number, r: InitReply): Buffer {
  const out = frame(unique, 0, 64);
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
  out.writeUInt32LE((r.flags2 ?? 0) >>> 0, o + 32);
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
  writeI64(out, sec, secAt);
  out.writeUInt32LE((whole - sec * 1000) * 1_000_000, nsecAt);
}

function writeAttr(out: Buffer, at: number, a: Attr): void {
  writeU64(out, a.ino, at);
  writeU64(out, a.size, at + 8);
  writeU64(out, Math.ceil(a.size / 512), at + 16);
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
  writeU64(out, whole, secAt);
  out.writeUInt32LE(Math.round((seconds - whole) * 1e9), nsecAt);
}

function writeEntry(
  out: Buffer,
  at: number,
  nodeId: number,
  a: Attr | undefined,
  validS: number,
  attrValidS = validS,
): void {
  writeU64(out, nodeId, at);
  // generation 0: node ids are never reused while mounted
  if (!a) return;
  writeValid(out, at + 16, at + 32, validS);
  writeValid(out, at + 24, at + 36, attrValidS);
  writeAttr(out, at + 40, a);
}

/**
 * LOOKUP, MKDIR, SYMLINK reply: a name's node, valid for `validS` seconds,
 * and its attributes, valid as long unless `attrValidS` says otherwise.
 */
export function entryReply(
  unique: Unique,
  nodeId: number,
  a: Attr,
  validS: number,
  attrValidS = validS,
): Buffer {
  const out = frame(unique, 0, ENTRY_OUT_SIZE);
  writeEntry(out, OUT_HEADER, nodeId, a, validS, attrValidS);
  return out;
}

/** CREATE reply: the new entry and its open file. */
export function createReply(
  unique: Unique,
  nodeId: number,
  a: Attr,
  validS: number,
  fh: number,
  openFlags: number,
): Buffer {
  const out = frame(unique, 0, ENTRY_OUT_SIZE + 16);
  writeEntry(out, OUT_HEADER, nodeId, a, validS);
  writeU64(out, fh, OUT_HEADER + ENTRY_OUT_SIZE);
  out.writeUInt32LE(openFlags, OUT_HEADER + ENTRY_OUT_SIZE + 8);
  return out;
}

/** GETATTR, SETATTR reply. */
export function attrReply(unique: Unique, a: Attr, validS: number): Buffer {
  const out = frame(unique, 0, 16 + ATTR_SIZE);
  writeValid(out, OUT_HEADER, OUT_HEADER + 8, validS);
  writeAttr(out, OUT_HEADER + 16, a);
  return out;
}

export function openReply(unique: Unique, fh: number, openFlags: number): Buffer {
  const out = frame(unique, 0, 16);
  writeU64(out, fh, OUT_HEADER);
  out.writeUInt32LE(openFlags, OUT_HEADER + 8);
  return out;
}

export function writeReply(unique: Unique, size: number): Buffer {
  const out = frame(unique, 0, 8);
  out.writeUInt32LE(size, OUT_HEADER);
  return out;
}

/**
 * GETXATTR/LISTXATTR: with size 0 the kernel asks how big the answer is;
 * otherwise the value, or ERANGE when it does not fit.
 */
export function xattrReply(unique: Unique, value: Buffer, size: number): Buffer {
  if (size === 0) {
    const out = frame(unique, 0, 8);
    out.writeUInt32LE(value.length, OUT_HEADER);
    return out;
  }
  return value.length > size ? errorReply(unique, ERANGE) : dataReply(unique, value);
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

export function statfsReply(unique: Unique, s: StatfsValues): Buffer {
  const out = frame(unique, 0, 80);
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
  unique: Unique,
  entries: readonly DirEntry[],
  plus: boolean,
  validS: number,
): Buffer {
  let total = 0;
  for (const e of entries) total += direntSize(e, plus);
  const out = frame(unique, 0, total);
  let at = OUT_HEADER;
  for (const e of entries) {
    if (plus) {
      writeEntry(out, at, e.nodeId ?? 0, e.nodeId ? e.attr : undefined, validS);
      at += ENTRY_OUT_SIZE;
    }
    // Encoded in place: the total above has room for it.
    const nameLength = out.write(e.name, at + DIRENT_HEADER);
    writeU64(out, e.ino, at);
    writeU64(out, e.nextOffset, at + 8);
    out.writeUInt32LE(nameLength, at + 16);
    out.writeUInt32LE((e.mode >>> 12) & 0o17, at + 20);
    at += align8(DIRENT_HEADER + nameLength);
  }
  return out;
}

/**
 * The nodes a successful LOOKUP (plus = false) or READDIRPLUS (plus = true)
 * reply hands the kernel, each one a reference it takes: what is to be
 * forgotten when such a reply is never sent. Empty for a failure.
 */
export function nodesHandedOut(reply: Buffer, plus: boolean): number[] {
  if (reply.length < OUT_HEADER || reply.readInt32LE(4) !== 0) return [];
  const ids: number[] = [];
  if (!plus) {
    if (reply.length >= OUT_HEADER + ENTRY_OUT_SIZE) ids.push(readU64(reply, OUT_HEADER));
    return ids.filter((id) => id !== 0);
  }
  let at = OUT_HEADER;
  while (at + ENTRY_OUT_SIZE + DIRENT_HEADER <= reply.length) {
    const id = readU64(reply, at);
    if (id !== 0) ids.push(id);
    at += ENTRY_OUT_SIZE + align8(DIRENT_HEADER + reply.readUInt32LE(at + ENTRY_OUT_SIZE + 16));
  }
  return ids;
}

/** The handle a successful OPEN reply gives the kernel (undefined for a failure). */
export function handleOpened(reply: Buffer): number | undefined {
  if (reply.length < OUT_HEADER + 16 || reply.readInt32LE(4) !== 0) return undefined;
  return readU64(reply, OUT_HEADER);
}
