/**
 * match-query on real loop disks: which disks a query picks, in what order,
 * and why the others are left out; passphrases are tested against real LUKS
 * headers without mapping anything.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MatchQueryResult } from '../../src/commands/match-query.js';
import { encodeMetadata, newMetadata } from '../../src/core/metadata.js';
import { cli } from '../fixtures/cli.js';
import { missing } from '../fixtures/environment.js';
import type { LoopDisk } from '../fixtures/loop-disk.js';
import {
  blankDisk,
  foreignExt4Disk,
  initialisedDisk,
  kernelName,
  keyDir,
  luksDisk,
  sha256File,
  TEST_ENV,
} from '../fixtures/simple-disks.js';

describe.skipIf(missing({ loop: true }))('match-query', () => {
  let fast1: LoopDisk;
  let fast2: LoopDisk;
  let slow: LoopDisk;
  let blank: LoopDisk;
  let foreign: LoopDisk;
  let vault: LoopDisk;
  let elsewhere: LoopDisk;
  let keys: string;
  let all: LoopDisk[];

  async function match(query: string, extra: string[] = []) {
    const r = await cli(
      'simplectl',
      ['--json', 'match-query', query, '--include', ...all.map(kernelName), ...extra],
      {
        env: { ...TEST_ENV, SIMPLECTL_KEY_DIR: keys },
      },
    );
    return { ...r, result: JSON.parse(r.stdout) as MatchQueryResult };
  }

  const devices = (list: readonly { device: string }[]) => list.map((d) => d.device);
  const reasons = (r: MatchQueryResult, disk: LoopDisk) =>
    r.rejected.find((x) => x.disk.device === disk.device)?.reasons;

  beforeAll(async () => {
    fast1 = await initialisedDisk('label.fast');
    fast2 = await initialisedDisk('label.fast_filesystem.btrfs', 160);
    slow = await initialisedDisk('label.slow');
    blank = await blankDisk();
    foreign = await foreignExt4Disk();
    vault = await luksDisk('vault', 'correct horse');
    // A disk initialised by another host: rewrite its metadata blob in place.
    elsewhere = await initialisedDisk('label.fast');
    const blob = Buffer.alloc(1024 * 1024);
    encodeMetadata(newMetadata({ hostname: 'far-away', machineId: '0'.repeat(32), label: 'fast' })).copy(
      blob,
    );
    writeFileSync(`${elsewhere.device}p1`, blob);
    keys = keyDir({ good: 'correct horse', bad: 'wrong horse' });
    all = [fast1, fast2, slow, blank, foreign, vault, elsewhere];
  });

  it('picks every disk of the label in device order and says why each other disk does not match', async () => {
    const { exitCode, result } = await match('label.fast');
    expect(exitCode).toBe(0);
    expect(devices(result.chosen)).toEqual(
      devices([fast1, fast2, elsewhere]).sort((a, b) => a.localeCompare(b, 'en', { numeric: true })),
    );
    expect(result.chosen.every((d) => d.action === 'use')).toBe(true);
    expect(reasons(result, slow)).toEqual(["label is 'slow', not 'fast'"]);
    expect(reasons(result, foreign)).toEqual([
      'not usable: it has a filesystem (ext4) and no partition table',
    ]);
    expect(reasons(result, vault)).toEqual(["label is 'vault', not 'fast'"]);
    // The blank disk matches but is not needed: it would only be initialised to reach min-disks.
    expect(result.spare.map((d) => [d.device, d.action])).toEqual([[blank.device, 'initialise']]);
  });

  it('honours own-hostname, own-machine-id and filesystem', async () => {
    const own = (await match('label.fast_own-hostname')).result;
    expect(devices(own.chosen)).not.toContain(elsewhere.device);
    expect(reasons(own, elsewhere)?.[0]).toMatch(/initialised by host 'far-away', not this host/);
    const id = (await match('label.fast_own-machine-id')).result;
    expect(reasons(id, elsewhere)?.[0]).toMatch(/machine-id is '0{32}'/);
    const btrfs = (await match('label.fast_filesystem.btrfs')).result;
    expect(devices(btrfs.chosen)).toEqual([fast2.device]);
    expect(reasons(btrfs, fast1)).toEqual(['filesystem is ext4, not btrfs']);
  });

  it('honours min-size and max-size in bytes', async () => {
    const big = (await match('label.fast_min-size.100M')).result;
    expect(devices(big.chosen)).toEqual([fast2.device]);
    expect(reasons(big, fast1)).toEqual(['size 64.0 MiB is below min-size 100M']);
    const small = (await match('label.fast_max-size.64Mi')).result;
    expect(devices(small.chosen)).not.toContain(fast2.device);
  });

  it('adds a blank disk to reach min-disks, and fails (exit 1) when none may be initialised', async () => {
    const three = await match('label.fast_min-disks.4');
    expect(three.result.chosen.map((d) => [d.device, d.action]).at(-1)).toEqual([blank.device, 'initialise']);
    expect(three.result.satisfied).toBe(true);
    const strict = await match('label.fast_min-disks.4_initialized.true');
    expect(strict.exitCode).toBe(1);
    expect(strict.result.satisfied).toBe(false);
    expect(strict.stderr).toMatch(/needs 4 disk\(s\); 3 can be had/);
    expect(reasons(strict.result, blank)).toEqual(['blank, and the query asks for initialized disks only']);
  });

  it('caps at max-disks', async () => {
    const { result } = await match('label.fast_max-disks.1');
    expect(result.chosen).toHaveLength(1);
    expect(result.spare.map((d) => d.action)).toEqual(['use', 'use', 'initialise']);
  });

  it('tests the passphrase of encrypted disks without mapping them', async () => {
    const before = await sha256File(vault.file);
    const good = (await match('label.vault_encryption-key.good')).result;
    expect(devices(good.chosen)).toEqual([vault.device]);
    const bad = (await match('label.vault_encryption-key.bad')).result;
    expect(good.chosen).toHaveLength(1);
    // Only the blank disk is left, to be initialised with that key.
    expect(bad.chosen.map((d) => [d.device, d.action])).toEqual([[blank.device, 'initialise']]);
    expect(reasons(bad, vault)).toEqual(['the passphrase does not open it']);
    const none = (await match('label.vault')).result;
    expect(reasons(none, vault)).toEqual(['encrypted, but the query gives no passphrase']);
    const opt = await match('label.vault', ['-o', 'encryption-passphrase=correct horse']);
    expect(devices(opt.result.chosen)).toEqual([vault.device]);
    expect(opt.stdout + opt.stderr).not.toContain('correct horse');
    // Given beside the name, the passphrase is not in any volume list: no warning says it is.
    expect(opt.stderr).not.toContain('part of the volume name');
    expect(opt.result.name).toBe('label.vault');
    expect(await sha256File(vault.file)).toBe(before);
  });

  it('rejects a disk said to be encrypted whose LUKS header is gone, and still picks the others', async () => {
    // As an interrupted initialise leaves one: metadata written, luksFormat never done.
    const headless = await luksDisk('vault', 'correct horse');
    execFileSync('wipefs', ['--all', '--quiet', `${headless.device}p2`]);
    const r = await cli(
      'simplectl',
      [
        '--json',
        'match-query',
        'label.vault_encryption-key.good',
        '--include',
        kernelName(vault),
        kernelName(headless),
      ],
      { env: { ...TEST_ENV, SIMPLECTL_KEY_DIR: keys } },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as MatchQueryResult;
    expect(devices(result.chosen)).toEqual([vault.device]);
    expect(reasons(result, headless)).toEqual([
      expect.stringMatching(/^its passphrase could not be tested: .*not a valid LUKS device/),
    ]);
  });

  it('prints a readable report, headed by the volume name as given', async () => {
    const r = await cli('simplectl', [
      'match-query',
      'min-disks.4_label.fast',
      '--include',
      ...all.map(kernelName),
    ]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^min-disks\.4_label\.fast: 4 disk\(s\) chosen \(needs at least 4\)/);
    expect(r.stdout).toMatch(new RegExp(`3\\s+${blank.device}\\s+64\\.0 MiB\\s+initialise`));
    expect(r.stdout).toMatch(new RegExp(`${slow.device}\\s+label is 'slow', not 'fast'`));
  });
});
