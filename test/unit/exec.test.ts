import { describe, expect, it } from 'vitest';
import { run, summaryLine, ToolError } from '../../src/adapters/exec.js';
import { createLogger } from '../../src/adapters/logger.js';

describe('exec adapter', () => {
  it('passes input on stdin and closes it, so a reader sees end of file', async () => {
    const r = await run('sh', ['-c', 'cat; echo done'], { input: 'hello\n', timeoutMs: 5000 });
    expect(r.stdout).toBe('hello\ndone\n');
  });

  it('turns a failure into an error quoting the command and its stderr', async () => {
    const error = await run('sh', ['-c', 'echo boom >&2; exit 3'], { purpose: 'testing' }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ToolError);
    const te = error as ToolError;
    expect(te.message).toBe('testing: sh failed with exit code 3: boom');
    expect(te.toolExitCode).toBe(3);
    expect(te.detail).toContain('command: sh -c');
  });

  it.each([
    ['boom\n', 'boom'],
    [
      'mke2fs 1.47.0 (5-Feb-2023)\nmkfs.ext4: Device size reported to be zero.\n',
      'mkfs.ext4: Device size reported to be zero.',
    ],
    [
      'mount: /m: wrong fs type, bad option, bad superblock on /dev/x.\n       dmesg(1) may have more information after failed mount system call.\n',
      'mount: /m: wrong fs type, bad option, bad superblock on /dev/x.',
    ],
    ['   only indented\n', 'only indented'],
    ['', ''],
  ])('sums stderr %j up in the line %j', (stderr, line) => {
    expect(summaryLine(stderr)).toBe(line);
  });

  it('accepts exit codes declared as not failures', async () => {
    const r = await run('sh', ['-c', 'exit 2'], { okExitCodes: [2] });
    expect(r.exitCode).toBe(2);
  });

  it('says when a tool is not installed', async () => {
    await expect(run('no-such-tool-volkit', [])).rejects.toThrow(/not installed/);
  });

  it('never logs a secret, even when a tool echoes it', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'debug', write: (l) => lines.push(l) });
    const secret = 'hunter2-passphrase';
    const failure: unknown = await run('sh', ['-c', 'cat >&2; exit 1'], {
      input: secret,
      secrets: [secret],
      logger,
    }).catch((e: unknown) => e);
    const error = failure as ToolError;
    expect(lines.join('\n')).not.toContain(secret);
    expect(error.message).not.toContain(secret);
    expect(error.detail).not.toContain(secret);
    expect(error.message).toContain('***');
  });

  it('kills a tool that runs past its timeout', async () => {
    await expect(run('sleep', ['5'], { timeoutMs: 200 })).rejects.toThrow(/timed out after 200 ms/);
  });
});
