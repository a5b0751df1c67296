/**
 * simplectl on a real terminal (a pseudo-terminal from script(1)): spinners
 * and colours are for terminals only, and a terminal that reports no width
 * (a serial console) must not hang the command.
 */
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { missing, REPO_ROOT } from '../fixtures/environment.js';
import { createLoopDisk } from '../fixtures/loop-disk.js';
import { sha256File } from '../fixtures/simple-disks.js';

/** Runs `simplectl ARGS` in a pseudo-terminal of `cols` columns; everything it shows, and its exit code. */
async function onTerminal(cols: number, args: string, env: Record<string, string> = {}) {
  const command = `stty cols ${cols} rows ${cols === 0 ? 0 : 24}; ${REPO_ROOT}/bin/simplectl ${args}`;
  const r = await execa('script', ['-qec', command, '/dev/null'], {
    reject: false,
    timeout: 30_000,
    env: { ...env, TERM: 'xterm' },
    extendEnv: true,
  });
  return { exitCode: r.exitCode, timedOut: r.timedOut, screen: String(r.stdout) };
}

/**
 * Runs `simplectl ARGS` in a pseudo-terminal and, once it asks for "yes", types `keys`; the
 * screen, the exit code and whether it had to be killed.
 */
async function answerPrompt(args: string, keys: string) {
  const command = `stty cols 80 rows 24; ${REPO_ROOT}/bin/simplectl ${args}`;
  const child = execa('script', ['-qec', command, '/dev/null'], {
    reject: false,
    timeout: 30_000,
    env: { TERM: 'xterm', NO_COLOR: '1' },
    extendEnv: true,
  });
  let screen = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    screen += chunk.toString();
    if (screen.includes('Type "yes"') && keys !== '') {
      child.stdin?.write(keys);
      keys = '';
    }
  });
  const r = await child;
  return { exitCode: r.exitCode, timedOut: r.timedOut, screen };
}

const SGR_COLOUR = /\u001b\[(1|2|3[0-9])m/;

describe.skipIf(missing({ loop: true }))('simplectl on a terminal', () => {
  it('finishes on a terminal of 0 columns (no spinner there)', async () => {
    const disk = await createLoopDisk();
    const name = disk.device.replace('/dev/', '');
    const r = await onTerminal(0, `scan-disks --include ${name}`, { NO_COLOR: '' });
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(0);
    expect(r.screen).toMatch(new RegExp(`${disk.device} +64.0 MiB +blank`));
  });

  it('colours tables on a terminal, and not with NO_COLOR or --no-color', async () => {
    const disk = await createLoopDisk();
    const name = disk.device.replace('/dev/', '');
    const coloured = await onTerminal(80, `scan-disks --include ${name}`, { NO_COLOR: '' });
    expect(coloured.exitCode).toBe(0);
    expect(coloured.screen).toMatch(SGR_COLOUR);
    for (const [args, env] of [
      [`scan-disks --include ${name}`, { NO_COLOR: '1' }],
      [`--no-color scan-disks --include ${name}`, { NO_COLOR: '' }],
    ] as const) {
      const plain = await onTerminal(80, args, env);
      expect(plain.exitCode).toBe(0);
      // The spinner may still move the cursor; no text is coloured.
      expect(plain.screen).not.toMatch(SGR_COLOUR);
      expect(plain.screen).toMatch(new RegExp(`${disk.device} +64.0 MiB +blank`));
    }
  });

  it('asks for no passphrase when luks-open cannot open the disk anyway', async () => {
    const disk = await createLoopDisk();
    // Nobody answers the prompt: asking would leave the command waiting until the timeout.
    const r = await onTerminal(80, `luks-open ${disk.device}`, { NO_COLOR: '1' });
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(1);
    expect(r.screen).toContain(`${disk.device} is not an initialised disk (it is blank)`);
    expect(r.screen).not.toContain('Passphrase for');
  });

  it.each([
    ['Ctrl-C', '\u0003'],
    ['Ctrl-D', '\u0004'],
  ])(
    'takes %s at the confirmation prompt for no: nothing changed, and a failure for the shell',
    async (_, key) => {
      const disk = await createLoopDisk();
      const before = await sha256File(disk.file);
      const r = await answerPrompt(`initialize-disk ${disk.device} label.typed`, key);
      expect(r.timedOut).toBe(false);
      expect(r.screen).toContain('Type "yes" to continue');
      expect(r.screen).toContain('initialize-disk cancelled; nothing was changed');
      expect(r.exitCode).toBe(1);
      expect(await sha256File(disk.file)).toBe(before);
    },
  );
});
