/**
 * The "t":"f" marks of a directory's metadata document (attrs.ts), kept only
 * while they say something.
 *
 * A file made through the mount is empty until its first write-back, and in
 * hybrid mode an empty znode with no stored type is a directory (modes.ts),
 * so each create records the file's type. Once the file holds data, its mark
 * says no more than its data do. Kept, the marks made every create rewrite
 * all its siblings' marks: copying 1,000 files into one directory sent 9 MB
 * of documents, the last one 18 KiB, for 1 MB of data, and 10,000 files
 * would send about 900 MB, written to every server's transaction log.
 *
 * So the write of a document drops the marks of files the mount knows to
 * hold data, each guarded in the same multi by a check of the data version
 * it saw (a file emptied meanwhile fails the check, and keeps its mark). A
 * write that empties a file marks it again, in one multi with the document,
 * or checks the document's version where the mark is there, so a drop based
 * on an older version cannot land after it (file-ops.ts, writeEmpty).
 * Entries with more than a mark (a mode, an owner, times) stay whole.
 */
import type { DirMeta, MetaEntry } from './attrs.js';
import { nodeKind } from './modes.js';

/** Marks dropped by one write at most: a document written by an older version sheds them a batch at a time. */
export const MAX_DROPPED_MARKS = 64;

/** What the mount holds of a sibling's znode now. */
export interface MarkedNode {
  version: number;
  dataLength: number;
  numChildren: number;
}

/** A mark to drop, and the data version its node must still have. */
export interface DroppedMark {
  name: string;
  version: number;
}

/** Whether `entry` records nothing but that its node is a regular file. */
export function onlyFileMark(entry: MetaEntry | undefined): boolean {
  if (entry?.t !== 'f') return false;
  for (const key in entry) if (key !== 't') return false;
  return true;
}

/**
 * Whether `entry` is a bare mark that `node` makes redundant: without it,
 * hybrid mode (the one that reads marks of files) shows the node as a file
 * all the same, as it does a leaf holding data. Undefined `node`: memory
 * holds nothing of it, and it may be empty.
 */
export function redundantMark(entry: MetaEntry | undefined, node: MarkedNode | undefined): boolean {
  return onlyFileMark(entry) && node !== undefined && nodeKind('hybrid', node) === 'file';
}

/**
 * The marks of `meta` that the nodes' data make redundant (redundantMark),
 * at most `max`, leaving out `keep` (the name being written). `nodeOf`
 * answers from memory, undefined when it holds nothing of the name.
 */
export function droppableMarks(
  meta: DirMeta,
  keep: string,
  nodeOf: (name: string) => MarkedNode | undefined,
  max = MAX_DROPPED_MARKS,
): DroppedMark[] {
  const dropped: DroppedMark[] = [];
  for (const [name, entry] of meta.entries) {
    if (dropped.length >= max) break;
    if (name === keep || !onlyFileMark(entry)) continue;
    const node = nodeOf(name);
    if (node && redundantMark(entry, node)) dropped.push({ name, version: node.version });
  }
  return dropped;
}

/** `meta` without the entries of `names`. */
export function withoutEntries(meta: DirMeta, names: readonly string[]): DirMeta {
  if (names.length === 0) return meta;
  const entries = new Map(meta.entries);
  for (const name of names) entries.delete(name);
  return { entries, extra: meta.extra, corrupt: false };
}

/** `entry` with the mark of a regular file: what an emptied file needs (undefined when it has it). */
export function markedAsFile(entry: MetaEntry | undefined): MetaEntry | undefined {
  return entry?.t === 'f' ? undefined : { ...entry, t: 'f' };
}
