import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../src/adapters/processes.js';

/** The state letter of /proc/<pid>/stat (R, S, Z…), or undefined when the pid is gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

describe('isProcessAlive', () => {
  it('counts a zombie as dead, though its pid still exists', async () => {
    // `sh` starts a short sleep in the background, then becomes `sleep 30`,
    // which never waits for children: the short one exits and stays a zombie
    // until the long one dies — like a daemon whose parent does not reap it
    // (pid 1 in a container). The child outlives the exec on purpose: one that
    // exited before it could still be reaped by sh (seen once in CI).
    const parent = spawn('sh', ['-c', 'sleep 0.5 & echo $!; exec sleep 30'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    try {
      const zombie = await new Promise<number>((resolve, reject) => {
        parent.stdout.once('data', (chunk: Buffer) => resolve(Number(String(chunk).trim())));
        parent.once('error', reject);
      });
      while (procState(zombie) !== 'Z') {
        expect(procState(zombie)).toBeDefined();
        await new Promise((r) => setTimeout(r, 10));
      }
      // The pid is still taken: signal 0 reaches it.
      expect(() => process.kill(zombie, 0)).not.toThrow();
      expect(isProcessAlive(zombie)).toBe(false);
      expect(isProcessAlive(parent.pid ?? 0)).toBe(true);
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
