/**
 * Who uses a mount, read from /proc: the mount namespaces other than this
 * process's own in which the mounted filesystem appears (other than as a
 * propagated copy of our mount), and the processes of our own namespace
 * whose working directory, root or an open file lies inside it. A container
 * holding a volume has it bound in its own namespace, which lives as long as
 * the container; the engine copying files into a volume has them open in
 * ours. The plugin asks this before it releases references the engine never
 * released.
 *
 * Exports: `readMountUse()`, `usersOf(use, mount)`.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { type MountEntry, parseMountInfo, propagatedCopyOf } from './mountinfo.js';

/** What every process uses, read once for any number of mounts. */
export interface MountUse {
  /** The mount table of each mount namespace but ours. */
  namespaces: readonly (readonly MountEntry[])[];
  /** Working and root directories and open files of the processes in ours. */
  paths: readonly string[];
}

/**
 * True when this process sees every process on the host: it is not in a
 * child PID namespace (a managed plugin in its container sees only its own).
 */
async function seesAllProcesses(): Promise<boolean> {
  const status = await readFile('/proc/self/status', 'utf8');
  const line = status.split('\n').find((l) => l.startsWith('NSpid:'));
  // Kernels before 4.1 lack the line: nothing says we see everything.
  if (line === undefined) return false;
  return line.slice('NSpid:'.length).trim().split(/\s+/).length === 1;
}

/** Reads a /proc entry of a process that may exit meanwhile; undefined when it has. */
async function ofProcess<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch {
    return undefined;
  }
}

/** The working directory, root and open files of `pid` (the kernel spells them without asking a filesystem). */
async function pathsOf(pid: string): Promise<string[]> {
  const links = ['cwd', 'root'];
  for (const fd of (await ofProcess(() => readdir(`/proc/${pid}/fd`))) ?? []) links.push(`fd/${fd}`);
  const paths: string[] = [];
  for (const link of links) {
    const target = await ofProcess(() => readlink(`/proc/${pid}/${link}`));
    if (target?.startsWith('/')) paths.push(target);
  }
  return paths;
}

/**
 * Reads what every process uses; undefined when this process cannot see
 * every process, so cannot tell who uses what.
 */
export async function readMountUse(): Promise<MountUse | undefined> {
  if (!(await seesAllProcesses())) return undefined;
  const own = await readlink('/proc/self/ns/mnt');
  const seen = new Set<string>();
  const namespaces: MountEntry[][] = [];
  const paths: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const ns = await ofProcess(() => readlink(`/proc/${pid}/ns/mnt`));
    if (ns === undefined) continue;
    if (ns === own) {
      paths.push(...(await pathsOf(pid)));
      continue;
    }
    if (seen.has(ns)) continue;
    const text = await ofProcess(() => readFile(`/proc/${pid}/mountinfo`, 'utf8'));
    // A process gone before its table was read says nothing about its namespace: another may.
    if (text === undefined || text === '') continue;
    seen.add(ns);
    namespaces.push(parseMountInfo(text));
  }
  return { namespaces, paths };
}

/**
 * How many users a volume has, given `mounts`, its mount and those inside it
 * (entries of our mount table, mountsUnder): namespaces holding any of them
 * by a mount of their own, and processes of ours inside one. A container
 * given a subpath of a volume (volume-subpath) binds only the filesystem
 * that holds that path, a disk mounted inside the volume's root.
 */
export function usersOf(use: MountUse, mounts: readonly MountEntry[]): number {
  const holds = (e: MountEntry) => mounts.some((m) => e.device === m.device && !propagatedCopyOf(e, m));
  const holders = use.namespaces.filter((table) => table.some(holds)).length;
  const inside = (p: string) => mounts.some((m) => p === m.mountPoint || p.startsWith(`${m.mountPoint}/`));
  return holders + use.paths.filter(inside).length;
}
