/** Proves the harness itself: every fixture starts a real thing and cleans it up. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import zookeeper from 'node-zookeeper-client';
import { describe, expect, it } from 'vitest';
import { removeVolumes } from '../fixtures/docker-run.js';
import { startDockerd } from '../fixtures/dockerd.js';
import { missing } from '../fixtures/environment.js';
import { createLoopDisk, mountsOf } from '../fixtures/loop-disk.js';
import { startZk } from '../fixtures/zk-server.js';
import { startPluginProcess, uniquePluginName } from './plugin-fixture.js';

function zkRoundTrip(connectString: string, path: string, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const client = zookeeper.createClient(connectString, { sessionTimeout: 5000 });
    const timer = setTimeout(() => reject(new Error('no ZooKeeper session within 10 s')), 10_000);
    client.once('connected', () => {
      client.create(path, data, (createError) => {
        if (createError) return reject(createError);
        client.getData(path, (readError, read) => {
          clearTimeout(timer);
          client.close();
          if (readError) reject(readError);
          else resolve(read);
        });
      });
    });
    client.connect();
  });
}

describe('ZooKeeper fixture', () => {
  it('starts a server, stores and returns a znode, and stops', async () => {
    const zk = await startZk();
    const data = Buffer.from([0, 1, 2, 255, 10]);
    expect(await zkRoundTrip(zk.connectString, '/smoke', data)).toEqual(data);
    await zk.stop();
    expect(await zk.srvr(0)).toBe('');
  });

  it('runs a three-server ensemble that survives losing its leader', async () => {
    const zk = await startZk({ servers: 3 });
    const leader = await zk.leader();
    await zk.kill(leader);
    const data = Buffer.from('after failover');
    expect(await zkRoundTrip(zk.connectString, '/ensemble', data)).toEqual(data);
    await zk.start(leader);
    expect(await zk.srvr(leader)).toMatch(/Mode: (leader|follower)/);
    await zk.stop();
  });
});

describe.skipIf(missing({ loop: true }))('loop disk fixture', () => {
  it('makes a device, partitions it with sgdisk, shows partitions after partx -u, detaches', async () => {
    const disk = await createLoopDisk({ sizeMiB: 16 });
    execFileSync('sgdisk', ['-o', '-n', '1:1M:2M', '-n', '2:0:0', disk.device], { stdio: 'ignore' });
    execFileSync('partx', ['-u', disk.device]);
    const name = disk.device.replace('/dev/', '');
    expect(existsSync(`/sys/class/block/${name}/${name}p2`)).toBe(true);
    await disk.detach();
    expect(existsSync(`/sys/class/block/${name}/${name}p2`)).toBe(false);
    expect(mountsOf(disk.device)).toEqual([]);
    const list = execFileSync('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE'], {
      encoding: 'utf8',
    });
    expect(list).not.toContain(disk.file);
  });
});

describe.skipIf(missing({ root: true }))('dockerd fixture', () => {
  it("removes a test's volumes by name without touching another plugin's volume of that name", async () => {
    // Another run's (or the host's) plugin, found by every engine in /run/docker/plugins.
    const bystander = await startPluginProcess({ tool: 'zkfsctl', forDocker: true });
    const opts = { Opts: { hosts: '127.0.0.1:2181' } };
    expect((await bystander.post('/VolumeDriver.Create', { Name: 'cfg', ...opts })).status).toBe(200);
    const engine = await startDockerd();
    await removeVolumes(engine, uniquePluginName('volkit-absent'), ['cfg']);
    expect((await bystander.post('/VolumeDriver.Get', { Name: 'cfg' })).status).toBe(200);
    // The engine does take a bare `volume rm -f NAME` to whichever plugin holds NAME.
    await engine.docker(['volume', 'rm', '-f', 'cfg']);
    expect((await bystander.post('/VolumeDriver.Get', { Name: 'cfg' })).status).toBe(404);
  });

  it('starts a private engine that answers docker version, runs a container, and stops', async () => {
    const engine = await startDockerd();
    const version = await engine.docker(['version', '--format', '{{.Server.Version}}']);
    expect(version.stdout.trim()).not.toBe('');
    const image = await engine.busyboxImage();
    const run = await engine.docker([
      'run',
      '--rm',
      '--network',
      'none',
      image,
      'sh',
      '-c',
      'echo hello from busybox',
    ]);
    expect(run.stdout).toBe('hello from busybox');
    await engine.stop();
    expect(readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(
      engine.host.replace('unix://', '').replace('/docker.sock', ''),
    );
  });
});
