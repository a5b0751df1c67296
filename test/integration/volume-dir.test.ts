/**
 * `simplectl mount QUERY DIR` and `umount DIR` with a DIR that cannot be a
 * volume root: refused before anything changes, even when the volume would
 * have had a blank disk initialised for it, and with the exit code of the
 * kind of mistake (2 for a path that cannot be a directory, 1 otherwise).
 */
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { missing, scratchDir } from '../fixtures/environment.js';
import { mountsOf } from '../fixtures/loop-disk.js';
import { blankDisk, mountReadOnly, sha256File } from '../fixtures/simple-disks.js';
import { labelledDisks, mountsUnder, uniqueLabel, volumeDir, volumeEnv } from './volume-fixture.js';

describe.skipIf(missing({ root: true, loop: true }))('a volume directory that cannot take a volume', () => {
  it('refuses a non-empty directory, a file, a path through a file and a mount point, changing nothing', async () => {
    const disk = await blankDisk();
    const env = volumeEnv();
    const base = scratchDir('vol-dir');
    const full = join(base, 'full');
    mkdirSync(full);
    writeFileSync(join(full, 'precious'), 'data\n');
    const file = join(base, 'file');
    writeFileSync(file, 'not a directory\n');
    const other = await blankDisk();
    execFileSync('mkfs.ext4', ['-q', other.device]);
    const mountPoint = mountReadOnly(other.device);
    const before = await sha256File(disk.file);
    // min-disks.1 with only a blank disk in scope: a mount that got going would initialise it.
    const query = `label.${uniqueLabel()}`;
    for (const [dir, code, message] of [
      [
        full,
        1,
        `${full} is not empty (precious): a volume mounted there would hide what it holds; give an empty or new directory`,
      ],
      [file, 2, `${file} is not a directory`],
      [join(file, 'sub'), 2, `${file}/sub cannot be a directory: part of its path is a file`],
      [mountPoint, 1, `${mountPoint} is already a mount point (ext4 from ${other.device})`],
    ] as const) {
      const r = await env.mount(query, dir, [disk.device]);
      expect(r.exitCode, r.stderr).toBe(code);
      expect(r.stderr.trim()).toBe(`simplectl: ${message}`);
    }
    expect(readFileSync(join(full, 'precious'), 'utf8')).toBe('data\n');
    expect(await sha256File(disk.file)).toBe(before);
    expect(mountsOf(disk.device)).toEqual([]);
    expect(mountsUnder(base)).toEqual([]);
    expect((await env.status()).volumes).toEqual([]);
  });

  it('umount of a directory that holds no volume says so and exits 1', async () => {
    const env = volumeEnv();
    const plain = join(scratchDir('vol-dir'), 'plain');
    mkdirSync(plain);
    const notMounted = await env.run(['umount', plain]);
    expect(notMounted.exitCode).toBe(1);
    expect(notMounted.stderr.trim()).toBe(`simplectl: ${plain} is not mounted`);
    const missingDir = join(plain, 'nowhere');
    expect((await env.run(['umount', missingDir])).stderr.trim()).toBe(
      `simplectl: ${missingDir} is not mounted`,
    );
    expect(existsSync(missingDir)).toBe(false);
    const other = await blankDisk();
    execFileSync('mkfs.ext4', ['-q', other.device]);
    const mountPoint = mountReadOnly(other.device);
    const foreign = await env.run(['umount', mountPoint]);
    expect(foreign.exitCode).toBe(1);
    expect(foreign.stderr.trim()).toBe(
      `simplectl: ${mountPoint} is not a simplectl volume (ext4 from ${other.device} is mounted there)`,
    );
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).toContain(` ${mountPoint} `);
  });
});

