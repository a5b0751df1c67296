/**
 * Where zkfs keeps what a znode cannot: the file/directory type (hybrid and
 * file mode), permission bits, owner, group and times set by chmod, chown and
 * utimens.
 *
 * Every directory znode may have one reserved child, `__zkfs__` (META_NODE),
 * whose data is a small JSON document describing the directory's entries:
 *
 *     {"zkfs":1,"e":{"notes.txt":{"t":"f","m":416},"bin":{"t":"d","u":1000,"g":1000}}}
 *
 * - `t`  type, "f" or "d" (written at create/mkdir time, so every host agrees;
 *   a file's "f" is dropped once it holds data, and written again when it is
 *   emptied: file-marks.ts)
 * - `m`  permission bits (0o7777); absent = 0666/0777 minus --umask
 * - `u`, `g`  owner and group; absent = --uid/--gid. A node made through the
 *   mount by a caller other than --uid/--gid records the caller (newEntry)
 * - `mt`, `at`  mtime and atime in ms set by utimens (or kept across a
 *   rename); `mt` applies while the znode's data version is still `v`, so the
 *   next write shows the write's own time without touching this document
 *
 * The entry for the mount root itself is kept under the name ".". Entries of
 * names that no longer exist are ignored. Unknown keys are preserved on
 * rewrite. The top-level key `cn` holds the tokens of recent creates
 * (write-proof.ts).
 *
 * Why a per-directory child: it is hidden from listings, a lookup needs one
 * read per directory (cached with the directory), creating a file and
 * recording its type is one atomic multi, concurrent writers in different
 * directories never contend, and a renamed directory carries its own
 * document along as an ordinary child. A file znode never gets a child, so
 * tools that see raw ZooKeeper still find files as leaves.
 */
import { GrownMap } from './grown-map.js';
import type { NodeKind } from './modes.js';

export const META_FORMAT = 1;

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_ISGID = 0o2000;

/** One entry of a directory's metadata document. */
export interface MetaEntry {
  t?: 'f' | 'd';
  m?: number;
  u?: number;
  g?: number;
  mt?: number;
  at?: number;
  v?: number;
  [unknown: string]: unknown;
}

export interface DirMeta {
  /**
   * A Map: a directory of a thousand files was copied on every create (a new
   * document per change), and a plain object that large copies five times slower.
   */
  entries: ReadonlyMap<string, MetaEntry>;
  /** Top-level keys this version does not know, kept as they were. */
  extra: Record<string, unknown>;
  /** True when the stored document could not be parsed (it is then treated as empty). */
  corrupt: boolean;
}

/** Defaults for nodes without stored attributes (the mount's --uid, --gid, --umask). */
export interface AttrDefaults {
  uid: number;
  gid: number;
  umask: number;
}

/** What getattr reports, minus size. */
export interface EffectiveAttrs {
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  atimeMs: number;
  ctimeMs: number;
}

/** The parts of a znode stat the attribute rules need. */
export interface StatTimes {
  mtimeMs: number;
  version: number;
}

export const ROOT_ENTRY = '.';

export function emptyMeta(): DirMeta {
  return { entries: new Map(), extra: {}, corrupt: false };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Documents this process encoded, by their bytes: the cache takes a write's
 * new document from the bytes written, and parsing back what was just
 * encoded cost a directory of 1,000 files about 1 ms per file created.
 * Neither a DirMeta nor its entries is ever changed once made (withEntry
 * copies), so handing the encoded value back is the same as parsing it.
 */
const encoded = new WeakMap<Buffer, DirMeta>();

/** The bytes each document was parsed from or encoded to, for parseGrown. */
const sources = new WeakMap<DirMeta, Buffer>();

/**
 * Reads a metadata document; an absent node is `undefined`, unreadable JSON
 * is empty and `corrupt`. `previous`, an earlier version of the same
 * document, lets a document that only grew be read from what it added.
 */
export function parseMeta(data: Buffer | undefined, previous?: DirMeta): DirMeta {
  if (data === undefined || data.length === 0) return emptyMeta();
  const known = encoded.get(data);
  if (known) return known;
  const grown = previous && parseGrown(data, previous);
  if (grown) return grown;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data.toString('utf8'));
  } catch {
    return { ...emptyMeta(), corrupt: true };
  }
  if (!isRecord(parsed) || !isRecord(parsed.e)) return { ...emptyMeta(), corrupt: true };
  const entries = new Map<string, MetaEntry>();
  for (const [name, value] of Object.entries(parsed.e)) {
    if (isRecord(value)) entries.set(name, sanitizeEntry(value));
  }
  const { e: _e, zkfs: _v, ...extra } = parsed;
  const meta: DirMeta = { entries, extra, corrupt: false };
  sources.set(meta, data);
  return meta;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const E_KEY = Buffer.from('"e":{');
