/**
 * A passphrase (in a volume name, an `-o` option or a key file) reaches
 * cryptsetup on its standard input only: never the command line of any
 * process (recorded by a cryptsetup wrapper and by polling /proc), never a
 * log line at debug level, never --json output. The LUKS cycle that needs
 * device-mapper is checked the same way in luks-uml.test.ts.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { MatchQueryResult } from '../../src/commands/match-query.js';
import { recordArgv, watchArgv } from '../fixtures/argv-watch.js';
import { cli } from '../fixtures/cli.js';
import { kernelHasDeviceMapper, missing } from '../fixtures/environment.js';
import { kernelName, keyDir, luksDisk, TEST_ENV } from '../fixtures/simple-disks.js';

const SECRET = 'Bat-Staple-7351';

/** The command under test itself: the operator typed its argv. */
const isSimplectl = (argv: string) =>
  argv
    .split(' ')
    .slice(0, 3)
    .some((a) => a.endsWith('/bin/simplectl'));

describe.skipIf(missing({ root: true, loop: true }))('passphrases never on a command line', () => {
  it('match-query tests a passphrase from the name or from -o on cryptsetup stdin only', async () => {
    const disk = await luksDisk('vault', SECRET);
    const recorder = recordArgv(['cryptsetup']);
    const env = { ...TEST_ENV, PATH: `${recorder.dir}:${process.env.PATH}` };
    const scope = ['--include', kernelName(disk)];
    const watch = watchArgv(SECRET, isSimplectl);
    const runs = [
      ['match-query', `label.vault_encryption-passphrase.${SECRET}`],
      ['match-query', 'label.vault', '-o', `encryption-passphrase=${SECRET}`],
      ['match-query', 'label.vault', '-o', `encryption-passphrase=not-${SECRET}-either`],
    ];
    const results: MatchQueryResult[] = [];
    for (const args of runs) {
      const r = await cli('simplectl', ['--log-level', 'debug', '--json', ...args, ...scope], { env });
      expect(r.stdout + r.stderr).not.toContain(SECRET);
      expect(r.stderr).toContain('exec: cryptsetup open --test-passphrase --key-file - ');
      results.push(JSON.parse(r.stdout) as MatchQueryResult);
    }
    expect(await watch.stop()).toEqual([]);
    expect(results.map((r) => r.chosen.map((d) => d.device))).toEqual([[disk.device], [disk.device], []]);
    const test = ['open', '--test-passphrase', '--key-file', '-', `${disk.device}p2`];
    expect(recorder.calls('cryptsetup')).toEqual([test, test, test]);
  });

  it('luks-open reads a key file and hands the passphrase to cryptsetup on stdin', async () => {
    const disk = await luksDisk('vault', SECRET);
    const keys = keyDir({ k: SECRET });
    const recorder = recordArgv(['cryptsetup']);
    const env = { ...TEST_ENV, PATH: `${recorder.dir}:${process.env.PATH}` };
    const watch = watchArgv(SECRET, isSimplectl);
    const r = await cli(
      'simplectl',
      ['--log-level', 'debug', '--json', 'luks-open', disk.device, '--key-file', `${keys}/k`],
      {
        env,
      },
    );
    expect(await watch.stop()).toEqual([]);
    expect(r.stdout + r.stderr).not.toContain(SECRET);
    for (const call of recorder.calls('cryptsetup')) expect(call.join(' ')).not.toContain(SECRET);
    if (kernelHasDeviceMapper()) {
      expect(r.exitCode, r.stderr).toBe(0);
      const { name } = JSON.parse(r.stdout) as { name: string };
      expect(recorder.calls('cryptsetup')).toContainEqual([
        'open',
        '--type',
        'luks',
        '--key-file',
        '-',
        `${disk.device}p2`,
        name,
      ]);
      execFileSync('cryptsetup', ['close', name]);
    } else {
      // Found, key read, then refused before cryptsetup could be asked to map anything.
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('this kernel has no device-mapper');
    }
  });
});
