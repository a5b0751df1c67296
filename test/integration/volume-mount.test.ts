/**
 * simplectl mount / umount / status on real loop disks, as an operator runs
 * them: directory names, the read-only root, exclusivity, numbering across
 * remounts and restarts, persist-numbering placeholders, and failures that
 * leave nothing behind.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { onCleanup } from '../fixtures/cleanup.js';
import { cli } from '../fixtures/cli.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { blankDisk, initialisedDisk, luksDisk, TEST_ENV } from '../fixtures/simple-disks.js';
import {
  attachImage,
  dataPartUuid,
  diskSources,
  labelledDisks,
  mountInfo,
  mountsUnder,
  runSnapshot,
  uniqueLabel,
  volumeDir,
  volumeEnv,
} from './volume-fixture.js';

/** Whether this kernel could mount minix (built in, or a module it could load). */
function kernelMountsMinix(): boolean {
  if (/\bminix\b/.test(readFileSync('/proc/filesystems', 'utf8'))) return true;
  const modules = `/lib/modules/${execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim()}`;
  return existsSync(modules) && spawnSync('modinfo', ['minix'], { stdio: 'ignore' }).status === 0;
}

function writeFails(path: string): string | undefined {
  try {
    writeFileSync(path, 'x');
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code;
  }
}