/** How far into a document its entries may start: past this, the head is not one this code writes. */
const HEAD_LIMIT = 4096;

/** Whether `data` ends with `}}`, as a document encodeMeta wrote does (its entries, then itself). */
function closesTwice(data: Buffer): boolean {
  return data[data.length - 1] === CLOSE_BRACE && data[data.length - 2] === CLOSE_BRACE;
}

/** Where the entries of document `data` start (just past `"e":{` at the top level), if found early. */
function entriesStart(data: Buffer): number | undefined {
  let depth = 0;
  let inString = false;
  const end = Math.min(data.length, HEAD_LIMIT);
  for (let i = 0; i < end; i++) {
    const c = data[i];
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      const next = i + E_KEY.length;
      const isKey = depth === 1 && next <= data.length && data.compare(E_KEY, 0, E_KEY.length, i, next) === 0;
      if (isKey) return next;
      inString = true;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--;
  }
  return undefined;
}

/**
 * Document `data` read as `previous` plus the entries added at its end, as
 * a create on another host writes it (withEntry puts a new name last), or
 * as `previous` itself when it is the same bytes: a host watching a
 * directory of a thousand files while another fills it read each of its
 * versions whole, a thousand entries parsed per file created. Undefined,
 * for a full parse, unless `data` is in the form encodeMeta writes and its
 * entries are `previous`'s, byte for byte, then more; the result is what
 * the full parse gives.
 */
function parseGrown(data: Buffer, previous: DirMeta): DirMeta | undefined {
  const old = sources.get(previous);
  if (old?.equals(data)) return previous;
  if (!old || data.length <= old.length || !closesTwice(data) || !closesTwice(old)) return undefined;
  const oldStart = entriesStart(old);
  const start = entriesStart(data);
  if (oldStart === undefined || start === undefined) return undefined;
  const oldBody = old.subarray(oldStart, old.length - 2);
  const body = data.subarray(start, data.length - 2);
  if (body.length <= oldBody.length || body.compare(oldBody, 0, oldBody.length, 0, oldBody.length) !== 0) {
    return undefined;
  }
  const added = body.subarray(oldBody.length);
  if (oldBody.length > 0 && added[0] !== 0x2c) return undefined;
  let head: unknown;
  let tail: unknown;
  try {
    head = JSON.parse(`${data.toString('utf8', 0, start - 1)}0}`);
    tail = JSON.parse(`{${added.toString('utf8', oldBody.length > 0 ? 1 : 0)}}`);
  } catch {
    return undefined;
  }
  if (!isRecord(head) || !isRecord(tail)) return undefined;
  const { e: _e, zkfs: _v, ...extra } = head;
  // Only the form encodeMeta writes: its format, `e` its last key, nothing else in its head.
  const canonical = `${JSON.stringify({ zkfs: META_FORMAT, ...extra, e: 0 }).slice(0, -2)}{`;
  if (data.toString('utf8', 0, start) !== canonical) return undefined;
  let entries = previous.entries;
  for (const [name, value] of Object.entries(tail)) {
    if (isRecord(value)) entries = GrownMap.with(entries, name, sanitizeEntry(value));
  }
  const meta: DirMeta = { entries, extra, corrupt: false };
  sources.set(meta, data);
  return meta;
}

/** The range of times JavaScript dates (and so the kernel's attributes, here) can hold, in ms. */
const MAX_TIME_MS = 8.64e15;

/**
 * Drops fields of the wrong type so a hand-edited document cannot poison
 * getattr; so are times no date can hold (as an older version stored times
 * before 1970), which made every listing of the directory fail with EIO.
 */
