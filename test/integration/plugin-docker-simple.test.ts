/**
 * The `simple` plugin end to end: a private dockerd, the project's own plugin
 * server on /run/docker/plugins/<unique>.sock, real loop disks initialised by
 * our CLI, and the real `docker` CLI. A volume is named by its query; files
 * written in a container land on the disks; the server is killed and
 * restarted while a container holds the volume; dockerd is restarted.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  createVolume,
  finishContainer,
  listedVolumes,
  removeAtCleanup,
  volumeNames,
} from '../fixtures/docker-run.js';
import { type Dockerd, startDockerd } from '../fixtures/dockerd.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { initialisedDisk, kernelName, TEST_ENV } from '../fixtures/simple-disks.js';
import {
  crashAndRestart,
  mountedAt,
  refsOf,
  refsOnceReleased,
  releasedAfterEngineCrash,
  runArgs,
  startPluginProcess,
  waitUntil,
} from './plugin-fixture.js';

/** Reads a file from a disk's data partition, mounted read-only on the host for a moment. */
function readFromDisk(device: string, file: string): string {
  const dir = join(scratchDir('peek'), 'mnt');
  mkdirSync(dir);
  execFileSync('mount', ['-o', 'ro', `${device}p2`, dir]);
  try {
    return readFileSync(join(dir, file), 'utf8');
  } finally {
    execFileSync('umount', [dir]);
  }
}

describe.skipIf(missing({ root: true, loop: true }))('simple volume plugin with a real Docker engine', () => {
  it('serves a query-named volume over two loop disks through docker volume and docker run', async () => {
    const label = `e2e${Math.random().toString(36).slice(2, 8)}`;
    const disks = [await initialisedDisk(`label.${label}`), await initialisedDisk(`label.${label}`)];
    const engine: Dockerd = await startDockerd();
    const image = await engine.busyboxImage();
    const plugin = await startPluginProcess({
      tool: 'simplectl',
      driver: 'simple',
      forDocker: true,
      include: disks.map(kernelName),
      env: { ...TEST_ENV, SIMPLECTL_STATE_DIR: join(scratchDir('simple-state'), 'state') },
    });
    const volume = `label.${label}_min-disks.2`;
    const docker = engine.docker;
    removeAtCleanup(engine, { driver: plugin.name, containers: ['holder', 'second'], volumes: [volume] });

    await createVolume(engine, plugin.name, volume);
    expect(await listedVolumes(engine, plugin.name)).toContain(`${plugin.name} ${volume}`);
    const inspect = JSON.parse((await docker(['volume', 'inspect', volume])).stdout)[0];
    expect(inspect).toMatchObject({
      Name: volume,
      Driver: plugin.name,
      Status: { label, minDisks: 2, mounts: 0 },
    });

    // One directory per disk under a read-only root; writes go to the disks.
    const run = await docker(
      runArgs(
        image,
        volume,
        'ls /data; for d in /data/*; do echo "from a container" > $d/hello; done; touch /data/x 2>/dev/null || echo root-ro',
      ),
    );
    const dirs = run.stdout.split('\n').filter((l) => l.startsWith('simple-'));
    expect(dirs).toHaveLength(2);
    expect(run.stdout).toContain('root-ro');
    const mountpoint = join(plugin.mountRoot, volume);
    expect(mountedAt(mountpoint)).toBe(false); // released by the last Unmount
    for (const disk of disks) expect(readFromDisk(disk.device, 'hello')).toBe('from a container\n');

    // A container holds the volume while the plugin server is killed and restarted.
    await docker(
      runArgs(image, volume, 'while ! ls /data/*/stop >/dev/null 2>&1; do sleep 0.2; done', 'holder'),
    );
    await waitUntil('the volume to be mounted', () => mountedAt(mountpoint));
    expect(await refsOf(plugin, volume)).toBe(1);
    await crashAndRestart(plugin);
    // Start-up looks at the volume once the socket answers; a request naming it waits for that.
    await plugin.post('/VolumeDriver.Path', { Name: volume });
    expect(plugin.logs()).toContain(`volume ${volume} is still mounted at ${mountpoint} for 1 mount(s)`);
    const exec = await docker([
      'exec',
      'holder',
      'sh',
      '-c',
      `echo after-restart > ${'/data/$(ls /data | head -n 1)'}/kept; cat /data/*/kept`,
    ]);
    expect(exec.stdout).toBe('after-restart');

    // A second container shares it; each Unmount releases one reference, the last unmounts.
    await docker(runArgs(image, volume, 'sleep 600', 'second'));
    await waitUntil('two references', async () => (await refsOf(plugin, volume)) === 2);
    await docker(['rm', '-f', 'second']);
    await waitUntil('one reference', async () => (await refsOf(plugin, volume)) === 1);
    expect(mountedAt(mountpoint)).toBe(true);
    await finishContainer(engine, 'holder', ['sh', '-c', 'for d in /data/*; do touch $d/stop; done']);
    expect(await refsOnceReleased(plugin, volume, mountpoint)).toBe(0);

    // The engine restarts: the volume is still there and still works.
    await engine.restart();
    expect(await listedVolumes(engine, plugin.name)).toContain(`${plugin.name} ${volume}`);
    const again = await docker(runArgs(image, volume, 'cat /data/*/kept'));
    expect(again.stdout).toBe('after-restart');

    await docker(['volume', 'rm', volume]);
    expect(await volumeNames(engine, plugin.name)).toEqual([]);
    expect((await plugin.post('/VolumeDriver.List', {})).json).toEqual({ Volumes: [], Err: '' });
    expect(plugin.logs()).not.toMatch(/internal error/);
  });

  it('releases a volume whose container the engine took with it when killed, and unmounts its disk', async () => {
    const label = `e2e${Math.random().toString(36).slice(2, 8)}`;
    const disk = await initialisedDisk(`label.${label}`);
    const engine = await startDockerd();
    const image = await engine.busyboxImage();
    const plugin = await startPluginProcess({
      tool: 'simplectl',
      driver: 'simple',
      forDocker: true,
      include: [kernelName(disk)],
      args: ['--release-unheld', '2'],
      env: { ...TEST_ENV, SIMPLECTL_STATE_DIR: join(scratchDir('simple-state'), 'state') },
    });
    const volume = `label.${label}`;
    removeAtCleanup(engine, { driver: plugin.name, containers: ['holder'], volumes: [volume] });
    await createVolume(engine, plugin.name, volume);
    await engine.docker(
      runArgs(image, volume, 'echo kept > /data/$(ls /data)/file; while true; do sleep 0.2; done', 'holder'),
    );
    const mountpoint = join(plugin.mountRoot, volume);
    await waitUntil('the volume to be mounted', () => mountedAt(mountpoint));
    const diskMounted = () => readFileSync('/proc/self/mountinfo', 'utf8').includes(`${disk.device}p2 `);
    expect(diskMounted()).toBe(true);
    const log = await releasedAfterEngineCrash(engine, plugin, volume, mountpoint);
    expect(await refsOf(plugin, volume)).toBe(0);
    expect(diskMounted()).toBe(false);
    expect(log).toContain(`volume ${volume}: released 1 mount reference(s) the engine never released`);
    expect(readFromDisk(disk.device, 'file')).toBe('kept\n');
  });
});
