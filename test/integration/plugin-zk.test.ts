/**
 * The zookeeper driver over a real ZooKeeper and real FUSE, through the
 * plugin socket: a volume whose FUSE daemon died is mounted afresh on the
 * next Mount and at start-up, instead of handing containers a dead mount.
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../src/adapters/processes.js';
import { readMountRecord } from '../../src/adapters/zkfs/run-state.js';
import { statusSocketPath } from '../../src/adapters/zkfs/status-socket.js';
import { missing } from '../fixtures/environment.js';
import { startZk } from '../fixtures/zk-server.js';
import { mountedAt, readZnode, refsOf, startPluginProcess, waitUntil } from './plugin-fixture.js';

/** The kernel's id of the mount at `dir`: a mount taken down and made again gets a new one. */
function mountIdAt(dir: string): string | undefined {
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === dir);
  return line?.split(' ')[0];
}

/** Sends a request as the engine does and closes the connection after `ms`, unanswered. */
function abandonRequest(socketPath: string, path: string, body: unknown, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const text = `${JSON.stringify(body)}\n`;
    const req = request(
      { socketPath, path, method: 'POST', headers: { 'Content-Length': Buffer.byteLength(text) } },
      () => reject(new Error(`${path} was answered within ${ms} ms; the test needs it to wait`)),
    );
    req.on('error', () => {});
    req.end(text);
    setTimeout(() => {
      req.destroy();
      resolve();
    }, ms);
  });
}

async function killDaemon(dir: string): Promise<number> {
  const record = await readMountRecord(dir);
  if (!record) throw new Error(`no daemon record for ${dir}`);
  process.kill(record.pid, 'SIGKILL');
  // A killed daemon is dead once it is a zombie: its reaper may come later.
  await waitUntil(`daemon ${record.pid} to die`, () => !isProcessAlive(record.pid));
  return record.pid;
}