function sanitizeEntry(value: Record<string, unknown>): MetaEntry {
  const out: MetaEntry = { ...value };
  if (out.t !== 'f' && out.t !== 'd') delete out.t;
  for (const key of ['m', 'u', 'g', 'mt', 'at', 'v'] as const) {
    const n = out[key];
    if (typeof n !== 'number' || !Number.isFinite(n)) delete out[key];
  }
  for (const key of ['mt', 'at'] as const) {
    const n = out[key];
    if (n !== undefined && Math.abs(n) > MAX_TIME_MS) delete out[key];
  }
  return out;
}

/**
 * Each entry's `"name":{…}` text, by entry: entries are never changed, and a
 * directory's document is written again with every file created in it, so
 * all but the new entry are encoded once, not once per create.
 */
const entryTexts = new WeakMap<MetaEntry, { name: string; text: string }>();

function entryText(name: string, entry: MetaEntry): string {
  const known = entryTexts.get(entry);
  if (known?.name === name) return known.text;
  const text = `${JSON.stringify(name)}:${JSON.stringify(entry)}`;
  entryTexts.set(entry, { name, text });
  return text;
}

/**
 * The `"name":{…},…` bytes of an entries map, once encoded. A map that
 * withEntry made by adding one name gets its bytes from its source's bytes
 * plus that entry, so that creating the thousandth file of a directory
 * neither joins a thousand texts again nor (as a string grown by `+` would)
 * walks a thousand pieces to turn it into bytes.
 */
const bodies = new WeakMap<ReadonlyMap<string, MetaEntry>, Buffer>();

function entriesBytes(entries: ReadonlyMap<string, MetaEntry>): Buffer {
  const known = bodies.get(entries);
  if (known !== undefined) return known;
  const parts: string[] = [];
  for (const [name, entry] of entries) parts.push(entryText(name, entry));
  const bytes = Buffer.from(parts.join(','), 'utf8');
  bodies.set(entries, bytes);
  return bytes;
}

const COMMA = Buffer.from(',');
const CLOSE = Buffer.from('}}');

/** The document's bytes: exactly JSON.stringify of `{zkfs, ...extra, e: entries}`. */
export function encodeMeta(meta: DirMeta): Buffer {
  // parseMeta keeps neither `zkfs` nor `e` in `extra`, so `e` is the last key.
  const head = JSON.stringify({ zkfs: META_FORMAT, ...meta.extra, e: 0 }).slice(0, -2);
  const data = Buffer.concat([Buffer.from(`${head}{`, 'utf8'), entriesBytes(meta.entries), CLOSE]);
  const value: DirMeta = { entries: meta.entries, extra: meta.extra, corrupt: false };
  encoded.set(data, value);
  sources.set(value, data);
  return data;
}

/** A copy of `meta` with `name` set to `entry`, or removed when `entry` is undefined or empty. */
export function withEntry(meta: DirMeta, name: string, entry: MetaEntry | undefined): DirMeta {
  // Unset fields go now, as JSON would drop them: what was encoded is then what parsing gives.
  const kept = entry && Object.fromEntries(Object.entries(entry).filter(([, value]) => value !== undefined));
  if (kept === undefined || Object.keys(kept).length === 0) {
    const entries = new Map(meta.entries);
    entries.delete(name);
    return { entries, extra: meta.extra, corrupt: false };
  }
  // A new name goes last, in the map as in the bytes; a changed one keeps its place.
  const before = meta.entries.has(name) ? undefined : bodies.get(meta.entries);
  const entries = GrownMap.with(meta.entries, name, kept);
  if (before !== undefined) {
    const added = Buffer.from(entryText(name, kept), 'utf8');
    bodies.set(entries, before.length > 0 ? Buffer.concat([before, COMMA, added]) : added);
    // The new map keeps its source alive (a link of a GrownMap): keeping each source's bytes
    // too would hold up to 32 copies of a large directory's document. Should the source be
    // encoded again (a create that failed and is retried), its bytes are joined anew.
    bodies.delete(meta.entries);
  }
  return { entries, extra: meta.extra, corrupt: false };
}

/** What a directory's own stat and the link table say it holds, for holdsGoneNames(). */
export interface DirCounts {
  /** The directory znode's child count, its metadata node among them. */
  numChildren: number;
  /** Symbolic links in the directory (they have entries but no znode). */
  links: number;
  /** The mount root, whose document also holds its own entry `.`. */
  isRoot: boolean;
}