describe.skipIf(missing({ loop: true }))('simplectl mount', () => {
  it('assembles three disks as simple-0..2 under a read-only root, initialising a blank one', async () => {
    const label = uniqueLabel();
    const disks = [...(await labelledDisks(label, 2)), await blankDisk()];
    const env = volumeEnv();
    const dir = volumeDir();
    const r = await env.mount(`label.${label}_min-disks.3`, dir, disks);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['simple-0', 'simple-1', 'simple-2']);
    const root = mountInfo(dir);
    expect(root).toMatchObject({ fsType: 'tmpfs', source: 'simplectl-volume' });
    expect(root?.options).toContain('ro');
    expect(writeFails(join(dir, 'stray'))).toBe('EROFS');
    const sources = ['simple-0', 'simple-1', 'simple-2'].map((n) => mountInfo(join(dir, n))?.source);
    expect(sources.sort()).toEqual(disks.map((d) => `${d.device}p2`).sort());
    // The disks themselves are writable, and the blank one now carries our label.
    writeFileSync(join(dir, 'simple-2', 'data'), 'hello');
    expect(readFileSync(join(dir, 'simple-2', 'data'), 'utf8')).toBe('hello');
    const blankPart = execFileSync(
      'blkid',
      ['-p', '-s', 'PART_ENTRY_NAME', '-o', 'value', `${disks[2]!.device}p2`],
      {
        encoding: 'utf8',
      },
    );
    expect(blankPart.trim()).toBe(label);

    const status = await env.status();
    expect(status.volumes).toHaveLength(1);
    expect(status.volumes[0]).toMatchObject({ volume: `label.${label}_min-disks.3`, mounted: true, dir });
    expect(status.volumes[0]?.disks.map((d) => d.number)).toEqual([0, 1, 2]);

    const again = await env.mount(`label.${label}_min-disks.3`, dir, disks);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toMatch(/already mounted/);

    const u = await env.run(['umount', dir]);
    expect(u.exitCode).toBe(0);
    expect(mountsUnder(dir)).toEqual([]);
    const twice = await env.run(['umount', dir]);
    expect(twice.exitCode).toBe(1);
    expect(twice.stderr).toMatch(/is not mounted/);
  });

  it('names directories <basename><partition-uuid> with naming-style uuid', async () => {
    const label = uniqueLabel();
    const disks = await labelledDisks(label, 2);
    const env = volumeEnv();
    const dir = volumeDir();
    const r = await env.mount(`label.${label}_naming-style.uuid_basename.disk-`, dir, disks);
    expect(r.exitCode).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(disks.map((d) => `disk-${dataPartUuid(d.device)}`).sort());
    await env.umount(dir, { release: true });
  });

  it('gives an exclusive volume’s disks to no other volume until released', async () => {
    const label = uniqueLabel();
    const disks = await labelledDisks(label, 3);
    const env = volumeEnv();
    const a = volumeDir('a');
    const b = volumeDir('b');
    expect((await env.mount(`label.${label}_max-disks.2`, a, disks)).exitCode).toBe(0);
    const tooMany = await env.mount(`label.${label}_min-disks.2`, b, disks);
    expect(tooMany.exitCode).toBe(1);
    expect(tooMany.stderr).toMatch(/needs at least 2 disks .* only 1 is available/);
    expect(tooMany.stderr).toMatch(/assigned to volume label\.\w+_max-disks\.2 \(exclusive\)/);
    expect(existsSync(b)).toBe(false);

    expect((await env.mount(`label.${label}`, b, disks)).exitCode).toBe(0);
    const status = await env.status();
    expect(diskSources(a)).toHaveLength(2);
    expect(diskSources(b)).toHaveLength(1);
    expect(new Set([...diskSources(a), ...diskSources(b)]).size).toBe(3);
    expect(status.assignments.every((x) => x.volumes.length === 1)).toBe(true);

    // Unmounted, A still holds its disks; released, they are free again.
    await env.umount(a);
    const c = volumeDir('c');
    expect((await env.mount(`label.${label}_min-disks.2_basename.c-`, c, disks)).exitCode).toBe(1);
    expect((await env.run(['release', `label.${label}_max-disks.2`])).exitCode).toBe(0);
    expect((await env.mount(`label.${label}_min-disks.2_basename.c-`, c, disks)).exitCode).toBe(0);
    expect(readdirSync(c).sort()).toEqual(['c-0', 'c-1']);
    for (const dir of [b, c]) await env.umount(dir, { release: true });
  });

  it('keeps a member another program holds for a moment assigned, leaving it out of this mount only', async () => {
    const label = uniqueLabel();
    const disks = await labelledDisks(label, 2);
    const env = volumeEnv();
    const a = volumeDir('a');
    const query = `label.${label}_max-disks.2`;
    expect((await env.mount(query, a, disks)).exitCode).toBe(0);
    await env.umount(a);
    // fsck, a backup tool or a prompt of initialize-disk --force holds the second disk exclusively.
    const held = disks[1]!.device;
    const holder = spawn(
      'python3',
      [
        '-c',
        `import os, sys; os.open('${held}', os.O_RDONLY | os.O_EXCL); print('held', flush=True); sys.stdin.read()`,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    onCleanup(`holder of ${held}`, () => {
      holder.kill('SIGKILL');
    });
    await new Promise<void>((resolve) => holder.stdout?.once('data', () => resolve()));
    const r = await env.mount(query, a, disks);
    holder.kill('SIGKILL');
    expect(r.exitCode).toBe(0);
    expect(diskSources(a)).toHaveLength(1);
    expect(r.stderr).not.toContain('releasing it');
    expect(r.stderr).toContain(`${held} is in use now`);
    expect(r.stderr).toContain('left out of this mount, still assigned');
    const status = await env.status();
    const assigned = status.assignments.filter((x) => x.volumes.includes(query)).map((x) => x.device);
    expect(assigned.sort()).toEqual(disks.map((d) => d.device).sort());
    await env.umount(a, { release: true });
  });

  it('refuses to release a malformed volume name (exit 2, naming the problem), changing nothing', async () => {
    const label = uniqueLabel();
    const disks = await labelledDisks(label, 2);
    const env = volumeEnv();
    const dir = volumeDir();
    const name = `label.${label}_max-disks.2`;
    expect((await env.mount(name, dir, disks)).exitCode).toBe(0);
    await env.umount(dir);
    const statePath = join(env.stateDir, 'volumes.json');
    const saved = readFileSync(statePath, 'utf8');
    for (const [typo, problem] of [
      [`label.${label}_max-disks.`, "setting 'max-disks' needs a value (max-disks.VALUE)"],
      [`label.${label}_max-disks.x`, "setting 'max-disks': 'x' is not a whole number"],
      [`label.${label}_max-disk.2`, "unknown setting 'max-disk' (known: "],
      ['label.', "setting 'label' needs a value (label.VALUE)"],
    ] as const) {
      const r = await env.run(['release', typo]);
      expect(r.exitCode, typo).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`simplectl: invalid volume query '${typo}': ${problem}`);
    }
    expect(readFileSync(statePath, 'utf8')).toBe(saved);
    expect((await env.status()).assignments.map((a) => a.volumes)).toEqual([[name], [name]]);

    // A name the state holds is released whatever it looks like (saved by a version that took it).
    const old = `label.${label}_max-disk.2`;
    writeFileSync(statePath, saved.replaceAll(JSON.stringify(name), JSON.stringify(old)));
    const r = await env.run(['release', old]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`released 2 disk(s) of ${old}`);
    expect((await env.status()).assignments).toEqual([]);
  });

  it('lets non-exclusive volumes share a disk, and keeps an exclusive one out', async () => {
    const label = uniqueLabel();
    const disk = await initialisedDisk(`label.${label}`);
    const env = volumeEnv();
    const a = volumeDir('a');
    const b = volumeDir('b');
    expect((await env.mount(`label.${label}_exclusive.false`, a, [disk.device])).exitCode).toBe(0);
    expect((await env.mount(`label.${label}_exclusive.false_basename.b-`, b, [disk.device])).exitCode).toBe(
      0,
    );
    writeFileSync(join(a, 'simple-0', 'shared'), 'both see this');
    expect(readFileSync(join(b, 'b-0', 'shared'), 'utf8')).toBe('both see this');
    const c = volumeDir('c');
    const exclusive = await env.mount(`label.${label}_basename.c-`, c, [disk.device]);
    expect(exclusive.exitCode).toBe(1);
    expect((await env.status()).assignments[0]?.volumes).toHaveLength(2);
    for (const dir of [a, b]) await env.umount(dir, { release: true });
  });

  it('keeps each disk’s number across umount and mount, and across a restart with new device names', async () => {
    const label = uniqueLabel();
    const disks = await labelledDisks(label, 3);
    const env = volumeEnv();
    const dir = volumeDir();
    const query = `label.${label}`;
    expect((await env.mount(query, dir, disks)).exitCode).toBe(0);
    const numbering = async () =>
      Object.fromEntries(((await env.status()).volumes[0]?.disks ?? []).map((d) => [d.uuid, d.number]));
    const first = await numbering();
    for (const name of readdirSync(dir)) writeFileSync(join(dir, name, 'whoami'), name);

    await env.umount(dir);
    expect((await env.mount(query, dir, disks)).exitCode).toBe(0);
    expect(await numbering()).toEqual(first);
    for (const name of readdirSync(dir)) expect(readFileSync(join(dir, name, 'whoami'), 'utf8')).toBe(name);

    // A crash and reboot: mounts vanish without umount, disks come back under other names.
    for (const m of mountsUnder(dir)) execFileSync('umount', ['-l', m]);
    for (const d of disks) await d.detach();
    const reattached = [...disks].reverse().map((d) => attachImage(d.file));
    const statePath = join(env.stateDir, 'volumes.json');
    const saved = readFileSync(statePath, 'utf8');
    const stale = await env.status();
    // status only looks: its notes say what the next mount will do, and claim nothing done.
    expect(stale.notes).toContain(
      `volume ${query} is no longer mounted at ${dir}; the next mount forgets that mount`,
    );
    for (const note of stale.notes) expect(note).not.toMatch(/forgetting|released|recording/);
    const human = await env.run(['status']);
    expect(human.stdout).toContain(
      `note: volume ${query} is no longer mounted at ${dir}; the next mount forgets that mount`,
    );
    expect(readFileSync(statePath, 'utf8')).toBe(saved);
    const r = await env.mount(query, dir, reattached);
    expect(r.stderr).toBe('');
    expect(await numbering()).toEqual(first);
    for (const name of readdirSync(dir)) expect(readFileSync(join(dir, name, 'whoami'), 'utf8')).toBe(name);
    const status = await env.status();
    expect(status.notes).toEqual([]);
    expect(status.volumes[0]?.disks.map((d) => d.device).sort()).toEqual([...reattached].sort());
    await env.umount(dir, { release: true });
  });

  it('lets go of a disk initialised again in its place by another host, and gives the new disk its number', async () => {
    const label = uniqueLabel();
    const [disk] = await labelledDisks(label, 1);
    const env = volumeEnv();
    const dir = volumeDir();
    const query = `label.${label}_max-disks.1`;
    expect((await env.mount(query, dir, [disk!])).exitCode).toBe(0);
    const before = dataPartUuid(disk!.device);
    await env.umount(dir);
    // Another host (another state) erases and initialises the very same disk: a new identity.
    const other = await cli(
      'simplectl',
      [
        'initialize-disk',
        disk!.device,
        `label.${label}`,
        '--force',
        '--yes',
        '--state-dir',
        scratchDir('other'),
      ],
      { env: TEST_ENV },
    );
    expect(other.exitCode, other.stderr).toBe(0);
    expect(dataPartUuid(disk!.device)).not.toBe(before);
    const r = await env.mount(query, dir, [disk!]);
    expect(r.exitCode, r.stderr).toBe(0);
    // Let go with a note (logged): 'disk … is gone: … holds disk … now, on the same media; released'.
    const status = await env.status();
    expect(status.volumes[0]?.disks.map((d) => [d.uuid, d.number])).toEqual([
      [dataPartUuid(disk!.device), 0],
    ]);
    await env.umount(dir, { release: true });
  });

  it("gives a copy of a volume's disk new UUIDs as scan-disks advises, leaving the disk its place in the volume", async () => {
    const label = uniqueLabel();
    const [disk] = await labelledDisks(label, 1);
    const env = volumeEnv();
    const dir = volumeDir();
    const query = `label.${label}`;
    expect((await env.mount(query, dir, [disk!])).exitCode).toBe(0);
    await env.umount(dir);
    const id = dataPartUuid(disk!.device);
    const image = join(scratchDir('copy'), 'copy.img');
    copyFileSync(disk!.file, image);
    const copy = attachImage(image);
    execFileSync('partx', ['-a', copy], { stdio: 'ignore' });
    const r = await env.run(['initialize-disk', copy, `label.${label}`, '--force', '--yes']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(dataPartUuid(copy)).not.toBe(id);
    expect(r.stderr).not.toContain('released');
    const status = await env.status();
    expect(status.volumes[0]?.disks.map((d) => [d.uuid, d.device])).toEqual([[id, disk!.device]]);
  });

  it('keeps empty read-only placeholders for missing numbers with persist-numbering', async () => {
    const label = uniqueLabel();
    const disks = await labelledDisks(label, 2);
    const env = volumeEnv();
    const dir = volumeDir();
    const query = `label.${label}_max-disks.4_persist-numbering`;
    expect((await env.mount(query, dir, disks)).exitCode).toBe(0);
    expect(readdirSync(dir).sort()).toEqual(['simple-0', 'simple-1', 'simple-2', 'simple-3']);
    for (const p of ['simple-2', 'simple-3']) {
      expect(readdirSync(join(dir, p))).toEqual([]);
      expect(mountInfo(join(dir, p))).toBeUndefined();
      expect(writeFails(join(dir, p, 'x'))).toBe('EROFS');
    }
    const before = (await env.status()).volumes[0]!;
    expect(before.placeholders).toEqual(['simple-2', 'simple-3']);
    const second = before.disks.find((d) => d.number === 1)!;

    // Disk 0 goes away while unmounted: disk 1 keeps its number, 0 becomes a placeholder.
    await env.umount(dir);
    const gone = disks.find((d) => d.device === before.disks.find((x) => x.number === 0)!.device)!;
    await gone.detach();
    // Only the remaining disk is in scope: the freed loop device may be reused by anyone.
    expect((await env.mount(query, dir, [second.device])).exitCode).toBe(0);
    const after = (await env.status()).volumes[0]!;
    expect(after.disks).toEqual([expect.objectContaining({ uuid: second.uuid, number: 1 })]);
    expect(after.placeholders).toEqual(['simple-0', 'simple-2', 'simple-3']);
    expect(mountInfo(join(dir, 'simple-1'))?.source).toBe(`${second.device}p2`);
    expect(readdirSync(join(dir, 'simple-0'))).toEqual([]);
    await env.umount(dir, { release: true });
  });

  it('mounts an empty read-only volume at once with min-disks.0', async () => {
    const env = volumeEnv();
    const dir = volumeDir();
    const disk = await blankDisk();
    const r = await env.mount(`label.${uniqueLabel()}_min-disks.0`, dir, [disk.device]);
    expect(r.exitCode).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
    expect(mountInfo(dir)?.options).toContain('ro');
    await env.umount(dir, { release: true });
  });
});

describe.skipIf(missing({ loop: true }))('a mount that fails', () => {
  it('with too few disks changes nothing', async () => {
    const label = uniqueLabel();
    const disks = [await initialisedDisk(`label.${label}`), await blankDisk()];
    const env = volumeEnv();
    const dir = volumeDir();
    expect((await env.run(['status'])).exitCode).toBe(0);
    const before = runSnapshot();
    const r = await env.mount(`label.${label}_min-disks.3`, dir, disks);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/needs at least 3 disks labelled '\w+'; only 2 are available/);
    expect(runSnapshot()).toEqual(before);
    expect(existsSync(dir)).toBe(false);
    expect((await env.status()).volumes).toEqual([]);
    // The blank disk was not initialised for a volume that could not be assembled (blkid: 2 = nothing found).
    expect(spawnSync('blkid', ['-p', disks[1]!.device]).status).toBe(2);
  });

  it('warns once about a passphrase in the volume name, and never about one given with -o', async () => {
    // A blank disk is initialised for the volume: that step must not repeat the warning, or
    // make it up for a passphrase that is not in the name. (Without device-mapper it fails after.)
    const env = volumeEnv();
    const inline = await env.mount(
      `label.${uniqueLabel()}_encryption-passphrase.hunter2x`,
      volumeDir('inline'),
      [await blankDisk()],
    );
    expect(inline.stderr).not.toMatch(/hunter2x/);
    expect(inline.stderr.match(/passphrase is part of the volume name/g)).toHaveLength(1);
    const beside = await env.mount(
      `label.${uniqueLabel()}`,
      volumeDir('beside'),
      [await blankDisk()],
      {},
      {
        'encryption-passphrase': 'correct horse',
      },
    );
    expect(beside.stderr).not.toMatch(/correct horse/);
    expect(beside.stderr).not.toMatch(/part of the volume name/);
  });

  it('with an encrypted disk that cannot be mounted says why, never shows the passphrase, and leaves nothing', async () => {
    const label = uniqueLabel();
    const disk = await luksDisk(label, 'hunter2x');
    const env = volumeEnv();
    const dir = volumeDir();
    const before = runSnapshot();
    const r = await env.mount(`label.${label}_encryption-passphrase.hunter2x`, dir, [disk.device]);
    expect(r.stderr).not.toMatch(/hunter2x/);
    expect(r.stderr.match(/passphrase is part of the volume name/g)).toHaveLength(1);
    expect(r.exitCode).toBe(1);
    if (!/device-mapper/.test(readFileSync('/proc/misc', 'utf8'))) {
      expect(r.stderr).toMatch(
        new RegExp(`cannot open the encrypted disk ${disk.device}: this kernel has no device-mapper`),
      );
    } // else the fixture's LUKS container holds no filesystem, and mounting it fails
    expect(runSnapshot()).toEqual(before);
    expect(existsSync(dir)).toBe(false);
    expect((await env.status()).volumes).toEqual([]);
  });

  it.skipIf(kernelMountsMinix())(
    'half-way undoes every step: nothing mounted, nothing newly assigned',
    async () => {
      const label = uniqueLabel();
      const disks = await labelledDisks(label, 3);
      const env = volumeEnv();
      // One disk stays assigned from an earlier volume: the failed mount must not take it away.
      const keeper = volumeDir('keep');
      expect((await env.mount(`label.${label}_max-disks.1`, keeper, [disks[0]!.device])).exitCode).toBe(0);
      await env.umount(keeper);
      const stateBefore = readFileSync(join(env.stateDir, 'volumes.json'), 'utf8');
      // The last disk's data partition holds a filesystem blkid knows and this kernel cannot mount
      // (minix: no driver, no modules), so mounting it fails after the others worked. (Holding it
      // open exclusively no longer does: the scan sees that, and no volume takes the disk.)
      const broken = [...disks.slice(1)].sort((x, y) =>
        x.device.localeCompare(y.device, 'en', { numeric: true }),
      )[1]!;
      execFileSync('mkfs.minix', [`${broken.device}p2`], { stdio: 'ignore' });
      const before = runSnapshot();
      const dir = volumeDir();
      const r = await env.mount(`label.${label}_min-disks.2_basename.x-`, dir, disks.slice(1));
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`mounting ${broken.device}p2`));
      expect(runSnapshot()).toEqual(before);
      expect(readFileSync(join(env.stateDir, 'volumes.json'), 'utf8')).toBe(stateBefore);
      expect(existsSync(dir)).toBe(false);
    },
  );
});
