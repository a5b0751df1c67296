/**
 * The `simple` driver's plugin face without a Docker engine: the project's
 * own server process, spoken to as the engine speaks, over real loop disks.
 * Replies for unknown volumes, names that could leave the mount root, `-o`
 * options merged over the name, and a passphrase inside a volume name, which
 * must show up in no reply, log line, mount table entry or status output.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../src/adapters/processes.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { cli } from '../fixtures/cli.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { initialisedDisk, kernelName, TEST_ENV } from '../fixtures/simple-disks.js';
import { mountedAt, startPluginProcess } from './plugin-fixture.js';
import { attachImageAt, mountInfo, type StatusJson, unusedLoopDevice, waitFor } from './volume-fixture.js';

const SECRET = 'Quietly-4242';

async function simplePlugin(include: string[]) {
  const stateDir = join(scratchDir('simple-state'), 'state');
  const plugin = await startPluginProcess({
    tool: 'simplectl',
    driver: 'simple',
    include,
    env: { ...TEST_ENV, SIMPLECTL_STATE_DIR: stateDir },
  });
  return { plugin, stateDir };
}

describe.skipIf(missing({ root: true, loop: true }))('simple driver over the plugin protocol', () => {
  it('answers Get, Path, Mount, Unmount and Remove of an unknown volume with 404 and an Err', async () => {
    const { plugin } = await simplePlugin(['loop-none']);
    for (const path of ['Get', 'Path', 'Remove']) {
      const r = await plugin.post(`/VolumeDriver.${path}`, { Name: 'label.nope' });
      expect(r).toEqual({ status: 404, json: { Err: 'no such volume: label.nope' } });
      // A name no Create could have accepted is no volume either.
      const malformed = await plugin.post(`/VolumeDriver.${path}`, { Name: 'label.' });
      expect(malformed).toEqual({ status: 404, json: { Err: 'no such volume: label.' } });
    }
    for (const path of ['Mount', 'Unmount']) {
      const r = await plugin.post(`/VolumeDriver.${path}`, { Name: 'label.nope', ID: 'c1' });
      expect(r).toEqual({ status: 404, json: { Err: 'no such volume: label.nope' } });
    }
    expect((await plugin.post('/VolumeDriver.List', {})).json).toEqual({ Volumes: [], Err: '' });
  });

  it('refuses names that could leave the mount root, and malformed queries, creating nothing', async () => {
    const { plugin } = await simplePlugin(['loop-none']);
    for (const [name, why] of [
      ['../label.x', "contains '/'"],
      ['label.x/..', "contains '/'"],
      ['label..x', "contains '..'"],
      ['label.x_bogus.1', "unknown setting 'bogus'"],
      ['label.x_min-disks.3_max-disks.2', 'min-disks (3) is greater than max-disks (2)'],
      ['label.', "setting 'label' needs a value (label.VALUE)"],
      ['min-disks.x', "setting 'min-disks': 'x' is not a whole number"],
    ]) {
      const r = await plugin.post('/VolumeDriver.Create', { Name: name });
      expect(r.status, name).toBe(400);
      expect(r.json.Err).toContain(why);
    }
    const bad = await plugin.post('/VolumeDriver.Create', { Name: 'label.x', Opts: { 'min-disks': 'many' } });
    expect(bad.status).toBe(400);
    expect(bad.json.Err).toBe("invalid volume query 'label.x': -o min-disks=many is not a whole number");
    expect((await plugin.post('/VolumeDriver.List', {})).json).toEqual({ Volumes: [], Err: '' });
  });

  it('merges -o options over the settings of the name', async () => {
    const label = `opt${Math.random().toString(36).slice(2, 8)}`;
    const disks = [await initialisedDisk(`label.${label}`), await initialisedDisk(`label.${label}`)];
    const { plugin } = await simplePlugin(disks.map(kernelName));
    const name = `label.${label}_min-disks.3`;
    const created = await plugin.post('/VolumeDriver.Create', {
      Name: name,
      Opts: { 'min-disks': '2', basename: 'part-' },
    });
    expect(created).toEqual({ status: 200, json: { Err: '' } });
    const mounted = await plugin.post('/VolumeDriver.Mount', { Name: name, ID: 'c1' });
    expect(mounted.status).toBe(200);
    const dir = mounted.json.Mountpoint as string;
    expect(mountedAt(join(dir, 'part-0'))).toBe(true);
    expect(mountedAt(join(dir, 'part-1'))).toBe(true);
    expect(await plugin.post('/VolumeDriver.Unmount', { Name: name, ID: 'c1' })).toEqual({
      status: 200,
      json: { Err: '' },
    });
    expect(mountedAt(dir)).toBe(false);
    expect((await plugin.post('/VolumeDriver.Remove', { Name: name })).status).toBe(200);
  });

  it('answers Unmount with an Err naming a user mount inside the volume, and leaves both mounted', async () => {
    const label = `busy${Math.random().toString(36).slice(2, 8)}`;
    const disk = await initialisedDisk(`label.${label}`);
    const { plugin } = await simplePlugin([kernelName(disk)]);
    const name = `label.${label}`;
    expect((await plugin.post('/VolumeDriver.Create', { Name: name })).status).toBe(200);
    const mounted = await plugin.post('/VolumeDriver.Mount', { Name: name, ID: 'c1' });
    expect(mounted.status).toBe(200);
    const dir = mounted.json.Mountpoint as string;
    const cache = join(dir, 'simple-0', 'cache');
    mkdirSync(cache);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'usercache', cache]);
    onCleanup(`user tmpfs at ${cache}`, () => {
      if (mountedAt(cache)) execFileSync('umount', ['-l', cache]);
    });
    writeFileSync(join(cache, 'file'), 'important\n');
    expect(await plugin.post('/VolumeDriver.Unmount', { Name: name, ID: 'c1' })).toEqual({
      status: 500,
      json: {
        Err: `could not unmount volume ${name} at ${dir}: ${dir} is busy: a mount that is not part of the volume is inside it: ${cache} (tmpfs from usercache). Unmount it first; nothing was unmounted.`,
      },
    });
    expect(mountedAt(join(dir, 'simple-0'))).toBe(true);
    expect(readFileSync(join(cache, 'file'), 'utf8')).toBe('important\n');
    expect((await plugin.post('/VolumeDriver.Path', { Name: name })).json).toEqual({
      Mountpoint: dir,
      Err: '',
    });
    // Once the user's mount is gone, the next container's Mount and Unmount take the volume down.
    execFileSync('umount', [cache]);
    expect((await plugin.post('/VolumeDriver.Mount', { Name: name, ID: 'c2' })).status).toBe(200);
    expect(await plugin.post('/VolumeDriver.Unmount', { Name: name, ID: 'c2' })).toEqual({
      status: 200,
      json: { Err: '' },
    });
    expect(mountedAt(dir)).toBe(false);
    expect((await plugin.post('/VolumeDriver.Remove', { Name: name })).status).toBe(200);
  });

  it('restarts the watcher of a dynamic-mounts volume that stays mounted, at start-up and at each Mount', async () => {
    const label = `dyn${Math.random().toString(36).slice(2, 8)}`;
    const disk = await initialisedDisk(`label.${label}`);
    const spare = await initialisedDisk(`label.${label}`);
    await spare.detach();
    const slot = unusedLoopDevice();
    const { plugin, stateDir } = await simplePlugin([kernelName(disk), slot.replace('/dev/', '')]);
    const watcher = async () => {
      const r = await cli('simplectl', ['--json', 'status', '--state-dir', stateDir], { env: TEST_ENV });
      return (JSON.parse(r.stdout) as StatusJson).volumes[0]?.watcher;
    };
    const name = `label.${label}_min-disks.0_dynamic-mounts`;
    expect((await plugin.post('/VolumeDriver.Create', { Name: name })).status).toBe(200);
    const mounted = await plugin.post('/VolumeDriver.Mount', { Name: name, ID: 'c1' });
    expect(mounted.status).toBe(200);
    const dir = mounted.json.Mountpoint as string;
    // Watchers die with the plugin's processes (systemd stops its whole cgroup, docker its plugin).
    const kill = async () => {
      const w = await watcher();
      expect(w?.alive).toBe(true);
      process.kill(w!.pid, 'SIGKILL');
      await waitFor('the watcher gone', () => (isProcessAlive(w!.pid) ? undefined : true));
      return w!.pid;
    };
    let dead = await kill();
    await plugin.kill('SIGTERM');
    await plugin.start();
    expect(await watcher()).toMatchObject({ alive: true });
    expect((await watcher())?.pid).not.toBe(dead);
    dead = await kill();
    expect((await plugin.post('/VolumeDriver.Mount', { Name: name, ID: 'c2' })).status).toBe(200);
    expect(await watcher()).toMatchObject({ alive: true });
    expect((await watcher())?.pid).not.toBe(dead);
    // And it does its work: a disk plugged in joins the volume.
    attachImageAt(spare.file, slot);
    await waitFor(`${slot} mounted in the volume`, () =>
      mountInfo(join(dir, 'simple-1'))?.source === `${slot}p2` ? true : undefined,
    );
    for (const id of ['c1', 'c2']) {
      expect((await plugin.post('/VolumeDriver.Unmount', { Name: name, ID: id })).status).toBe(200);
    }
    expect(mountedAt(dir)).toBe(false);
    expect((await plugin.post('/VolumeDriver.Remove', { Name: name })).status).toBe(200);
  });

  it('keeps a passphrase in a volume name out of replies, logs, the mount table and status', async () => {
    const { plugin, stateDir } = await simplePlugin(['loop-none']);
    const name = `label.quiet_min-disks.0_encryption-passphrase.${SECRET}`;
    const unknown = await plugin.post('/VolumeDriver.Get', {
      Name: `label.other_encryption-passphrase.${SECRET}`,
    });
    expect(unknown).toEqual({
      status: 404,
      json: { Err: 'no such volume: label.other_encryption-passphrase.***' },
    });

    expect((await plugin.post('/VolumeDriver.Create', { Name: name })).status).toBe(200);
    const mounted = await plugin.post('/VolumeDriver.Mount', { Name: name, ID: 'c1' });
    expect(mounted.status).toBe(200);
    const dir = mounted.json.Mountpoint as string;
    expect(dir.startsWith(`${plugin.mountRoot}/label.quiet_min-disks.0_encryption-passphrase.hidden-`)).toBe(
      true,
    );
    expect(mountedAt(dir)).toBe(true);
    const replies = [
      mounted,
      await plugin.post('/VolumeDriver.Path', { Name: name }),
      await plugin.post('/VolumeDriver.List', {}),
    ];
    const get = await plugin.post('/VolumeDriver.Get', { Name: name });
    expect((get.json.Volume as { Mountpoint: string }).Mountpoint).toBe(dir);
    // The engine's own name for the volume is the one place it may appear.
    const withoutName = (r: { json: unknown }) => JSON.stringify(r.json).split(name).join('NAME');
    for (const r of [...replies, get]) expect(withoutName(r)).not.toContain(SECRET);
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(SECRET);

    for (const args of [['status'], ['--json', 'status']]) {
      const status = await cli('simplectl', args, { env: { SIMPLECTL_STATE_DIR: stateDir } });
      expect(status.exitCode).toBe(0);
      expect(status.stdout).toContain(dir);
      expect(status.stdout + status.stderr).not.toContain(SECRET);
    }

    // The directory is the volume's for good: a restarted server mounts it there again.
    await plugin.kill('SIGTERM');
    await plugin.start();
    expect((await plugin.post('/VolumeDriver.Path', { Name: name })).json).toEqual({
      Mountpoint: dir,
      Err: '',
    });
    expect(await plugin.post('/VolumeDriver.Unmount', { Name: name, ID: 'c1' })).toEqual({
      status: 200,
      json: { Err: '' },
    });
    expect((await plugin.post('/VolumeDriver.Remove', { Name: name })).status).toBe(200);
    expect(plugin.logs()).not.toContain(SECRET);
  });
});