describe.skipIf(missing({ root: true, fuse: true }))('zookeeper driver on real FUSE', () => {
  it('mounts afresh a volume whose FUSE daemon died, on Mount and at start-up', async () => {
    const zk = await startZk();
    const plugin = await startPluginProcess({ tool: 'zkfsctl' });
    const create = await plugin.post('/VolumeDriver.Create', {
      Name: 'rec',
      Opts: { hosts: zk.connectString, path: '/rec', mode: 'hybrid' },
    });
    expect(create).toEqual({ status: 200, json: { Err: '' } });
    const first = await plugin.post('/VolumeDriver.Mount', { Name: 'rec', ID: 'c1' });
    const dir = first.json.Mountpoint as string;
    expect(dir).toBe(join(plugin.mountRoot, 'rec'));
    writeFileSync(join(dir, 'note'), 'written through FUSE\n');
    expect(await readZnode(zk.connectString, '/rec/note')).toBe('written through FUSE\n');

    const killed = [await killDaemon(dir)];
    expect(existsSync(statusSocketPath(killed[0]!))).toBe(true);
    const second = await plugin.post('/VolumeDriver.Mount', { Name: 'rec', ID: 'c2' });
    expect(second).toEqual({ status: 200, json: { Mountpoint: dir, Err: '' } });
    expect(readFileSync(join(dir, 'note'), 'utf8')).toBe('written through FUSE\n');
    expect(plugin.logs()).toContain('the process serving');
    expect(await refsOf(plugin, 'rec')).toBe(2);

    // Both the server and the daemon die; the restarted server serves the volume again.
    await plugin.kill('SIGKILL');
    killed.push(await killDaemon(dir));
    await plugin.start();
    expect(plugin.logs()).toContain(`remounted volume rec at ${dir}: 2 mount(s) still use it`);
    expect(readFileSync(join(dir, 'note'), 'utf8')).toBe('written through FUSE\n');

    await plugin.post('/VolumeDriver.Unmount', { Name: 'rec', ID: 'c1' });
    expect(mountedAt(dir)).toBe(true);
    await plugin.post('/VolumeDriver.Unmount', { Name: 'rec', ID: 'c2' });
    expect(mountedAt(dir)).toBe(false);
    expect(await refsOf(plugin, 'rec')).toBe(0);
    // Nothing is left of the killed daemons: `zkfsctl status` finds no dead sockets.
    for (const pid of killed) expect(existsSync(statusSocketPath(pid))).toBe(false);
  });

  it('shares a long-named volume between two Mounts without remounting it, and logs its daemon', async () => {
    const zk = await startZk();
    const plugin = await startPluginProcess({ tool: 'zkfsctl' });
    // Every '-' escapes to four characters in the daemon's record name: 121 characters become 301.
    const dashed = `${'a-'.repeat(60)}a`;
    const longest = 'v'.repeat(255);
    for (const name of [dashed, longest]) {
      const create = await plugin.post('/VolumeDriver.Create', {
        Name: name,
        Opts: { hosts: zk.connectString, path: `/long${name.length}` },
      });
      expect(create).toEqual({ status: 200, json: { Err: '' } });
      const first = await plugin.post('/VolumeDriver.Mount', { Name: name, ID: 'c1' });
      expect(first.json.Err).toBe('');
      const dir = first.json.Mountpoint as string;
      writeFileSync(join(dir, 'note'), 'first\n');
      const mountId = mountIdAt(dir);
      expect(mountId).toBeDefined();
      const second = await plugin.post('/VolumeDriver.Mount', { Name: name, ID: 'c2' });
      expect(second).toEqual({ status: 200, json: { Mountpoint: dir, Err: '' } });
      // The first container's mount is the one the second gets: not taken down and mounted afresh.
      expect(mountIdAt(dir)).toBe(mountId);
      expect(readFileSync(join(dir, 'note'), 'utf8')).toBe('first\n');
      for (const id of ['c1', 'c2']) await plugin.post('/VolumeDriver.Unmount', { Name: name, ID: id });
      expect(mountedAt(dir)).toBe(false);
    }
    expect(plugin.logs()).not.toContain('the process serving');
    const logs = readdirSync(join(plugin.stateDir, 'logs'));
    expect(logs).toContain(`${dashed}.log`);
    expect(logs.filter((f) => f.startsWith('vvvv') && f.endsWith('.log'))).toHaveLength(1);
  });

  it('undoes a Mount the engine stopped waiting for: no reference holds the volume for nobody', async () => {
    const zk = await startZk();
    const plugin = await startPluginProcess({ tool: 'zkfsctl' });
    const create = await plugin.post('/VolumeDriver.Create', {
      Name: 'late',
      Opts: { hosts: zk.connectString, path: '/late' },
    });
    expect(create).toEqual({ status: 200, json: { Err: '' } });
    // ZooKeeper is down, so the Mount waits; the engine gives up (after two minutes; here one second).
    await zk.kill(0);
    await abandonRequest(plugin.socket, '/VolumeDriver.Mount', { Name: 'late', ID: 'gave-up' }, 1000);
    await zk.start(0);
    await waitUntil('the abandoned Mount to finish', () =>
      /VolumeDriver\.Mount volume=late /.test(plugin.logs()),
    );
    expect(await refsOf(plugin, 'late')).toBe(0);
    expect(mountedAt(join(plugin.mountRoot, 'late'))).toBe(false);
    expect(plugin.logs()).toContain('the engine stopped waiting before the volume was mounted');
    // The volume still serves the next container.
    const next = await plugin.post('/VolumeDriver.Mount', { Name: 'late', ID: 'next' });
    expect(next.json.Err).toBe('');
    await plugin.post('/VolumeDriver.Unmount', { Name: 'late', ID: 'next' });
    expect(mountedAt(join(plugin.mountRoot, 'late'))).toBe(false);
  });
});