/**
 * Whether `meta`, read from the directory `counts` describes, must hold
 * entries of names the directory no longer has: more than its other
 * children, its links and (at the root) `.` account for. Another client
 * that deletes a node (zkCli, a program of its own) leaves its entry
 * behind, and until a directory gains a name nothing else removes it.
 */
export function holdsGoneNames(meta: DirMeta, counts: DirCounts): boolean {
  const size = meta.entries.size;
  // Any entry means the document exists, so it is one of the children.
  return size > 0 && size > counts.numChildren - 1 + counts.links + (counts.isRoot ? 1 : 0);
}

/** `meta` without the entries of names for which `present` is false; `meta` itself when none goes. */
export function withoutGoneNames(meta: DirMeta, present: (name: string) => boolean): DirMeta {
  const entries = new Map<string, MetaEntry>();
  for (const [name, entry] of meta.entries) {
    if (name === ROOT_ENTRY || present(name)) entries.set(name, entry);
  }
  if (entries.size === meta.entries.size) return meta;
  return { entries, extra: meta.extra, corrupt: false };
}

/**
 * Whether two entries say the same: the same fields with the same values,
 * in any order, unset fields left out (as encoding leaves them out); an
 * absent entry is the same only as another absent one.
 */
export function sameEntry(a: MetaEntry | undefined, b: MetaEntry | undefined): boolean {
  // Entries are never changed once made: one kept from an earlier version is the same.
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  const set = (entry: MetaEntry) => Object.keys(entry).filter((key) => entry[key] !== undefined);
  const keys = set(a);
  if (keys.length !== set(b).length) return false;
  return keys.every((key) => JSON.stringify(a[key]) === JSON.stringify(b[key]));
}

/**
 * Whether the document `data`, read back, holds `entry` under `name` (no
 * entry, for undefined): what a write that set or removed it left, whoever
 * rewrote the rest of the document since.
 */
export function showsEntry(data: Buffer, name: string, entry: MetaEntry | undefined): boolean {
  return sameEntry(parseMeta(data).entries.get(name), entry);
}

export function isEmptyMeta(meta: DirMeta): boolean {
  return meta.entries.size === 0 && Object.keys(meta.extra).length === 0;
}

export function storedType(entry: MetaEntry | undefined): NodeKind | undefined {
  if (entry?.t === 'f') return 'file';
  if (entry?.t === 'd') return 'dir';
  return undefined;
}

/** Who makes a node: the FUSE request's uid and gid (the calling process's fsuid and fsgid). */
export interface Creator {
  uid: number;
  gid: number;
}

/** The directory a node is made in, as shown: its mode (for the setgid bit) and group. */
export interface ParentAttrs {
  mode: number;
  gid: number;
}

/**
 * The entry a new node starts with: its type and, when not the default, its
 * permission bits, owner and group. The owner is the creator and the group
 * the creator's, or the parent's when the parent directory is setgid (a new
 * directory then is setgid too), as on ext4; each is recorded only when it
 * differs from what the mount shows by default (--uid, --gid), so nodes
 * made by the mount's own user keep the old tool's document. Without a
 * creator (a node not made for a program) nothing of the owner is recorded.
 * `mode` has the caller's umask applied already (the kernel does, as zkfs
 * does not ask for FUSE_DONT_MASK).
 */
export function newEntry(
  kind: NodeKind,
  mode: number,
  defaults: AttrDefaults,
  creator?: Creator,
  parent?: ParentAttrs,
): MetaEntry {
  const entry: MetaEntry = { t: kind === 'dir' ? 'd' : 'f', ...creatorOwner(defaults, creator, parent) };
  let perms = mode & 0o7777;
  if (creator && kind === 'dir' && parent && (parent.mode & S_ISGID) !== 0) perms |= S_ISGID;
  if (perms !== defaultPerms(kind, defaults)) entry.m = perms;
  return entry;
}

/**
 * The `u` and `g` a node made by `creator` in `parent` records (see
 * newEntry); empty when both are the mount's defaults or there is no creator.
 */
