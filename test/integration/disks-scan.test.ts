/** scan-disks on real loop devices in every state, through the built CLI. */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { DISK_LOCK_DIR, diskLockPath } from '../../src/adapters/disk-lock.js';
import { PartitionTableReadError, readPartitionTable } from '../../src/adapters/partx.js';
import type { MatchQueryResult } from '../../src/commands/match-query.js';
import { BUSY_USAGE, type DiskReport } from '../../src/core/disk-state.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { cli } from '../fixtures/cli.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import type { LoopDisk } from '../fixtures/loop-disk.js';
import {
  blankDisk,
  dosDisk,
  failingReadsDisk,
  foreignExt4Disk,
  foreignGptDisk,
  initialisedDisk,
  kernelName,
  luksDisk,
  mountReadOnly,
  partxLosingNode,
  TEST_ENV,
} from '../fixtures/simple-disks.js';

async function scan(disks: LoopDisk[]): Promise<Map<string, DiskReport>> {
  const r = await cli('simplectl', ['--json', 'scan-disks', '--include', ...disks.map(kernelName)], {
    env: TEST_ENV,
  });
  expect(r.stderr).toBe('');
  expect(r.exitCode).toBe(0);
  const reports = JSON.parse(r.stdout) as DiskReport[];
  return new Map(reports.map((d) => [d.device, d]));
}

describe.skipIf(missing({ loop: true }))('scan-disks', () => {
  let blank: LoopDisk;
  let plain: LoopDisk;
  let luks: LoopDisk;
  let ext4: LoopDisk;
  let gpt: LoopDisk;
  let dos: LoopDisk;
  let mountedExt4: LoopDisk;
  let mountedOurs: LoopDisk;
  let all: LoopDisk[];

  beforeAll(async () => {
    blank = await blankDisk();
    plain = await initialisedDisk('label.fast_filesystem.ext4');
    luks = await luksDisk('vault', 'correct horse');
    ext4 = await foreignExt4Disk();
    gpt = await foreignGptDisk();
    dos = await dosDisk();
    mountedExt4 = await foreignExt4Disk();
    mountReadOnly(mountedExt4.device);
    mountedOurs = await initialisedDisk('label.busy');
    mountReadOnly(`${mountedOurs.device}p2`);
    all = [blank, plain, luks, ext4, gpt, dos, mountedExt4, mountedOurs];
  });

  it('classifies every kind of disk', async () => {
    const byDevice = await scan(all);
    expect([...byDevice.keys()].sort()).toEqual(all.map((d) => d.device).sort());
    expect(byDevice.get(blank.device)).toMatchObject({
      state: 'blank',
      sizeBytes: 64 * 2 ** 20,
      inUse: false,
    });
    expect(byDevice.get(plain.device)).toMatchObject({
      state: 'initialised',
      label: 'fast',
      hostname: hostname(),
      machineId: readFileSync('/etc/machine-id', 'utf8').trim(),
      thisHost: true,
      encrypted: false,
      filesystem: 'ext4',
      mounted: false,
      inUse: false,
      assignment: null,
      warnings: [],
      metadataPartition: {
        number: 1,
        device: `${plain.device}p1`,
        offsetBytes: 2048 * 512,
        sizeBytes: 2049 * 512,
      },
      dataPartition: { number: 2, device: `${plain.device}p2`, name: 'fast' },
    });
    expect(byDevice.get(luks.device)).toMatchObject({
      state: 'initialised',
      label: 'vault',
      hostname: 'h',
      thisHost: false,
      encrypted: true,
      filesystem: 'ext4',
      warnings: [],
    });
    const reason = (d: LoopDisk) => {
      const r = byDevice.get(d.device)!;
      expect(r.state).toBe('rejected');
      return r.state === 'rejected' ? r.reason : '';
    };
    expect(reason(ext4)).toBe('has a filesystem (ext4) and no partition table');
    expect(reason(gpt)).toBe('has a GPT partition table without a simple-metadata partition (1 partition)');
    expect(reason(dos)).toBe('has a foreign partition table (dos)');
    expect(reason(mountedExt4)).toMatch(
      /^has a filesystem \(ext4\) and no partition table; mounted at \/.*\/m$/,
    );
    expect(byDevice.get(mountedOurs.device)).toMatchObject({
      state: 'initialised',
      label: 'busy',
      mounted: true,
      inUse: true,
    });
  });

  it('reads disks whose partitions the kernel does not know yet (no udev, no GPT parser)', async () => {
    execFileSync('partx', ['-d', plain.device]);
    const report = (await scan([plain])).get(plain.device)!;
    expect(report).toMatchObject({ state: 'initialised', label: 'fast', filesystem: 'ext4' });
    expect(report.state === 'initialised' && report.dataPartition.present).toBe(false);
    execFileSync('partx', ['-u', plain.device]);
  });

  it('lists only the devices --include names, and accepts /dev paths and globs', async () => {
    const r = await cli('simplectl', ['--json', 'scan-disks', '--include', blank.device]);
    expect((JSON.parse(r.stdout) as DiskReport[]).map((d) => d.device)).toEqual([blank.device]);
    const none = await cli('simplectl', ['--json', 'scan-disks', '--include', 'loop-no-such*']);
    expect(JSON.parse(none.stdout)).toEqual([]);
    const told = await cli('simplectl', ['scan-disks', '--include', 'loop-no-such*']);
    expect(told.exitCode).toBe(0);
    expect(told.stdout.trim()).toBe('no block device matches --include loop-no-such*');
  });

  it('prints a table for people', async () => {
    const r = await cli('simplectl', [
      'scan-disks',
      '--include',
      kernelName(blank),
      kernelName(plain),
      kernelName(ext4),
    ]);
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^DEVICE\s+SIZE\s+STATE\s+LABEL\s+DETAILS$/);
    expect(r.stdout).toMatch(new RegExp(`${blank.device}\\s+64\\.0 MiB\\s+blank`));
    expect(r.stdout).toMatch(
      new RegExp(`${plain.device}\\s+64\\.0 MiB\\s+initialised\\s+fast\\s+this host, plain, ext4`),
    );
    expect(r.stdout).toMatch(new RegExp(`${ext4.device}\\s+64\\.0 MiB\\s+rejected\\s+-\\s+has a filesystem`));
  });
});

