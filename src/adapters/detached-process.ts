/**
 * Starts a Node script as a detached daemon: its own process group (so one
 * signal reaches its helpers too), no stdin, stdout and stderr appended to a
 * 0600 log file. Resolves to the pid once the process exists.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export async function spawnDetachedNode(
  script: string,
  args: readonly string[],
  logFile: string,
): Promise<number> {
  const fd = openSync(logFile, 'a', 0o600);
  try {
    const child = spawn(process.execPath, [script, ...args], { detached: true, stdio: ['ignore', fd, fd] });
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', reject);
    });
    child.unref();
    return pid;
  } finally {
    closeSync(fd);
  }
}
