/**
 * luks-open and luks-close on this host, whose kernel has no device-mapper:
 * they must find the LUKS partition, check the passphrase source, and fail
 * with a clear sentence instead of a cryptsetup trace. The full open/close
 * cycle runs in luks-uml.test.ts.
 */
import { readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkFormatSettings } from '../../src/adapters/cryptsetup.js';
import { cli } from '../fixtures/cli.js';
import { kernelHasDeviceMapper, missing, scratchDir } from '../fixtures/environment.js';
import { blankDisk, initialisedDisk, keyDir, luksDisk, sha256File } from '../fixtures/simple-disks.js';

describe.skipIf(missing({ loop: true }))('luks-open and luks-close on the host', () => {
  // On a kernel with device-mapper luks-open would succeed; luks-uml covers that cycle.
  it.skipIf(kernelHasDeviceMapper())(
    'explains that this kernel cannot map LUKS, leaving the disk as it was',
    async () => {
      const disk = await luksDisk('vault', 'pw');
      const before = await sha256File(disk.file);
      const r = await cli('simplectl', ['luks-open', disk.device], { input: 'pw\n' });
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('this kernel has no device-mapper');
      expect(await sha256File(disk.file)).toBe(before);
    },
  );

  it('finds the LUKS partition through a symlink to the disk or to the partition', async () => {
    const disk = await luksDisk('vault', 'pw');
    const dir = scratchDir('links');
    for (const [link, target] of [
      [join(dir, 'disk'), disk.device],
      [join(dir, 'part'), `${disk.device}p2`],
    ] as const) {
      symlinkSync(target, link);
      const r = await cli('simplectl', ['luks-open', link], { input: 'pw\n' });
      // Found and checked: only the missing device-mapper (or nothing) stops it.
      expect(r.stderr).not.toContain('no such block device');
      if (kernelHasDeviceMapper()) {
        expect(r.exitCode, r.stderr).toBe(0);
        await cli('simplectl', ['luks-close', r.stdout.trim().split(' ').pop() ?? '']);
      } else expect(r.stderr).toContain('this kernel has no device-mapper');
    }
  });

  it('refuses disks that are not encrypted or not ours', async () => {
    const plain = await initialisedDisk('label.fast');
    const r = await cli('simplectl', ['luks-open', plain.device], { input: 'pw\n' });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`${plain.device} is not encrypted (label 'fast')`);
    const blank = await blankDisk();
    const b = await cli('simplectl', ['luks-open', blank.device], { input: 'pw\n' });
    expect(b.stderr).toContain(`${blank.device} is not an initialised disk (it is blank)`);
  });

  it('checks the passphrase sources', async () => {
    const disk = await luksDisk('vault', 'pw');
    const empty = await cli('simplectl', ['luks-open', disk.device], { input: '\n' });
    expect(empty.exitCode).toBe(2);
    expect(empty.stderr).toContain('the passphrase is empty');
    const keys = keyDir({ k: 'pw' }, 0o640);
    const shared = await cli('simplectl', ['luks-open', disk.device, '--key-name', 'k'], {
      env: { SIMPLECTL_KEY_DIR: keys },
    });
    expect(shared.stderr).toMatch(/accessible by group or others \(mode 640\)/);
    // --key-file: a file others may read is used, with a warning; "-" is standard input.
    const open = join(keyDir({ k: 'pw' }, 0o644), 'k');
    const named = await cli('simplectl', ['luks-open', disk.device, '--key-file', open]);
    expect(named.stderr).toContain(
      `key file ${open} is accessible by group or others (mode 644); chmod 600 it`,
    );
    const stdin = await cli('simplectl', ['luks-open', disk.device, '--key-file', '-'], { input: '\n' });
    expect(stdin.stderr).toContain('key file - (standard input) is empty');
    const read = await cli('simplectl', ['luks-open', disk.device, '--key-file', '-'], { input: 'pw\n' });
    expect(read.stderr).not.toContain('does not exist');
    if (!kernelHasDeviceMapper()) expect(read.stderr).toContain('this kernel has no device-mapper');
    const both = await cli('simplectl', ['luks-open', disk.device, '--key-name', 'k', '--key-file', '/x']);
    expect(both.exitCode).toBe(2);
    expect(both.stderr).toContain('give --key-file or --key-name, not both');
  });

  it('luks-close says when a mapping is not open', async () => {
    const r = await cli('simplectl', ['luks-close', 'simple-no-such-mapping']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('simple-no-such-mapping is not open');
  });

  it('asks cryptsetup whether it takes the LUKS settings on a scratch file, and says what it refused', async () => {
    const scratch = () => readdirSync(tmpdir()).filter((n) => n.startsWith('simplectl-luks-trial-'));
    const before = scratch();
    // aes-xts splits its key in two AES keys: 128 bits is no size it takes.
    await expect(checkFormatSettings({ cipher: 'aes-xts-plain64', keySizeBits: 128 })).rejects.toThrow(
      /^cryptsetup refuses cipher aes-xts-plain64, key size 128 bits: \S/,
    );
    await expect(checkFormatSettings({ hash: 'no-such-hash' })).rejects.toThrow(
      /^cryptsetup refuses the default cipher, hash no-such-hash: .*no-such-hash/,
    );
    await expect(
      checkFormatSettings({ cipher: 'aes-xts-plain64', keySizeBits: 512, hash: 'sha256' }),
    ).resolves.toBeUndefined();
    expect(scratch()).toEqual(before);
  });
});
