/**
 * The `zookeeper` plugin end to end: a real ZooKeeper, a private dockerd, the
 * project's own plugin server on /run/docker/plugins/<unique>.sock and the
 * real `docker` CLI. Files written in containers are read straight from
 * ZooKeeper; two containers share a volume; the plugin server is killed and
 * restarted under a running container; dockerd is restarted; auth never shows.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { describe, expect, it } from 'vitest';
import {
  createVolume,
  finishContainer,
  listedVolumes,
  removeAtCleanup,
  volumeNames,
} from '../fixtures/docker-run.js';
import { startDockerd } from '../fixtures/dockerd.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { startZk } from '../fixtures/zk-server.js';
import {
  crashAndRestart,
  mountedAt,
  readZnode,
  refsOf,
  refsOnceReleased,
  releasedAfterEngineCrash,
  runArgs,
  startPluginProcess,
  waitUntil,
} from './plugin-fixture.js';

/** Creates `path` readable and writable only by the digest identity `auth` (user:password). */
function createProtectedNode(connectString: string, path: string, auth: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = zookeeper.createClient(connectString, { sessionTimeout: 5000 });
    client.once('connected', () => {
      client.addAuthInfo('digest', Buffer.from(auth));
      const acl = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('auth', ''))];
      client.create(path, Buffer.alloc(0), acl, zookeeper.CreateMode.PERSISTENT, (error) => {
        client.close();
        if (error) reject(error);
        else resolve();
      });
    });
    client.connect();
  });
}

