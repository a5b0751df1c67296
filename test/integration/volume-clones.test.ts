/**
 * Two disks carrying the same data partition UUID (a dd copy, a cloned VM
 * image, two paths to one disk): the volume layer knows a disk by that UUID,
 * so neither is used, both are shown with the reason, and a copy attached
 * next to a mounted disk leaves the mounted one where it is.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DiskReport } from '../../src/core/disk-state.js';
import { cli } from '../fixtures/cli.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { initialisedDisk, TEST_ENV } from '../fixtures/simple-disks.js';
import {
  attachImage,
  attachImageAt,
  dataPartUuid,
  mountInfo,
  mountsUnder,
  uniqueLabel,
  unusedLoopDevice,
  volumeDir,
  volumeEnv,
  waitFor,
} from './volume-fixture.js';

/** A byte-for-byte copy of `file` (sparse, as the original), not attached. */
function copyImage(file: string): string {
  const copy = join(scratchDir('clone'), 'copy.img');
  execFileSync('cp', ['--sparse=always', file, copy]);
  return copy;
}

function reason(uuid: string, other: string): string {
  return `shares its data partition's UUID ${uuid} with ${other}: a copy of one disk (dd, a cloned image) or a second path to it; detach all but one, or give a copy new UUIDs with simplectl initialize-disk --force (which erases it)`;
}

describe.skipIf(missing({ root: true, loop: true }))('disks with the same data partition UUID', () => {
  it('are both shown as rejected, and a mount takes neither', async () => {
    const label = uniqueLabel();
    const original = await initialisedDisk(`label.${label}`);
    const copy = attachImage(copyImage(original.file));
    const uuid = dataPartUuid(original.device).toLowerCase();
    const names = [original.device, copy].map((d) => d.replace('/dev/', ''));

    const scan = await cli('simplectl', ['--json', 'scan-disks', '--include', ...names], { env: TEST_ENV });
    expect(scan.exitCode, scan.stderr).toBe(0);
    const reports = new Map((JSON.parse(scan.stdout) as DiskReport[]).map((d) => [d.device, d]));
    expect(reports.get(original.device)).toMatchObject({ state: 'rejected', reason: reason(uuid, copy) });
    expect(reports.get(copy)).toMatchObject({ state: 'rejected', reason: reason(uuid, original.device) });

    const env = volumeEnv();
    const dir = volumeDir('v', 'vol-clones');
    const r = await env.mount(`label.${label}`, dir, [original.device, copy]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`volume label.${label} needs at least 1 disk labelled '${label}'`);
    expect(r.stderr).toContain(`${original.device}: not usable: it ${reason(uuid, copy)}`);
    expect(r.stderr).toContain(`${copy}: not usable: it ${reason(uuid, original.device)}`);
    expect(mountsUnder(dir)).toEqual([]);

    // With the copy detached, the disk is the volume's again.
    execFileSync('losetup', ['-d', copy]);
    const again = await env.mount(`label.${label}`, dir, [original.device]);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(mountInfo(join(dir, 'simple-0'))?.source).toBe(`${original.device}p2`);
    await env.umount(dir, { release: true });
  });

  it('leave a mounted disk in place when the copy is attached to a dynamic-mounts volume', async () => {
    const label = uniqueLabel();
    const original = await initialisedDisk(`label.${label}`);
    const copyFile = copyImage(original.file);
    const other = await initialisedDisk(`label.${label}`);
    await other.detach();
    const copySlot = unusedLoopDevice();
    let otherSlot = unusedLoopDevice();
    while (otherSlot === copySlot) otherSlot = unusedLoopDevice();
    const env = volumeEnv();
    const dir = volumeDir('v', 'vol-clone-dynamic');
    const r = await env.mount(`label.${label}_min-disks.0_dynamic-mounts`, dir, [
      original.device,
      copySlot,
      otherSlot,
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    writeFileSync(join(dir, 'simple-0', 'keep'), 'undisturbed');

    // The copy and another disk of the label come in together: once the other one is
    // mounted, the watcher has seen the copy too.
    attachImageAt(copyFile, copySlot);
    attachImageAt(other.file, otherSlot);
    await waitFor(
      `${otherSlot} mounted in the volume`,
      () => (mountInfo(join(dir, 'simple-1'))?.source === `${otherSlot}p2` ? true : undefined),
      10_000,
    );
    expect(readdirSync(dir).sort()).toEqual(['simple-0', 'simple-1']);
    expect(mountInfo(join(dir, 'simple-0'))?.source).toBe(`${original.device}p2`);
    expect(readFileSync(join(dir, 'simple-0', 'keep'), 'utf8')).toBe('undisturbed');
    const status = await env.status();
    expect(status.volumes[0]?.disks.map((d) => d.device).sort()).toEqual([original.device, otherSlot].sort());
    await env.umount(dir, { release: true });
  });
});
