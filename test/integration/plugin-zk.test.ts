/**
 * The zookeeper driver over a real ZooKeeper and real FUSE, through the
 * plugin socket: a volume whose FUSE daemon died is mounted afresh on the
 * next Mount and at start-up, instead of handing containers a dead mount.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../src/adapters/processes.js';
import { readMountRecord, runDir } from '../../src/adapters/zkfs/run-state.js';
import { statusSocketPath } from '../../src/adapters/zkfs/status-socket.js';
import { zkBackend } from '../../src/plugin/zk-driver.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { startZk } from '../fixtures/zk-server.js';
import { daemonPid, eventually, mountZkfs, zkfsRunDir } from '../fixtures/zkfs-mount.js';
import {
  mountedAt,
  type PluginProcess,
  readZnode,
  refsOf,
  startPluginProcess,
  waitUntil,
} from './plugin-fixture.js';

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

/**
 * Creates and mounts (for mount ID c1) a volume of each name, on the ensemble `hostsOf` gives it,
 * and writes a note naming it into each; returns their mount points.
 */
async function mountWithNotes(
  plugin: PluginProcess,
  names: readonly string[],
  hostsOf: (name: string) => string,
): Promise<Record<string, string>> {
  const dirs: Record<string, string> = {};
  for (const name of names) {
    const opts = { hosts: hostsOf(name), path: `/${name}` };
    expect((await plugin.post('/VolumeDriver.Create', { Name: name, Opts: opts })).status).toBe(200);
    const mount = await plugin.post('/VolumeDriver.Mount', { Name: name, ID: 'c1' });
    expect(mount.json.Err).toBe('');
    dirs[name] = mount.json.Mountpoint as string;
    writeFileSync(join(dirs[name]!, 'note'), `${name}\n`);
  }
  return dirs;
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
    // A mount whose daemon died is not reported as the volume's mount point.
    expect((await plugin.post('/VolumeDriver.Path', { Name: 'rec' })).json.Mountpoint).toBe('');
    expect((await plugin.post('/VolumeDriver.List', {})).json.Volumes).toEqual([{ Name: 'rec' }]);
    expect((await plugin.post('/VolumeDriver.Get', { Name: 'rec' })).json.Volume).not.toHaveProperty(
      'Mountpoint',
    );
    const second = await plugin.post('/VolumeDriver.Mount', { Name: 'rec', ID: 'c2' });
    expect(second).toEqual({ status: 200, json: { Mountpoint: dir, Err: '' } });
    expect(readFileSync(join(dir, 'note'), 'utf8')).toBe('written through FUSE\n');
    expect(plugin.logs()).toContain('the process serving');
    expect(await refsOf(plugin, 'rec')).toBe(2);

    // Both the server and the daemon die; the restarted server serves the volume again.
    await plugin.kill('SIGKILL');
    killed.push(await killDaemon(dir));
    await plugin.start();
    // The remount goes on after the socket answers; a request naming the volume waits for it.
    expect(await plugin.post('/VolumeDriver.Path', { Name: 'rec' })).toEqual({
      status: 200,
      json: { Mountpoint: dir, Err: '' },
    });
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

  it('reports once that the FUSE daemon of a volume in use died, and again after the next one dies', async () => {
    const zk = await startZk();
    const plugin = await startPluginProcess({ tool: 'zkfsctl', args: ['--release-unheld', '2'] });
    const [dir] = Object.values(await mountWithNotes(plugin, ['vic'], () => zk.connectString));
    // A process working in the volume holds it, so the one-second sweeps never release it.
    const users: (() => Promise<void>)[] = [];
    const holdMount = () => {
      const user = spawn('sleep', ['600'], { cwd: dir!, stdio: 'ignore' });
      const exited = new Promise<void>((resolve) => user.once('exit', () => resolve()));
      const stop = () => {
        user.kill('SIGKILL');
        return exited;
      };
      users.push(stop);
      onCleanup('sleep in the volume', stop);
    };
    holdMount();
    const reported = () =>
      plugin
        .logs()
        .split('\n')
        .filter((l) => l.includes(`volume vic: the process serving its mount at ${dir} died`));

    await killDaemon(dir!);
    await waitUntil('the death to be reported', () => reported().length === 1, 10_000);
    expect(reported()[0]).toContain(
      'the 1 container mount(s) using it get "Transport endpoint is not connected" until they are restarted, and its next Mount mounts it afresh',
    );
    // Once only, however many sweeps find it dead.
    await new Promise((r) => setTimeout(r, 2500));
    expect(reported()).toHaveLength(1);

    // The next Mount mounts it afresh; when that daemon dies too, it is reported again.
    expect((await plugin.post('/VolumeDriver.Mount', { Name: 'vic', ID: 'c2' })).json.Err).toBe('');
    expect(readFileSync(join(dir!, 'note'), 'utf8')).toBe('vic\n');
    holdMount(); // the first works in the dead mount, which is no longer at the mount point
    await killDaemon(dir!);
    await waitUntil('the second death to be reported', () => reported().length === 2, 10_000);

    for (const stop of users) await stop();
    expect((await plugin.post('/VolumeDriver.Mount', { Name: 'vic', ID: 'c3' })).json.Err).toBe('');
    for (const id of ['c1', 'c2', 'c3']) await plugin.post('/VolumeDriver.Unmount', { Name: 'vic', ID: id });
    expect(mountedAt(dir!)).toBe(false);
  });

  it('answers at once after a restart while the ensemble of some volumes is down, and serves them once it is back', async () => {
    // Start-up remounted the volumes whose daemons died one after another, each waiting 10 s for its
    // ZooKeeper: the engine, which blocks `docker run` on an unanswered plugin, waited for all of them.
    const down = await startZk();
    const up = await startZk();
    const plugin = await startPluginProcess({ tool: 'zkfsctl' });
    const names = ['dead1', 'dead2', 'dead3', 'good'];
    const dirs = await mountWithNotes(plugin, names, (name) => (name === 'good' ? up : down).connectString);
    // The host's plugin and its daemons die (an OOM kill, a crash); one ensemble is unreachable.
    await plugin.kill('SIGKILL');
    for (const name of names) await killDaemon(dirs[name]!);
    await down.kill(0);

    const started = Date.now();
    await plugin.start();
    const list = await plugin.post('/VolumeDriver.List', {});
    expect(Date.now() - started).toBeLessThan(5000);
    expect((list.json.Volumes as { Name: string }[]).map((v) => v.Name)).toEqual(names);
    // Answered while start-up still works on them: the dead mounts are not shown as mount points.
    for (const name of ['dead1', 'dead2', 'dead3']) expect(list.json.Volumes).toContainEqual({ Name: name });
    // The volume whose ensemble is fine is served at once, with its data.
    const good = await plugin.post('/VolumeDriver.Mount', { Name: 'good', ID: 'c2' });
    expect(good).toEqual({ status: 200, json: { Mountpoint: dirs.good, Err: '' } });
    expect(readFileSync(join(dirs.good!, 'note'), 'utf8')).toBe('good\n');
    expect(Date.now() - started).toBeLessThan(8000);

    // A volume that could not be mounted afresh is not reported mounted, and keeps its holder.
    const get = await plugin.post('/VolumeDriver.Get', { Name: 'dead1' });
    expect(get.json.Err).toBe('');
    expect(get.json.Volume).not.toHaveProperty('Mountpoint');
    expect((get.json.Volume as { Status: { mounts: number } }).Status.mounts).toBe(1);
    expect(plugin.logs()).toContain('could not remount volume dead1');
    const listed = await plugin.post('/VolumeDriver.List', {});
    expect(listed.json.Volumes).toContainEqual({ Name: 'dead1' });
    expect(listed.json.Volumes).toContainEqual({ Name: 'good', Mountpoint: dirs.good });

    // Once ZooKeeper is back the next container gets the volume, with its data.
    await down.start(0);
    const back = await plugin.post('/VolumeDriver.Mount', { Name: 'dead1', ID: 'c2' });
    expect(back).toEqual({ status: 200, json: { Mountpoint: dirs.dead1, Err: '' } });
    expect(readFileSync(join(dirs.dead1!, 'note'), 'utf8')).toBe('dead1\n');
    for (const id of ['c1', 'c2']) {
      for (const name of ['dead1', 'good']) {
        expect((await plugin.post('/VolumeDriver.Unmount', { Name: name, ID: id })).json.Err).toBe('');
      }
    }
    expect(mountedAt(dirs.dead1!)).toBe(false);
    expect(mountedAt(dirs.good!)).toBe(false);
  });

  it('stops after one round of start-up remounts, leaving the volumes whose turn had not come for the next start', async () => {
    // With an ensemble down, each remount waits 10 s for it, 8 at a time: a plugin that finished
    // every volume's turn before exiting took one such round per 8 volumes to stop, and systemd
    // kills a service that outlasts its stop timeout, remounts in the middle included.
    const zk = await startZk();
    const plugin = await startPluginProcess({ tool: 'zkfsctl' });
    const names = Array.from({ length: 9 }, (_, i) => `v${i + 1}`);
    const dirs = await mountWithNotes(plugin, names, () => zk.connectString);
    await plugin.kill('SIGKILL');
    for (const name of names) await killDaemon(dirs[name]!);
    await zk.kill(0);

    // Started, the first 8 volumes' remounts are under way (waiting for ZooKeeper); then stopped.
    const earlier = plugin.logs().length;
    await plugin.start();
    // The socket answers before start-up has finished; the round must be under way to be finished.
    const seen = () => plugin.logs().slice(earlier);
    await eventually(async () => seen().includes('volume v8: the process serving'), 'the remount of v8');
    await plugin.kill('SIGTERM');
    const logs = plugin.logs().slice(earlier);
    expect(logs).toContain('left 1 volume(s) for the next start to reconcile with the mount table: v9');
    expect(logs).toContain('could not remount volume v8');
    expect(logs).not.toContain('volume v9');

    // The next start finds v9 as it was left, its reference kept, and mounts it afresh.
    await zk.start(0);
    await plugin.start();
    expect(await refsOf(plugin, 'v9')).toBe(1);
    const back = await plugin.post('/VolumeDriver.Mount', { Name: 'v9', ID: 'c2' });
    expect(back).toEqual({ status: 200, json: { Mountpoint: dirs.v9, Err: '' } });
    expect(readFileSync(join(dirs.v9!, 'note'), 'utf8')).toBe('v9\n');
    expect(plugin.logs()).toContain('remounted volume v9');
    for (const id of ['c1', 'c2']) {
      expect((await plugin.post('/VolumeDriver.Unmount', { Name: 'v9', ID: id })).json.Err).toBe('');
    }
    expect(mountedAt(dirs.v9!)).toBe(false);
  });

  it('names a bad auth file by the -o option given to docker when Mount reads it', async () => {
    const zk = await startZk();
    const plugin = await startPluginProcess({ tool: 'zkfsctl' });
    const file = join(scratchDir('auth'), 'zk.auth');
    writeFileSync(file, 'alice\n', { mode: 0o600 });
    const opts = { hosts: zk.connectString, path: '/authfile', 'auth-file': file };
    expect((await plugin.post('/VolumeDriver.Create', { Name: 'authfile', Opts: opts })).json.Err).toBe('');
    const bad = (await plugin.post('/VolumeDriver.Mount', { Name: 'authfile', ID: 'c1' })).json.Err as string;
    expect(bad).toContain(`the first line of -o auth-file ${file} must be`);
    expect(bad).not.toContain('--auth-file');
    rmSync(file);
    const gone = (await plugin.post('/VolumeDriver.Mount', { Name: 'authfile', ID: 'c2' })).json
      .Err as string;
    expect(gone).toContain(`-o auth-file ${file} does not exist`);
    expect(mountedAt(join(plugin.mountRoot, 'authfile'))).toBe(false);
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
      const daemon = (await readMountRecord(dir))?.pid;
      expect(daemon).toBeGreaterThan(0);
      const second = await plugin.post('/VolumeDriver.Mount', { Name: name, ID: 'c2' });
      expect(second).toEqual({ status: 200, json: { Mountpoint: dir, Err: '' } });
      // The first container's mount is the one the second gets: not taken down and mounted afresh.
      expect((await readMountRecord(dir))?.pid).toBe(daemon);
      expect(isProcessAlive(daemon!)).toBe(true);
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

  it('takes a mount without a daemon record for dead the moment its daemon dies', async () => {
    // statfs answers ECONNABORTED, not ENOTCONN, while the connection is being torn down: the
    // driver took such a mount for live, and left it dead for the containers that mount it next.
    const zk = await startZk();
    const backend = zkBackend({ logDir: scratchDir('zk-logs') });
    for (let round = 0; round < 3; round++) {
      const m = await mountZkfs(zk.connectString, `/dying-${round}`);
      const pid = daemonPid(m.dir);
      const record = readdirSync(zkfsRunDir())
        .map((f) => join(zkfsRunDir(), f))
        .find((f) => f.endsWith('.json') && readFileSync(f, 'utf8').includes(`"pid": ${pid}`));
      rmSync(record!);
      expect(await backend.alive!(m.dir)).toBe(true);
      process.kill(pid, 'SIGKILL');
      while (isProcessAlive(pid)) await new Promise((r) => setImmediate(r));
      expect(await backend.alive!(m.dir), `round ${round}`).toBe(false);
      await m.unmount();
    }
  });

  it('takes a live mount whose daemon record is missing for live, and one whose daemon died for dead', async () => {
    const zk = await startZk();
    const plugin = await startPluginProcess({ tool: 'zkfsctl' });
    const opts = { hosts: zk.connectString, path: '/norecord' };
    expect((await plugin.post('/VolumeDriver.Create', { Name: 'norec', Opts: opts })).status).toBe(200);
    const dir = (await plugin.post('/VolumeDriver.Mount', { Name: 'norec', ID: 'c1' })).json
      .Mountpoint as string;
    const record = await readMountRecord(dir);
    expect(record).toBeDefined();
    // /run cleaned, or the server restarted under another ZKFSCTL_RUN_DIR.
    const recordFile = readdirSync(runDir())
      .map((f) => join(runDir(), f))
      .find((f) => f.endsWith('.json') && readFileSync(f, 'utf8').includes(`"pid": ${record!.pid}`));
    expect(recordFile).toBeDefined();
    rmSync(recordFile!);
    expect((await plugin.post('/VolumeDriver.Mount', { Name: 'norec', ID: 'c2' })).json.Err).toBe('');
    // The daemon serving the first container still does: it was not taken for dead and stopped.
    expect(isProcessAlive(record!.pid)).toBe(true);
    expect(plugin.logs()).not.toContain('the process serving');

    // Without its record, a daemon that died is still found dead.
    process.kill(record!.pid, 'SIGKILL');
    await waitUntil(`daemon ${record!.pid} to die`, () => !isProcessAlive(record!.pid));
    expect((await plugin.post('/VolumeDriver.Mount', { Name: 'norec', ID: 'c3' })).json.Err).toBe('');
    expect(plugin.logs()).toContain('the process serving');
    expect(readdirSync(dir)).toEqual([]);
    for (const id of ['c1', 'c2', 'c3'])
      await plugin.post('/VolumeDriver.Unmount', { Name: 'norec', ID: id });
    expect(mountedAt(dir)).toBe(false);
  });
});
