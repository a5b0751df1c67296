/**
 * The programmatic face the plugin server uses: volumeMount / volumeUmount /
 * volumeRelease / listVolumes in-process, and a dynamic volume watched
 * in-process with watchVolume instead of a detached watcher.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultContext } from '../../src/commands/context.js';
import { volumeMount } from '../../src/commands/volume-mount.js';
import { listVolumes, volumeStatus } from '../../src/commands/volume-status.js';
import { NotMountedError, volumeRelease, volumeUmount } from '../../src/commands/volume-umount.js';
import { watchVolume } from '../../src/commands/volume-watch.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { initialisedDisk } from '../fixtures/simple-disks.js';
import {
  attachImageAt,
  mountInfo,
  mountsUnder,
  uniqueLabel,
  unusedLoopDevice,
  waitFor,
} from './volume-fixture.js';

const ctx = defaultContext();

describe.skipIf(missing({ loop: true }))('volume handlers in-process', () => {
  it('mount, list, umount and release', async () => {
    const label = uniqueLabel();
    const disks = [await initialisedDisk(`label.${label}`), await initialisedDisk(`label.${label}`)];
    const stateDir = scratchDir('state');
    const dir = join(scratchDir('vol'), 'v');
    const include = disks.map((d) => d.device.replace('/dev/', ''));
    onCleanup(`volume ${dir}`, async () => {
      await volumeUmount({ dir, stateDir, lazy: true }, ctx).catch(() => {});
    });
    const name = `label.${label}_max-disks.2`;
    const mounted = await volumeMount({ query: name, dir, stateDir, include }, ctx);
    expect(mounted).toMatchObject({ dir, dynamic: false, watcher: null, alreadyMounted: false });
    expect(mounted.disks.map((d) => [d.name, d.number, d.mountPoint])).toEqual([
      ['simple-0', 0, join(dir, 'simple-0')],
      ['simple-1', 1, join(dir, 'simple-1')],
    ]);
    expect((await volumeMount({ query: name, dir, stateDir, include }, ctx)).alreadyMounted).toBe(true);
    await expect(volumeMount({ query: name, dir: `${dir}2`, stateDir, include }, ctx)).rejects.toThrow(
      /already mounted at/,
    );

    const listed = await listVolumes({ stateDir });
    expect(listed).toEqual([
      expect.objectContaining({
        name,
        dir,
        disks: expect.arrayContaining([expect.objectContaining({ number: 0 })]),
      }),
    ]);

    await expect(volumeRelease({ name, stateDir }, ctx)).rejects.toThrow(/unmount it first/);
    const u = await volumeUmount({ dir, stateDir }, ctx);
    expect(u.unmounted).toHaveLength(3);
    expect(mountsUnder(dir)).toEqual([]);
    expect(await listVolumes({ stateDir })).toEqual([]);
    await expect(volumeUmount({ dir, stateDir }, ctx)).rejects.toBeInstanceOf(NotMountedError);
    expect((await volumeRelease({ name, stateDir }, ctx)).disks).toHaveLength(2);
    expect((await volumeStatus({ stateDir }, ctx)).volumes).toEqual([]);
  });

  it('watches a dynamic volume in-process when the caller asks for no detached watcher', async () => {
    const label = uniqueLabel();
    const disk = await initialisedDisk(`label.${label}`);
    await disk.detach();
    const slot = unusedLoopDevice();
    const stateDir = scratchDir('state');
    const dir = join(scratchDir('vol'), 'v');
    const include = [slot.replace('/dev/', '')];
    onCleanup(`volume ${dir}`, async () => {
      await volumeUmount({ dir, stateDir, lazy: true }, ctx).catch(() => {});
    });
    const name = `label.${label}_min-disks.0_dynamic-mounts`;
    const mounted = await volumeMount({ query: name, dir, stateDir, include, watcher: 'none' }, ctx);
    expect(mounted).toMatchObject({ dynamic: true, watcher: null, disks: [] });
    const watcher = await watchVolume({ dir, stateDir, include }, ctx, { mode: 'poll', intervalMs: 200 });
    onCleanup('in-process watcher', () => watcher.stop());
    expect(watcher.source).toBe('poll');
    attachImageAt(disk.file, slot);
    await waitFor('the disk in the volume', () =>
      mountInfo(join(dir, 'simple-0'))?.source === `${slot}p2` ? true : undefined,
    );
    await watcher.stop();
    await volumeUmount({ dir, stateDir, release: true }, ctx);
    expect(readdirSync(dir)).toEqual([]);
  });
});
