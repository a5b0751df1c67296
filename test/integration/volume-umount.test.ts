/**
 * `simplectl umount DIR` takes down only what is the volume's own: its root
 * and the disks mounted on it. Anything mounted inside a disk (a user's
 * tmpfs, another simplectl volume) makes umount refuse, naming it, with
 * --lazy too; nothing is unmounted and the user's files stay. A disk mount a
 * crash left out of the state is still unmounted.
 */

import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { onCleanup } from '../fixtures/cleanup.js';
import { missing } from '../fixtures/environment.js';
import {
  diskSources,
  labelledDisks,
  mountsUnder,
  uniqueLabel,
  type VolumeEnv,
  volumeDir,
  volumeEnv,
} from './volume-fixture.js';

/** Mounts a small tmpfs of the user's at `dir` (created), unmounted at cleanup if still there. */
function userTmpfs(dir: string): void {
  mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'usercache', dir]);
  onCleanup(`user tmpfs at ${dir}`, () => {
    if (mountsUnder(dir).includes(dir)) execFileSync('umount', ['-l', dir]);
  });
}

/** A volume of two fresh disks mounted at a new directory named after `scratch`. */
async function twoDiskVolume(scratch: string) {
  const label = uniqueLabel();
  const disks = await labelledDisks(label, 2);
  const env = volumeEnv();
  const dir = volumeDir('v', scratch);
  const query = `label.${label}_min-disks.2`;
  const mounted = await env.mount(query, dir, disks);
  expect(mounted.exitCode, mounted.stderr).toBe(0);
  return { disks, env, dir, query };
}

/** `simplectl status` shows the volume at `dir` mounted there with both its disks. */
async function expectWhole(env: VolumeEnv, dir: string): Promise<void> {
  const status = await env.status();
  expect(status.notes).toEqual([]);
  expect(status.volumes).toHaveLength(1);
  expect(status.volumes[0]).toMatchObject({ mounted: true, dir });
  expect(status.volumes[0]!.disks.map((d) => d.mountPoint).sort()).toEqual([
    join(dir, 'simple-0'),
    join(dir, 'simple-1'),
  ]);
}

