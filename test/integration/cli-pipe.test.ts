/**
 * Both tools as the left side of a pipe whose reader is gone (`| head -1`,
 * a closed pager): they stop quietly, as a C tool killed by SIGPIPE would,
 * rather than crashing with a stack trace.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../fixtures/environment.js';

describe('output into a closed pipe', () => {
  it.each(['simplectl', 'zkfsctl'])('%s stops quietly', async (tool) => {
    const child = spawn(join(REPO_ROOT, 'bin', tool), ['--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // The reader goes before the tool has written anything: its first write fails with EPIPE.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(stderr).not.toMatch(/EPIPE|Error|at /);
    expect(code).toBe(0);
  });
});
