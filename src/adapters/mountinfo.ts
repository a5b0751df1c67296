/**
 * The kernel's mount table, read from /proc/self/mountinfo. Callers ask here
 * whether something is mounted instead of stat-ing the path: a stat on a FUSE
 * mount whose daemon died hangs (rclone's CheckMountEmpty does the same).
 */
import { readFile } from 'node:fs/promises';

export interface MountEntry {
  mountId: number;
  parentId: number;
  /** major:minor of the mounted filesystem's device. */
  device: string;
  /** Path inside the mounted filesystem that is mounted (usually "/"). */
  root: string;
  /** Where it is mounted. */
  mountPoint: string;
  mountOptions: string[];
  /** Optional fields: propagation (`shared:N`, `master:N`, `propagate_from:N`, `unbindable`). */
  tags: string[];
  fsType: string;
  /** e.g. /dev/loop3p2, tmpfs, or the FUSE fsname. */
  source: string;
  superOptions: string[];
}

/** Undoes the octal escapes (\040 for space, \011, \012, \134) the kernel uses in mountinfo. */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** Parses mountinfo text; exported so tests can feed fixed lines. */
export function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 6) continue;
    entries.push({
      mountId: Number(fields[0]),
      parentId: Number(fields[1]),
      device: fields[2] ?? '',
      root: unescapeMountField(fields[3] ?? ''),
      mountPoint: unescapeMountField(fields[4] ?? ''),
      mountOptions: (fields[5] ?? '').split(','),
      tags: fields.slice(6, dash),
      fsType: fields[dash + 1] ?? '',
      source: unescapeMountField(fields[dash + 2] ?? ''),
      superOptions: (fields[dash + 3] ?? '').split(','),
    });
  }
  return entries;
}

export async function readMountTable(): Promise<MountEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/**
 * True when `entry`, read in another mount namespace, is `ours` seen there
 * through mount propagation (a peer or a slave of it, at the same path), not
 * a bind of it that something made there (a container's volume).
 */
export function propagatedCopyOf(entry: MountEntry, ours: MountEntry): boolean {
  if (entry.device !== ours.device || entry.mountPoint !== ours.mountPoint) return false;
  const groups = ours.tags.filter((t) => t.startsWith('shared:')).map((t) => t.slice('shared:'.length));
  return groups.some((g) => entry.tags.includes(`shared:${g}`) || entry.tags.includes(`master:${g}`));
}

/** The topmost mount at exactly `mountPoint`, if any (later entries stack over earlier ones). */
export function mountAt(table: readonly MountEntry[], mountPoint: string): MountEntry | undefined {
  const normalized = mountPoint.length > 1 ? mountPoint.replace(/\/+$/, '') : mountPoint;
  return table.filter((e) => e.mountPoint === normalized).at(-1);
}

/** Mounts whose source is one of `devices` (for example a disk and its partitions). */
export function mountsOfSources(table: readonly MountEntry[], devices: readonly string[]): MountEntry[] {
  const wanted = new Set(devices);
  return table.filter((e) => wanted.has(e.source));
}

/** Mounts at or below `dir`, deepest first (the order to unmount them in). */
export function mountsUnder(table: readonly MountEntry[], dir: string): MountEntry[] {
  const base = dir.replace(/\/+$/, '');
  return table
    .filter((e) => e.mountPoint === base || e.mountPoint.startsWith(`${base}/`))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length);
}

/** Mounts made directly on `parent` (on a directory of its filesystem), in table order. */
export function mountsOn(table: readonly MountEntry[], parent: MountEntry): MountEntry[] {
  return table.filter((e) => e.parentId === parent.mountId && e.mountId !== parent.mountId);
}
