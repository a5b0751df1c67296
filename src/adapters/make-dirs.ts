/**
 * `mkdir -p`, for directories a user names (a log file's, a state directory).
 * Node 20's own (`mkdir(dir, { recursive: true })`) never returns for a path
 * under /proc or /sys: mkdir fails there with ENOENT however often the parent
 * is made, and it goes on making the parent, at full CPU. Here each missing
 * directory is made in turn, from the deepest one that exists, and the first
 * failure is thrown, as mkdir(1) reports it.
 */
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

function code(error: unknown): unknown {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Whether `path` exists; throws when it is there but no directory, as mkdir -p fails then. */
function exists(path: string): boolean {
  try {
    if (statSync(path).isDirectory()) return true;
  } catch (error) {
    if (code(error) === 'ENOENT') return false;
    throw error;
  }
  throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${path}'`), { code: 'ENOTDIR' });
}

/** Makes `dir` and its missing parents with `mode`; returns the first one made (as mkdir -p would), if any. */
export function makeDirsSync(dir: string, mode: number): string | undefined {
  const missing: string[] = [];
  for (let at = resolve(dir); !exists(at); at = dirname(at)) {
    missing.unshift(at);
    if (dirname(at) === at) break;
  }
  for (const path of missing) {
    try {
      mkdirSync(path, { mode });
    } catch (error) {
      // Made meanwhile by someone else: as good.
      if (code(error) !== 'EEXIST') throw error;
    }
  }
  return missing[0];
}

/** makeDirsSync for async callers: a few system calls, not worth a thread. */
export async function makeDirs(dir: string, mode: number): Promise<string | undefined> {
  return makeDirsSync(dir, mode);
}
