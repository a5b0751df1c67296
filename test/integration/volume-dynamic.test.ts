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
import { missing, scratchDir } from '../fixtures/environment.js';
import { initialisedDisk } from '../fixtures/simple-disks.js';
import {
  attachImageAt,
  mountInfo,
  mountsUnder,
  uniqueLabel,
  unusedLoopDevice,
  volumeEnv,
  waitFor,
} from './volume-fixture.js';

function isRunning(pid: number): boolean {
  try {
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

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
      const dir = join(scratchDir('vol'), 'v');
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

      expect((await env.run(['umount', '--release', dir])).exitCode).toBe(0);
      expect(mountsUnder(dir)).toEqual([]);
      expect(isRunning(watcher!.pid)).toBe(false);
    });
  }

  it('keeps numbered placeholders when a disk leaves a persist-numbering volume', async () => {
    const label = uniqueLabel();
    const disk = await initialisedDisk(`label.${label}`);
    const spare = await initialisedDisk(`label.${label}`);
    await spare.detach();
    const slot = unusedLoopDevice();
    const env = volumeEnv();
    const dir = join(scratchDir('vol'), 'v');
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
    expect((await env.run(['umount', '--release', dir])).exitCode).toBe(0);
  });
});

describe.skipIf(missing({ loop: true }))('concurrent mounts', () => {
  it('never give one disk to two volumes', async () => {
    const label = uniqueLabel();
    const disks = [];
    for (let i = 0; i < 4; i++) disks.push(await initialisedDisk(`label.${label}`));
    const devices = disks.map((d) => d.device);
    const env = volumeEnv();
    const sourcesOf = (dir: string) =>
      mountsUnder(dir)
        .filter((m) => m !== dir)
        .map((m) => mountInfo(m)?.source);
    for (let round = 0; round < 3; round++) {
      const a = join(scratchDir('vol'), 'a');
      const b = join(scratchDir('vol'), 'b');
      const [ra, rb] = await Promise.all([
        env.mount(`label.${label}_max-disks.2`, a, devices),
        env.mount(`label.${label}_max-disks.2_basename.b-`, b, devices),
      ]);
      expect([ra.exitCode, rb.exitCode, ra.stderr, rb.stderr]).toEqual([0, 0, '', '']);
      const all = [...sourcesOf(a), ...sourcesOf(b)];
      expect(all).toHaveLength(4);
      expect(new Set(all).size).toBe(4);
      for (const dir of [a, b]) expect((await env.run(['umount', '--release', dir])).exitCode).toBe(0);
    }
    // Both want three of the four: exactly one gets them, the other fails and leaves nothing.
    const a = join(scratchDir('vol'), 'a');
    const b = join(scratchDir('vol'), 'b');
    const results = await Promise.all([
      env.mount(`label.${label}_min-disks.3`, a, devices),
      env.mount(`label.${label}_min-disks.3_basename.b-`, b, devices),
    ]);
    expect(results.map((r) => r.exitCode).sort()).toEqual([0, 1]);
    const [won, lost] = results[0]!.exitCode === 0 ? [a, b] : [b, a];
    expect(sourcesOf(won)).toHaveLength(4);
    expect(existsSync(lost)).toBe(false);
    expect((await env.run(['umount', '--release', won])).exitCode).toBe(0);
  });
});