export function creatorOwner(
  defaults: AttrDefaults,
  creator: Creator | undefined,
  parent: ParentAttrs | undefined,
): Pick<MetaEntry, 'u' | 'g'> {
  if (!creator) return {};
  const gid = parent !== undefined && (parent.mode & S_ISGID) !== 0 ? parent.gid : creator.gid;
  const owner: Pick<MetaEntry, 'u' | 'g'> = {};
  if (creator.uid !== defaults.uid) owner.u = creator.uid;
  if (gid !== defaults.gid) owner.g = gid;
  return owner;
}

export function defaultPerms(kind: NodeKind, defaults: AttrDefaults): number {
  return (kind === 'dir' ? 0o777 : 0o666) & ~defaults.umask;
}

/** The stored mtime override, if it still applies to this data version. */
function mtimeOverride(entry: MetaEntry | undefined, stat: StatTimes): number | undefined {
  if (entry?.mt === undefined) return undefined;
  return entry.v === undefined || entry.v === stat.version ? entry.mt : undefined;
}

/**
 * The permission bits a node shows. A node shown as a directory whose entry
 * does not record it as one (a znode made as a file, seen in --mode dir, or
 * one that gained children) gets an x bit wherever its stored mode has r,
 * like chmod's X: a file's 0644 is a directory's 0755, 0600 is 0700, so
 * those who may read it may also enter it. One recorded as a directory
 * shows its mode as stored.
 */
export function shownPerms(kind: NodeKind, entry: MetaEntry | undefined, defaults: AttrDefaults): number {
  const perms = (entry?.m ?? defaultPerms(kind, defaults)) & 0o7777;
  if (kind !== 'dir' || entry?.t === 'd' || entry?.m === undefined) return perms;
  return perms | ((perms & 0o444) >> 2);
}

/** Mode, owner and times of a node from its stat and stored entry. */
export function effectiveAttrs(
  kind: NodeKind,
  stat: StatTimes,
  entry: MetaEntry | undefined,
  defaults: AttrDefaults,
): EffectiveAttrs {
  const perms = shownPerms(kind, entry, defaults);
  const override = mtimeOverride(entry, stat);
  const mtimeMs = override ?? stat.mtimeMs;
  return {
    mode: (kind === 'dir' ? S_IFDIR : S_IFREG) | (perms & 0o7777),
    uid: entry?.u ?? defaults.uid,
    gid: entry?.g ?? defaults.gid,
    mtimeMs,
    atimeMs: override !== undefined ? (entry?.at ?? mtimeMs) : mtimeMs,
    ctimeMs: stat.mtimeMs,
  };
}

export function withMode(entry: MetaEntry | undefined, mode: number): MetaEntry {
  return { ...entry, m: mode & 0o7777 };
}

/**
 * chmod and chown set on a file and waiting to go with its data
 * (open-files.ts, pendingAttrs): the fields of its entry they set, as
 * withMode and withOwner make them, laid over its entry when they go.
 */
export type PendingAttrs = Pick<MetaEntry, 'm' | 'u' | 'g'>;

/** chown: uid or gid of -1 (or 0xffffffff, as the kernel passes it) leaves that field alone. */
export function withOwner(entry: MetaEntry | undefined, uid: number, gid: number): MetaEntry {
  const out: MetaEntry = { ...entry };
  if (uid !== -1 && uid !== 0xffffffff) out.u = uid;
  if (gid !== -1 && gid !== 0xffffffff) out.g = gid;
  return out;
}

/** utimens; `version` undefined (a symbolic link, which has no data version) pins the times for good. */
export function withTimes(
  entry: MetaEntry | undefined,
  atimeMs: number,
  mtimeMs: number,
  version: number | undefined,
): MetaEntry {
  const out: MetaEntry = { ...entry, mt: Math.round(mtimeMs), at: Math.round(atimeMs), v: version };
  if (version === undefined) delete out.v;
  return out;
}

/**
 * The entry a node keeps when it is moved: the move recreates the znode (data
 * version 0, new mtime), so the time the user saw is pinned as an override.
 */
export function entryForMove(entry: MetaEntry | undefined, stat: StatTimes): MetaEntry {
  const mt = mtimeOverride(entry, stat) ?? stat.mtimeMs;
  const out: MetaEntry = { ...entry, mt, v: 0 };
  if (entry?.at === undefined || mtimeOverride(entry, stat) === undefined) delete out.at;
  return out;
}
