/**
 * Who else holds a mount, read from /proc: the mount namespaces other than
 * this process's own in which the mounted filesystem appears, other than as
 * a propagated copy of our mount. A container holding a volume has it bound
 * in its own namespace; when the container is gone, so is the namespace. The
 * plugin asks this before it releases references the engine never released.
 *
 * Exports: `otherNamespaces()`, `holdersOf(namespaces, mount)`.
 */
import { readdir, readFile, readlink } from 'node:fs/promises';
import { type MountEntry, parseMountInfo, propagatedCopyOf } from './mountinfo.js';

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

/** The mount tables of every mount namespace but this process's own. */
export type OtherNamespaces = readonly (readonly MountEntry[])[];

/**
 * Reads the mount table of each mount namespace other than ours (once per
 * namespace); undefined when this process cannot see every process, so
 * cannot tell who holds what.
 */
export async function otherNamespaces(): Promise<OtherNamespaces | undefined> {
  if (!(await seesAllProcesses())) return undefined;
  const own = await readlink('/proc/self/ns/mnt');
  const seen = new Set<string>([own]);
  const tables: MountEntry[][] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    const ns = await ofProcess(() => readlink(`/proc/${pid}/ns/mnt`));
    if (ns === undefined || seen.has(ns)) continue;
    const text = await ofProcess(() => readFile(`/proc/${pid}/mountinfo`, 'utf8'));
    // A process gone before its table was read says nothing about its namespace: another may.
    if (text === undefined || text === '') continue;
    seen.add(ns);
    tables.push(parseMountInfo(text));
  }
  return tables;
}

/** How many of `namespaces` hold `mount` (an entry of our mount table) by a mount of their own. */
export function holdersOf(namespaces: OtherNamespaces, mount: MountEntry): number {
  return namespaces.filter((table) =>
    table.some((e) => e.device === mount.device && !propagatedCopyOf(e, mount)),
  ).length;
}