describe.skipIf(missing({ root: true, loop: true }))('a disk whose every read fails', () => {
  it('is shown unreadable, never blank, though blkid finds nothing and says nothing', async () => {
    const dying = await failingReadsDisk();
    const blank = await blankDisk();
    const r = await cli(
      'simplectl',
      ['--json', 'scan-disks', '--include', kernelName(dying), kernelName(blank)],
      { env: TEST_ENV },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    const byDevice = new Map((JSON.parse(r.stdout) as DiskReport[]).map((d) => [d.device, d]));
    expect(byDevice.get(dying.device)).toMatchObject({
      state: 'rejected',
      reason: 'cannot be read: reading the disk: EIO: i/o error, read',
    });
    expect(byDevice.get(blank.device)).toMatchObject({ state: 'blank' });
    const init = await cli('simplectl', ['initialize-disk', dying.device, 'label.fast', '--yes', '--force'], {
      env: TEST_ENV,
    });
    expect(init.exitCode).toBe(1);
    expect(init.stderr).toMatch(/cannot be read .*it is not initialised, with or without --force/);
  });
});

describe.skipIf(missing({ root: true, loop: true }))('a disk whose initialisation stopped half-way', () => {
  it('says so, and how to start it again, which then works', async () => {
    const label = `half${Math.random().toString(36).slice(2, 8)}`;
    const disk = await initialisedDisk(`label.${label}`);
    // As when the tool was killed after writing the partition table, before the metadata.
    const meta = (await readPartitionTable(disk.device))!.find((p) => p.name === 'simple-metadata')!;
    execFileSync('dd', [
      'if=/dev/zero',
      `of=${disk.device}`,
      'bs=512',
      `seek=${meta.start}`,
      `count=${meta.sectors}`,
      'conv=notrunc,fsync',
      'status=none',
    ]);
    const before = (await scan([disk])).get(disk.device);
    expect(before).toMatchObject({
      state: 'rejected',
      reason: `has an empty simple-metadata partition: its initialisation did not finish (simplectl initialize-disk --force ${disk.device} starts it again)`,
    });
    const init = await cli(
      'simplectl',
      ['initialize-disk', '--force', '--yes', disk.device, `label.${label}`],
      {
        env: TEST_ENV,
      },
    );
    expect(init.exitCode, init.stderr).toBe(0);
    expect((await scan([disk])).get(disk.device)).toMatchObject({ state: 'initialised', label });
  });
});

describe.skipIf(missing({ root: true, loop: true }))('a disk whose partition table partx cannot read', () => {
  it('is shown unreadable with partx’s reason, and the scan and match-query go on with the others', async () => {
    const label = `gone${Math.random().toString(36).slice(2, 8)}`;
    const good = await initialisedDisk(`label.${label}`);
    const lost = await initialisedDisk(`label.${label}`);
    const include = ['--include', kernelName(good), kernelName(lost)];
    const partx = partxLosingNode(lost.device);
    const reason = `cannot be read: partx: stat of ${lost.device} failed: No such file or directory`;

    const r = await cli('simplectl', ['--json', 'scan-disks', ...include], {
      env: { ...TEST_ENV, ...partx.env },
    });
    partx.restore();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const byDevice = new Map((JSON.parse(r.stdout) as DiskReport[]).map((d) => [d.device, d]));
    expect(byDevice.get(good.device)).toMatchObject({ state: 'initialised', label });
    expect(byDevice.get(lost.device)).toMatchObject({ state: 'rejected', reason });

    const m = await cli('simplectl', ['--json', 'match-query', `label.${label}_min-disks.1`, ...include], {
      env: { ...TEST_ENV, ...partx.env },
    });
    partx.restore();
    expect(m.exitCode, m.stderr).toBe(0);
    expect(m.stderr).toBe('');
    const match = JSON.parse(m.stdout) as MatchQueryResult;
    expect(match.chosen.map((d) => d.device)).toEqual([good.device]);
    expect(match.rejected.map((x) => [x.disk.device, x.reasons])).toEqual([
      [lost.device, [`not usable: it ${reason}`]],
    ]);
  });

  it('says why partx could not open a device node whose driver is gone', async () => {
    const used = readFileSync('/proc/devices', 'utf8').split('Block devices:')[1] ?? '';
    const major = [...Array(15).keys()]
      .map((i) => 240 + i)
      .find((n) => !new RegExp(`^\\s*${n} `, 'm').test(used));
    const node = join(scratchDir('orphan-node'), 'disk');
    execFileSync('mknod', [node, 'b', String(major), '0']);
    const error = await readPartitionTable(node).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PartitionTableReadError);
    expect((error as PartitionTableReadError).reason).toBe(
      `partx: cannot open ${node}: No such device or address`,
    );
  });
});

