/**
 * dynamic-mounts and concurrent mounts on real loop disks: a disk plugged in
 * while the volume is mounted appears in it, one unplugged (`losetup -d`
 * while mounted) leaves it, through kernel uevents and through the sysfs poll
 * alike; two mounts racing for the same disks never share one.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../src/adapters/processes.js';
import { missing } from '../fixtures/environment.js';
import { initialisedDisk } from '../fixtures/simple-disks.js';
import {
  attachImageAt,
  diskSources,
  labelledDisks,
  mountInfo,
  mountsUnder,
  uniqueLabel,
  unusedLoopDevice,
  volumeDir,
  volumeEnv,
  waitFor,
} from './volume-fixture.js';

/** The stated bound: changes show within a few seconds. */
const FEW_SECONDS = 5_000;

describe.skipIf(missing({ loop: true }))('dynamic-mounts', () => {
  for (const mode of ['uevent', 'poll'] as const) {
    it(`adds a disk attached while mounted and drops one detached (${mode})`, async () => {
      const label = uniqueLabel();
      const first = await initialisedDisk(`label.${label}`);
      const second = await initialisedDisk(`label.${label}`);
      await second.detach(); // unplugged until the volume is up
      const slot = unusedLoopDevice();
      const env = volumeEnv();
      const dir = volumeDir();
      const r = await env.mount(
        `label.${label}_min-disks.0_dynamic-mounts`,
        dir,
        [first.device, slot],
        mode === 'poll' ? { SIMPLECTL_WATCH: 'poll' } : {},
      );
      expect(r.exitCode).toBe(0);
      expect(readdirSync(dir)).toEqual(['simple-0']);
      const watcher = (await env.status()).volumes[0]?.watcher;
      expect(watcher?.alive).toBe(true);
      writeFileSync(join(dir, 'simple-0', 'keep'), 'undisturbed');

      attachImageAt(second.file, slot);
      await waitFor(
        `${slot} mounted in the volume`,
        () => (mountInfo(join(dir, 'simple-1'))?.source === `${slot}p2` ? true : undefined),
        FEW_SECONDS,
      );
      expect(readdirSync(dir).sort()).toEqual(['simple-0', 'simple-1']);
      expect(mountInfo(dir)?.options).toContain('ro');
      const log = readFileSync(
        join(env.stateDir, 'watchers', readdirSync(join(env.stateDir, 'watchers'))[0]!),
        'utf8',
      );
      expect(log).toMatch(mode === 'poll' ? /watching .* \(poll\)/ : /watching .* \(uevent\(\w+\)\+poll\)/);

      // Unplugged while mounted: the kernel only marks the busy device for detaching.
      execFileSync('losetup', ['-d', slot]);
      await waitFor(
        `${slot} gone from the volume`,
        () => (mountsUnder(dir).length === 2 && !existsSync(join(dir, 'simple-1')) ? true : undefined),
        FEW_SECONDS,
      );
      // Released by the lazy unmount, the loop device finishes detaching.
      await waitFor(`${slot} detached`, () =>
        readFileSync(`/sys/block/${slot.replace('/dev/', '')}/size`, 'utf8').trim() === '0'
          ? true
          : undefined,
      );
      expect(readFileSync(join(dir, 'simple-0', 'keep'), 'utf8')).toBe('undisturbed');
      expect(mountInfo(join(dir, 'simple-0'))?.source).toBe(`${first.device}p2`);
      const status = await env.status();
      expect(status.volumes[0]?.disks.map((d) => d.device)).toEqual([first.device]);

      await env.umount(dir, { release: true });
      expect(mountsUnder(dir)).toEqual([]);
      expect(isProcessAlive(watcher!.pid)).toBe(false);
    });
  }

  it('stops a watcher whose volume was unmounted by hand when another volume takes its directory', async () => {
    const first = uniqueLabel();
    const second = uniqueLabel();
    const [disk] = await labelledDisks(first, 1);
    const [other] = await labelledDisks(second, 1);
    const spare = await initialisedDisk(`label.${second}`);
    await spare.detach();
    const slot = unusedLoopDevice();
    const env = volumeEnv();
    const dir = volumeDir();
    const include = [disk!.device, other!.device, slot];
    expect((await env.mount(`label.${first}_min-disks.0_dynamic-mounts`, dir, include)).exitCode).toBe(0);
    const watcher = (await env.status()).volumes[0]!.watcher!;
    expect(watcher.alive).toBe(true);
    // By hand, behind simplectl's back; the watcher lives on until a disk event wakes it.
    for (const m of mountsUnder(dir)) execFileSync('umount', [m]);
    const static_ = await env.mount(`label.${second}`, dir, include);
    expect(static_.exitCode, static_.stderr).toBe(0);
    const before = mountsUnder(dir).sort();
    // A disk of the second volume's label comes: that volume is not dynamic, so nothing takes it.
    attachImageAt(spare.file, slot);
    await waitFor('the first volume’s watcher gone', () => (isProcessAlive(watcher.pid) ? undefined : true));
    expect(mountsUnder(dir).sort()).toEqual(before);
    expect(diskSources(dir)).toEqual([`${other!.device}p2`]);
    await env.umount(dir, { release: true });
  });

  it('gives a disk that joins while another is away a directory of its own, not the absent one’s', async () => {
    const label = uniqueLabel();
    const first = await initialisedDisk(`label.${label}`);
    const second = await initialisedDisk(`label.${label}`);
    const newcomer = await initialisedDisk(`label.${label}`);
    await newcomer.detach();
    const away = unusedLoopDevice();
    let slot = unusedLoopDevice();
    while (slot === away) slot = unusedLoopDevice();
    await second.detach();
    attachImageAt(second.file, away);
    const env = volumeEnv();
    const dir = volumeDir();
    const r = await env.mount(`label.${label}_min-disks.0_dynamic-mounts`, dir, [first.device, away, slot]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(mountInfo(join(dir, 'simple-1'))?.source).toBe(`${away}p2`);
    writeFileSync(join(dir, 'simple-1', 'db'), 'the second disk’s data');
    // Its link resets: it is gone for a moment, and another disk of the label arrives meanwhile.
    execFileSync('losetup', ['-d', away]);
    await waitFor('simple-1 gone', () => (existsSync(join(dir, 'simple-1')) ? undefined : true));
    attachImageAt(newcomer.file, slot);
    await waitFor('the newcomer mounted', () =>
      mountInfo(join(dir, 'simple-2'))?.source === `${slot}p2` ? true : undefined,
    );
    expect(existsSync(join(dir, 'simple-1'))).toBe(false);
    // Back, the disk finds its own directory, with its data.
    await waitFor(`${away} detached`, () =>
      readFileSync(`/sys/block/${away.replace('/dev/', '')}/size`, 'utf8').trim() === '0' ? true : undefined,
    );
    attachImageAt(second.file, away);
    await waitFor('the second disk back in simple-1', () =>
      mountInfo(join(dir, 'simple-1'))?.source === `${away}p2` ? true : undefined,
    );
    expect(readFileSync(join(dir, 'simple-1', 'db'), 'utf8')).toBe('the second disk’s data');
    await env.umount(dir, { release: true });
  });

  it('keeps numbered placeholders when a disk leaves a persist-numbering volume', async () => {
    const label = uniqueLabel();
    const disk = await initialisedDisk(`label.${label}`);
    const spare = await initialisedDisk(`label.${label}`);
    await spare.detach();
    const slot = unusedLoopDevice();
    const env = volumeEnv();
    const dir = volumeDir();
    const query = `label.${label}_min-disks.0_max-disks.3_persist-numbering_dynamic-mounts`;
    expect((await env.mount(query, dir, [disk.device, slot])).exitCode).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['simple-0', 'simple-1', 'simple-2']);
    attachImageAt(spare.file, slot);
    await waitFor('the spare disk in simple-1', () =>
      mountInfo(join(dir, 'simple-1'))?.source === `${slot}p2` ? true : undefined,
    );
    execFileSync('losetup', ['-d', slot]);
    await waitFor('simple-1 empty again', () => (mountInfo(join(dir, 'simple-1')) ? undefined : true));
    expect(readdirSync(dir).sort()).toEqual(['simple-0', 'simple-1', 'simple-2']);
    expect(readdirSync(join(dir, 'simple-1'))).toEqual([]);
    await env.umount(dir, { release: true });
  });
});