describe.skipIf(missing({ root: true, fuse: true }))(
  'zookeeper volume plugin with a real Docker engine',
  () => {
    it('creates, shares, survives plugin and engine restarts, and removes a ZooKeeper volume', async () => {
      const zk = await startZk();
      const engine = await startDockerd();
      const image = await engine.busyboxImage();
      const plugin = await startPluginProcess({ tool: 'zkfsctl', forDocker: true });
      const docker = engine.docker;
      const port = zk.clientPorts[0];
      removeAtCleanup(engine, {
        driver: plugin.name,
        containers: ['holder'],
        volumes: ['cfg', 'secure', 'filed', 'anonymous'],
      });

      await createVolume(engine, plugin.name, 'cfg', { hosts: `127.0.0.1:${port}`, path: '/app' });
      const run = await docker(
        runArgs(
          image,
          'cfg',
          'echo hello > /data/greeting && mkdir -p /data/conf && echo "a=1" > /data/conf/app.ini && cat /data/greeting',
        ),
      );
      expect(run.stdout).toBe('hello');
      expect(await readZnode(zk.connectString, '/app/greeting')).toBe('hello\n');
      expect(await readZnode(zk.connectString, '/app/conf/app.ini')).toBe('a=1\n');
      const mountpoint = join(plugin.mountRoot, 'cfg');
      expect(mountedAt(mountpoint)).toBe(false);

      // Two containers share the volume: one holds it, the other reads what it wrote.
      await docker(
        runArgs(
          image,
          'cfg',
          'echo from-holder > /data/shared; while [ ! -e /data/stop ]; do sleep 0.2; done',
          'holder',
        ),
      );
      await waitUntil('the holder to write', async () => {
        try {
          return (await readZnode(zk.connectString, '/app/shared')) === 'from-holder\n';
        } catch {
          return false;
        }
      });
      const second = await docker(runArgs(image, 'cfg', 'cat /data/shared'));
      expect(second.stdout).toBe('from-holder');
      expect(await refsOf(plugin, 'cfg')).toBe(1);

      // The plugin server dies and comes back while the holder uses the volume.
      await crashAndRestart(plugin);
      // Start-up looks at the volume once the socket answers; a request naming it waits for that.
      await plugin.post('/VolumeDriver.Path', { Name: 'cfg' });
      expect(plugin.logs()).toContain(`volume cfg is still mounted at ${mountpoint} for 1 mount(s)`);
      const exec = await docker([
        'exec',
        'holder',
        'sh',
        '-c',
        'echo after > /data/after-restart && cat /data/greeting',
      ]);
      expect(exec.stdout).toBe('hello');
      expect(await readZnode(zk.connectString, '/app/after-restart')).toBe('after\n');
      await finishContainer(engine, 'holder', ['touch', '/data/stop']);
      expect(await refsOnceReleased(plugin, 'cfg', mountpoint)).toBe(0);

      // Digest auth reaches ZooKeeper (the old plugin dropped it): /secure is readable by alice only.
      await createProtectedNode(zk.connectString, '/secure', 'alice:s3cret-pw');
      const authFile = join(scratchDir('zk-auth'), 'alice.auth');
      writeFileSync(authFile, 'alice:s3cret-pw\n', { mode: 0o600 });
      await createVolume(engine, plugin.name, 'secure', {
        host: `127.0.0.1:${port}`,
        path: '/secure',
        auth: 'alice:s3cret-pw',
      });
      await createVolume(engine, plugin.name, 'filed', {
        hosts: `127.0.0.1:${port}`,
        path: '/secure',
        'auth-file': authFile,
      });
      await createVolume(engine, plugin.name, 'anonymous', { hosts: `127.0.0.1:${port}`, path: '/secure' });
      const secure = await docker(runArgs(image, 'secure', 'echo x > /data/y && cat /data/y'));
      expect(secure.stdout).toBe('x');
      const filed = await docker(runArgs(image, 'filed', 'cat /data/y'));
      expect(filed.stdout).toBe('x');
      const anonymous = await docker(runArgs(image, 'anonymous', 'cat /data/y'), { reject: false });
      expect(anonymous.exitCode).not.toBe(0);

      // The secret stays out of Get replies (inspect's Status), logs and every file but the 0600 state file.
      // (The engine keeps its own copy of `-o` options, shown as Options: auth-file avoids that.)
      const inspected = JSON.parse((await docker(['volume', 'inspect', 'secure', 'filed'])).stdout);
      expect(inspected[0]).toMatchObject({
        Driver: plugin.name,
        Status: { path: '/secure', auth: 'digest (hidden)' },
      });
      expect(inspected[1]).toMatchObject({ Status: { auth: `digest from ${authFile}` } });
      expect(JSON.stringify(inspected.map((v: { Status: unknown }) => v.Status))).not.toContain('s3cret');
      expect(JSON.stringify(inspected[1])).not.toContain('s3cret');
      expect(plugin.logs()).not.toContain('s3cret');
      for (const log of readdirSync(join(plugin.stateDir, 'logs'))) {
        expect(readFileSync(join(plugin.stateDir, 'logs', log), 'utf8')).not.toContain('s3cret');
      }
      const stateFile = join(plugin.stateDir, 'plugin-state.json');
      expect(statSync(stateFile).mode & 0o777).toBe(0o600);
      const state = readFileSync(stateFile, 'utf8');
      expect(state).toContain('alice:s3cret-pw');
      expect(state.split('s3cret').length).toBe(2); // only the volume given auth inline
      await docker(['volume', 'rm', 'filed', 'anonymous']);

      // The engine restarts: both volumes are still there and still work.
      await engine.restart();
      expect((await listedVolumes(engine, plugin.name)).sort()).toEqual([
        `${plugin.name} cfg`,
        `${plugin.name} secure`,
      ]);
      const again = await docker(runArgs(image, 'cfg', 'cat /data/after-restart'));
      expect(again.stdout).toBe('after');

      // Removing a volume forgets it; the data stays in ZooKeeper.
      await docker(['volume', 'rm', 'cfg', 'secure']);
      expect(await volumeNames(engine, plugin.name)).toEqual([]);
      expect(await readZnode(zk.connectString, '/app/greeting')).toBe('hello\n');
      expect(plugin.logs()).not.toMatch(/internal error/);
    });

    it('releases the mount of a container killed with the engine, never one a container holds', async () => {
      const zk = await startZk();
      const engine = await startDockerd();
      const image = await engine.busyboxImage();
      const plugin = await startPluginProcess({
        tool: 'zkfsctl',
        forDocker: true,
        args: ['--release-unheld', '2'],
      });
      removeAtCleanup(engine, { driver: plugin.name, containers: ['holder'], volumes: ['held'] });
      await createVolume(engine, plugin.name, 'held', {
        hosts: `127.0.0.1:${zk.clientPorts[0]}`,
        path: '/held',
      });
      await engine.docker(
        runArgs(image, 'held', 'echo kept > /data/file; while true; do sleep 0.2; done', 'holder'),
      );
      const mountpoint = join(plugin.mountRoot, 'held');
      await waitUntil('the holder to write', async () => {
        try {
          return (await readZnode(zk.connectString, '/held/file')) === 'kept\n';
        } catch {
          return false;
        }
      });

      // The engine dies with its containers and comes back: it never unmounts what they held.
      const log = await releasedAfterEngineCrash(engine, plugin, 'held', mountpoint);
      expect((await engine.docker(['inspect', '-f', '{{.State.Running}}', 'holder'])).stdout).toBe('false');
      expect(log).not.toMatch(/VolumeDriver.Unmount request/);
      expect(await refsOf(plugin, 'held')).toBe(0);
      expect(log).toMatch(
        /volume held: released 1 mount reference\(s\) the engine never released \([0-9a-f]+\): nothing uses its mount/,
      );

      // The volume works as before, and its data is where it was.
      const again = await engine.docker(runArgs(image, 'held', 'cat /data/file'));
      expect(again.stdout).toBe('kept');
      expect(await refsOnceReleased(plugin, 'held', mountpoint)).toBe(0);
    });

    it('answers docker volume create with the plugin error for missing or bad options', async () => {
      const engine = await startDockerd();
      const plugin = await startPluginProcess({ tool: 'zkfsctl', forDocker: true });
      const missingHosts = await engine.docker(['volume', 'create', '-d', plugin.name, 'nohosts'], {
        reject: false,
      });
      expect(missingHosts.exitCode).not.toBe(0);
      expect(missingHosts.stderr).toContain('missing option hosts');
      const badPort = await engine.docker(
        ['volume', 'create', '-d', plugin.name, '-o', 'hosts=127.0.0.1', 'noport'],
        {
          reject: false,
        },
      );
      expect(badPort.stderr).toContain('ports are required');
      // The option is named once, as it was typed to docker (it read "option mode: --mode 'weird'").
      const badMode = await engine.docker(
        ['volume', 'create', '-d', plugin.name, '-o', 'hosts=127.0.0.1:2181', '-o', 'mode=weird', 'badmode'],
        { reject: false },
      );
      expect(badMode.exitCode).not.toBe(0);
      expect(badMode.stderr).toContain(': -o mode=weird is not one of hybrid, dir, file');
      expect(await volumeNames(engine, plugin.name)).toEqual([]);
    });
  },
);