describe.skipIf(missing({ root: true, loop: true }))('umount of a volume one of whose disks is busy', () => {
  it('unmounts nothing: every disk stays mounted, and a second try after the user is gone succeeds', async () => {
    const label = uniqueLabel();
    const disks = await labelledDisks(label, 2);
    const env = volumeEnv();
    const dir = volumeDir('v', 'vol-busy');
    const mounted = await env.mount(`label.${label}_min-disks.2`, dir, disks);
    expect(mounted.exitCode, mounted.stderr).toBe(0);
    // A file open on the disk unmounted last: the first one has gone by the time umount meets it.
    const order = mountsUnder(dir).filter((m) => m !== dir);
    const busy = order.at(-1)!;
    const handle = openSync(join(busy, 'held'), 'w');
    try {
      const r = await env.run(['umount', dir]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(
        `simplectl: ${busy} is busy (a process still uses the disk); stop it, or unmount with --lazy. ${dir} stays mounted, with all its disks.`,
      );
      expect(mountsUnder(dir).sort()).toEqual([dir, ...order].sort());
      const status = await env.status();
      expect(status.volumes[0]?.disks.map((d) => d.mountPoint).sort()).toEqual([...order].sort());
    } finally {
      closeSync(handle);
    }
    await env.umount(dir);
    expect(mountsUnder(dir)).toEqual([]);
  });
});

describe.skipIf(missing({ root: true, loop: true }))(
  'a volume directory reached through a symbolic link',
  () => {
    it('is recorded by its real path: status, a second mount, release and umount all see one volume', async () => {
      const label = uniqueLabel();
      const [disk] = await labelledDisks(label, 1);
      const env = volumeEnv();
      const base = scratchDir('vol-link');
      const real = join(base, 'real');
      mkdirSync(real);
      const link = join(base, 'link');
      symlinkSync('real', link);
      const query = `label.${label}_min-disks.1`;
      const mounted = await env.mount(query, link, [disk!]);
      expect(mounted.exitCode, mounted.stderr).toBe(0);
      expect(mounted.stdout).toContain(`volume ${query} mounted at ${real} `);
      expect(mountsUnder(real)).toEqual([join(real, 'simple-0'), real]);
      let status = await env.status();
      expect(status.notes).toEqual([]);
      expect(status.volumes).toMatchObject([{ volume: query, mounted: true, dir: real }]);
      expect(status.volumes[0]!.disks.map((d) => d.mountPoint)).toEqual([join(real, 'simple-0')]);

      // The same exclusive volume elsewhere is refused: its disk is in use at the real path.
      const other = join(base, 'other');
      const twice = await env.mount(query, other, [disk!]);
      expect(twice.exitCode).toBe(1);
      expect(twice.stderr.trim()).toBe(`simplectl: volume ${query} is already mounted at ${real}`);
      expect(mountsUnder(other)).toEqual([]);
      // Through the link again, relative and with a trailing slash: the volume is there already.
      const viaLink = `${relative(process.cwd(), link)}/`;
      const again = await env.mount(query, viaLink, [disk!]);
      expect(again.exitCode, again.stderr).toBe(0);
      expect(again.stdout).toContain(`volume ${query} is already mounted at ${real} `);
      const release = await env.run(['release', query]);
      expect(release.exitCode).toBe(1);
      expect(release.stderr.trim()).toBe(
        `simplectl: volume ${query} is mounted at ${real}; unmount it first`,
      );

      const r = await env.run(['umount', viaLink]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe(`unmounted ${real}`);
      expect(mountsUnder(real)).toEqual([]);
      status = await env.status();
      expect(status.notes).toEqual([]);
      expect(status.volumes).toMatchObject([{ volume: query, mounted: false, dir: null }]);
    });

    it('creates a missing directory under a linked parent and records the real path', async () => {
      const label = uniqueLabel();
      const [disk] = await labelledDisks(label, 1);
      const env = volumeEnv();
      const base = scratchDir('vol-link-parent');
      mkdirSync(join(base, 'real-parent'));
      symlinkSync(join(base, 'real-parent'), join(base, 'parent'));
      const real = join(base, 'real-parent', 'v');
      const mounted = await env.mount(`label.${label}`, join(base, 'parent', 'v'), [disk!]);
      expect(mounted.exitCode, mounted.stderr).toBe(0);
      expect(mountsUnder(real)).toEqual([join(real, 'simple-0'), real]);
      expect((await env.status()).volumes).toMatchObject([{ mounted: true, dir: real }]);
      await env.umount(join(base, 'parent', 'v'));
      expect(mountsUnder(real)).toEqual([]);
    });
  },
);