describe.skipIf(missing({ loop: true }))('concurrent mounts', () => {
  it('never give one disk to two volumes', async () => {
    const label = uniqueLabel();
    const disks = await labelledDisks(label, 4);
    const env = volumeEnv();
    for (let round = 0; round < 3; round++) {
      const a = volumeDir('a');
      const b = volumeDir('b');
      const [ra, rb] = await Promise.all([
        env.mount(`label.${label}_max-disks.2`, a, disks),
        env.mount(`label.${label}_max-disks.2_basename.b-`, b, disks),
      ]);
      expect([ra.exitCode, rb.exitCode, ra.stderr, rb.stderr]).toEqual([0, 0, '', '']);
      const all = [...diskSources(a), ...diskSources(b)];
      expect(all).toHaveLength(4);
      expect(new Set(all).size).toBe(4);
      for (const dir of [a, b]) await env.umount(dir, { release: true });
    }
    // Both want three of the four: exactly one gets them, the other fails and leaves nothing.
    const a = volumeDir('a');
    const b = volumeDir('b');
    const results = await Promise.all([
      env.mount(`label.${label}_min-disks.3`, a, disks),
      env.mount(`label.${label}_min-disks.3_basename.b-`, b, disks),
    ]);
    expect(results.map((r) => r.exitCode).sort()).toEqual([0, 1]);
    const [won, lost] = results[0]!.exitCode === 0 ? [a, b] : [b, a];
    expect(diskSources(won)).toHaveLength(4);
    expect(existsSync(lost)).toBe(false);
    await env.umount(won, { release: true });
  });
});
