/**
 * One small JSON file per live mount under /run/zkfsctl (or
 * $ZKFSCTL_RUN_DIR): which daemon serves which mount point, what it
 * mounted, and where it logs. umount reads it to wait for the daemon to
 * exit; a status command reads it to find the daemon. It never holds the
 * credentials. Written atomically, mode 0600.
 */
import { readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fitFileName } from '../../core/names.js';
import { isProcessAlive } from '../processes.js';
import { readJson, writeJsonAtomic } from '../state-file.js';

export interface MountRecord {
  dir: string;
  pid: number;
  /**
   * The daemon's start time (/proc/PID/stat; absent in records of older
   * builds): a process given the pid again since is not the daemon. Records
   * outlive their daemons where /run does (a managed plugin's own root), and
   * a restarted plugin's pid namespace hands out the same small pids.
   */
  startTime?: string | undefined;
  hosts: string;
  path: string;
  mode: string;
  readOnly: boolean;
  logFile?: string | undefined;
  startedAt: string;
}

/** Whether the daemon `record` names still runs. */
export function isDaemonAlive(record: Pick<MountRecord, 'pid' | 'startTime'>): boolean {
  return isProcessAlive(record.pid, record.startTime);
}

export function runDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.ZKFSCTL_RUN_DIR ?? '/run/zkfsctl';
}

/** A file name for a mount point, in the style of systemd-escape ("/mnt/a b" → "mnt-a\x20b"). */
export function escapeMountPoint(dir: string): string {
  const trimmed = dir.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '-';
  return trimmed
    .replace(/[^A-Za-z0-9_.:/]|^\./g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .replace(/\//g, '-');
}

/**
 * The name of mount point `dir`'s file ending in `suffix` (its record, its log).
 * A deep mount point escapes to more than a file name holds: it is cut to fit,
 * or the file could not be made and the mount would look dead without its record.
 */
export function mountPointFileName(dir: string, suffix: string): string {
  return fitFileName(escapeMountPoint(dir), suffix);
}

function recordPath(dir: string): string {
  return join(runDir(), mountPointFileName(dir, '.json'));
}

export async function writeMountRecord(record: MountRecord): Promise<void> {
  await writeJsonAtomic(recordPath(record.dir), record);
}

export async function readMountRecord(dir: string): Promise<MountRecord | undefined> {
  return readJson<MountRecord | undefined>(recordPath(dir), undefined);
}

export async function removeMountRecord(dir: string, pid?: number): Promise<void> {
  if (pid !== undefined) {
    const current = await readMountRecord(dir).catch(() => undefined);
    if (current && current.pid !== pid) return; // a newer daemon owns it now
  }
  await unlink(recordPath(dir)).catch(() => {});
}

export async function listMountRecords(): Promise<MountRecord[]> {
  const names = await readdir(runDir()).catch(() => [] as string[]);
  const records: MountRecord[] = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    const record = await readJson<MountRecord | undefined>(join(runDir(), name), undefined).catch(
      () => undefined,
    );
    if (record) records.push(record);
  }
  return records;
}