describe.skipIf(missing({ root: true, loop: true }))(
  'a disk whose filesystem was unmounted lazily but is still busy',
  () => {
    it('shows in use with the reason, is not matched, and is free again once the last file closes', async () => {
      const label = `lazy${Math.random().toString(36).slice(2, 8)}`;
      const disk = await initialisedDisk(`label.${label}`);
      const dir = join(scratchDir('lazy'), 'm');
      mkdirSync(dir);
      execFileSync('mount', [`${disk.device}p2`, dir]);
      onCleanup(`mount ${dir}`, () => {
        if (readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${dir} `))
          execFileSync('umount', ['-l', dir]);
      });
      const handle = openSync(join(dir, 'held'), 'w');
      let open = true;
      onCleanup(`file held open on ${disk.device}`, () => {
        if (open) closeSync(handle);
      });
      execFileSync('umount', ['-l', dir]);
      const match = async () => {
        const r = await cli(
          'simplectl',
          ['--json', 'match-query', `label.${label}`, '--include', kernelName(disk)],
          {
            env: TEST_ENV,
          },
        );
        return {
          exitCode: r.exitCode,
          result: JSON.parse(r.stdout || '{}') as MatchQueryResult,
          stderr: r.stderr,
        };
      };

      const held = (await scan([disk])).get(disk.device)!;
      expect(held).toMatchObject({ state: 'initialised', mounted: false, inUse: true, usage: BUSY_USAGE });
      const table = await cli('simplectl', ['scan-disks', '--include', kernelName(disk)], { env: TEST_ENV });
      expect(table.stdout).toContain('in use though not mounted (it cannot be opened exclusively)');
      const refused = await match();
      expect(refused.exitCode).toBe(1);
      expect(refused.result.chosen).toEqual([]);
      expect(refused.result.rejected.map((x) => [x.disk.device, x.reasons])).toEqual([
        [disk.device, [BUSY_USAGE]],
      ]);

      closeSync(handle);
      open = false;
      expect((await scan([disk])).get(disk.device)).toMatchObject({ inUse: false, usage: null });
      const taken = await match();
      expect(taken.exitCode, taken.stderr).toBe(0);
      expect(taken.result.chosen.map((c) => c.device)).toEqual([disk.device]);
    });
  },
);

describe.skipIf(missing({ root: true, loop: true }))('a disk another simplectl is initialising', () => {
  it('shows in use by that simplectl, is not matched, and is free again once it is done', async () => {
    const label = `locked${Math.random().toString(36).slice(2, 8)}`;
    const disk = await initialisedDisk(`label.${label}`);
    // initialize-disk holds the disk's lock from its first look to its last write.
    const holder = execa('sleep', ['600'], { reject: false });
    onCleanup('lock holder', () => {
      holder.kill();
    });
    const startTime = readFileSync(`/proc/${holder.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
    mkdirSync(DISK_LOCK_DIR, { recursive: true });
    const lock = diskLockPath(kernelName(disk));
    writeFileSync(
      lock,
      JSON.stringify({ pid: holder.pid, startTime, purpose: `initialize-disk ${disk.device}`, since: 'now' }),
    );
    onCleanup(`lock ${lock}`, () => rmSync(lock, { force: true }));
    const usage = `simplectl pid ${holder.pid} is working on it (initialize-disk ${disk.device})`;
    expect((await scan([disk])).get(disk.device)).toMatchObject({ state: 'initialised', inUse: true, usage });
    const match = () =>
      cli('simplectl', ['--json', 'match-query', `label.${label}`, '--include', kernelName(disk)], {
        env: TEST_ENV,
      });
    const refused = await match();
    expect(refused.exitCode).toBe(1);
    expect((JSON.parse(refused.stdout) as MatchQueryResult).rejected.map((x) => x.reasons)).toEqual([
      [usage],
    ]);
    // Its holder gone (done, or dead), the lock is nobody's.
    holder.kill();
    await holder;
    expect((await scan([disk])).get(disk.device)).toMatchObject({ inUse: false, usage: null });
    expect((await match()).exitCode).toBe(0);
  });
});