describe.skipIf(missing({ root: true, loop: true }))(
  'simplectl umount and mounts that are not the volume’s',
  () => {
    it('refuses while a user’s mount is inside a disk, with and without --lazy, and unmounts nothing', async () => {
      const { env, dir } = await twoDiskVolume('vol-foreign');
      const cache = join(dir, 'simple-1', 'cache');
      userTmpfs(cache);
      writeFileSync(join(cache, 'file'), 'important\n');
      const before = mountsUnder(dir);
      expect(before).toHaveLength(4);
      const message = `simplectl: ${dir} is busy: a mount that is not part of the volume is inside it: ${cache} (tmpfs from usercache). Unmount it first; nothing was unmounted.`;
      for (const args of [
        ['umount', dir],
        ['umount', '--lazy', dir],
        ['umount', '--release', dir],
      ]) {
        const r = await env.run(args);
        expect(r.exitCode, args.join(' ')).toBe(1);
        expect(r.stderr.trim()).toBe(message);
        expect(mountsUnder(dir)).toEqual(before);
        expect(readFileSync(join(cache, 'file'), 'utf8')).toBe('important\n');
      }
      await expectWhole(env, dir);
      // Once the user's mount is gone, umount goes through.
      execFileSync('umount', [cache]);
      await env.umount(dir);
      expect(mountsUnder(dir)).toEqual([]);
      expect((await env.status()).volumes[0]).toMatchObject({ mounted: false });
    });

    it('refuses while another simplectl volume is mounted inside, and says how to unmount that one', async () => {
      const outerLabel = uniqueLabel();
      const innerLabel = uniqueLabel();
      const [outerDisk] = await labelledDisks(outerLabel, 1);
      const [innerDisk] = await labelledDisks(innerLabel, 1);
      const env = volumeEnv();
      const dir = volumeDir('v', 'vol-nested');
      const outer = await env.mount(`label.${outerLabel}`, dir, [outerDisk!]);
      expect(outer.exitCode, outer.stderr).toBe(0);
      const innerDir = join(dir, 'simple-0', 'inner');
      const inner = await env.mount(`label.${innerLabel}`, innerDir, [innerDisk!]);
      expect(inner.exitCode, inner.stderr).toBe(0);
      writeFileSync(join(innerDir, 'simple-0', 'file'), 'inner data\n');
      const before = mountsUnder(dir);
      expect(before).toHaveLength(4);
      const r = await env.run(['umount', dir]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr.trim()).toBe(
        `simplectl: ${dir} is busy: a mount that is not part of the volume is inside it: ${innerDir} (the simplectl volume label.${innerLabel}; simplectl umount ${innerDir} unmounts it). Unmount it first; nothing was unmounted.`,
      );
      expect(mountsUnder(dir)).toEqual(before);
      expect(readFileSync(join(innerDir, 'simple-0', 'file'), 'utf8')).toBe('inner data\n');
      const status = await env.status();
      expect(status.notes).toEqual([]);
      expect(status.volumes.map((v) => [v.volume, v.mounted, v.dir]).sort()).toEqual(
        [
          [`label.${innerLabel}`, true, innerDir],
          [`label.${outerLabel}`, true, dir],
        ].sort(),
      );
      // In order, each with its own umount, both go.
      await env.umount(innerDir);
      await env.umount(dir);
      expect(mountsUnder(dir)).toEqual([]);
      expect((await env.status()).volumes.every((v) => !v.mounted)).toBe(true);
    });

    it('puts the disks back when a process works in the root, and --lazy takes the volume down', async () => {
      const { disks, env, dir, query } = await twoDiskVolume('vol-busy-root');
      writeFileSync(join(dir, 'simple-0', 'file'), 'kept\n');
      // Put back, the disks come in another order in the mount table.
      const before = mountsUnder(dir).sort();
      expect(before).toHaveLength(3);
      // A shell left in the root pins the root only: the disks alone could be unmounted.
      const shell = spawn('sleep', ['600'], { cwd: dir, stdio: 'ignore' });
      onCleanup('sleep in the volume root', () => {
        shell.kill('SIGKILL');
      });
      for (const args of [
        ['umount', dir],
        ['umount', '--release', dir],
      ]) {
        const r = await env.run(args);
        expect(r.exitCode, args.join(' ')).toBe(1);
        expect(r.stderr.trim()).toBe(
          `simplectl: ${dir} is busy (a process works in it or holds it open); stop it, or unmount with --lazy. ${dir} stays mounted, with all its disks.`,
        );
        expect(mountsUnder(dir).sort()).toEqual(before);
        expect(readFileSync(join(dir, 'simple-0', 'file'), 'utf8')).toBe('kept\n');
        await expectWhole(env, dir);
      }
      // Mounting it again finds it whole, not an empty root.
      const again = await env.mount(query, dir, disks);
      expect(again.exitCode, again.stderr).toBe(0);
      expect(mountsUnder(dir).sort()).toEqual(before);
      const lazy = await env.run(['umount', '--lazy', dir]);
      expect(lazy.exitCode, lazy.stderr).toBe(0);
      expect(mountsUnder(dir)).toEqual([]);
      expect((await env.status()).volumes[0]).toMatchObject({ mounted: false });
    });

    it('a second mount brings back the disks of a volume that were unmounted by hand', async () => {
      const { disks, env, dir, query } = await twoDiskVolume('vol-half');
      writeFileSync(join(dir, 'simple-1', 'file'), 'on the second disk\n');
      const whole = mountsUnder(dir).sort();
      const source = diskSources(dir);
      // What a umount killed between the disks and the root leaves: the root, without its disks.
      execFileSync('umount', [join(dir, 'simple-1')]);
      execFileSync('umount', [join(dir, 'simple-0')]);
      const again = await env.mount(query, dir, disks);
      expect(again.exitCode, again.stderr).toBe(0);
      expect(mountsUnder(dir).sort()).toEqual(whole);
      expect(diskSources(dir).sort()).toEqual(source.sort());
      expect(readFileSync(join(dir, 'simple-1', 'file'), 'utf8')).toBe('on the second disk\n');
      await expectWhole(env, dir);
      await env.umount(dir);
      expect(mountsUnder(dir)).toEqual([]);
    });

    it('still unmounts a disk a crash left out of the state', async () => {
      const { env, dir, query } = await twoDiskVolume('vol-untracked');
      // A crash between mounting a disk and recording it: the state knows one disk only.
      const file = join(env.stateDir, 'volumes.json');
      const state = JSON.parse(readFileSync(file, 'utf8')) as {
        volumes: Record<string, { mount: { disks: Record<string, { dirName: string }> } | null }>;
      };
      const mount = state.volumes[query]!.mount!;
      for (const [id, d] of Object.entries(mount.disks)) if (d.dirName === 'simple-1') delete mount.disks[id];
      writeFileSync(file, JSON.stringify(state));
      await env.umount(dir);
      expect(mountsUnder(dir)).toEqual([]);
    });
  },
);
