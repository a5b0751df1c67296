/**
 * The volume store shared by both drivers, against the real mount table: a
 * small backend that mounts a tmpfs stands in for a driver so that reference
 * counting, persistence and start-up reconciliation are shown on real mounts.
 * The real drivers are exercised in plugin-zk.test.ts, plugin-simple.test.ts
 * and the Docker end-to-end tests.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../src/adapters/exec.js';
import { createLogger } from '../../src/adapters/logger.js';
import { defaultContext } from '../../src/commands/context.js';
import { OperationError, UsageError } from '../../src/core/errors.js';
import type { VolumeBackend } from '../../src/plugin/volume-driver.js';
import { VolumeStore } from '../../src/plugin/volume-store.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { mountedAt, waitUntil } from './plugin-fixture.js';

/** Mounts a small tmpfs; counts calls; `fail` makes the next mount fail like a real driver would. */
function tmpfsBackend() {
  const calls = { mount: 0, unmount: 0 };
  let fail = false;
  const backend: VolumeBackend = {
    driver: 'tmpfs-test',
    secretOptions: ['auth'],
    secretsOf: (_n, o) => (o.auth ? [o.auth] : []),
    normalizeOptions: (_name, options) => {
      if (options.size === undefined) throw new UsageError('missing option size');
      return { ...options };
    },
    mount: async (volume, dir) => {
      calls.mount++;
      if (fail) {
        fail = false;
        throw new OperationError('backend refused to mount');
      }
      await run('mount', ['-t', 'tmpfs', '-o', `size=${volume.options.size}`, `volkit-${volume.name}`, dir]);
    },
    unmount: async (_volume, dir) => {
      calls.unmount++;
      await run('umount', [dir]);
    },
    status: (volume) => ({ size: volume.options.size }),
  };
  return { backend, calls, failNext: () => (fail = true) };
}

async function openStore(
  root: string,
  backend: VolumeBackend,
  lines: string[] = [],
  more: { now?: () => Date; releaseUnheldMs?: number } = {},
) {
  const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
  return VolumeStore.open({
    backend,
    stateFile: join(root, 'state', 'plugin-state.json'),
    mountRoot: join(root, 'volumes'),
    ctx: defaultContext({ log }),
    ...more,
  });
}

/**
 * A process in a mount namespace of its own (unshare -m), made with the
 * given propagation: `private` copies every mount (a holder, as a
 * container's bind is), `slave` receives our unmounts (a copy, not a holder).
 */
async function inNamespace(
  propagation: 'private' | 'slave',
  setUp: string[] = [],
): Promise<() => Promise<void>> {
  // `setUp`: shell commands run in the namespace first, as a container's runtime binds its volumes.
  const command =
    setUp.length > 0 ? ['sh', '-c', `${setUp.join(' && ')} && exec sleep 600`] : ['sleep', '600'];
  const child = spawn('unshare', ['-m', '--propagation', propagation, ...command], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  onCleanup(`unshare ${child.pid}`, stop);
  const own = readlinkSync('/proc/self/ns/mnt');
  const deadline = Date.now() + 10_000;
  for (;;) {
    let ns = own;
    try {
      ns = readlinkSync(`/proc/${child.pid}/ns/mnt`);
    } catch {}
    // The namespace exists once sleep runs in it (unshare execs it after making it).
    if (ns !== own && readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim() === 'sleep') return stop;
    if (Date.now() > deadline) throw new Error('unshare -m did not start within 10 s');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function newRoot(): string {
  const root = scratchDir('plugin-store');
  onCleanup(`mounts under ${root}`, () => {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const target = line.split(' ')[4];
      if (target?.startsWith(`${root}/`)) execFileSync('umount', ['-l', target]);
    }
  });
  return root;
}

describe.skipIf(missing({ root: true }))('volume store on real mounts', () => {
  it('mounts on the first Mount ID, shares the mount, unmounts on the last Unmount', async () => {
    const root = newRoot();
    const { backend, calls } = tmpfsBackend();
    const store = await openStore(root, backend);
    await store.create('data', { size: '1m' });
    const dir = await store.mount('data', 'id1');
    expect(dir).toBe(join(root, 'volumes', 'data'));
    expect(mountedAt(dir)).toBe(true);
    writeFileSync(join(dir, 'file'), 'kept while mounted');
    expect(await store.mount('data', 'id2')).toBe(dir);
    expect(calls.mount).toBe(1);

    await store.unmount('data', 'id1');
    expect(mountedAt(dir)).toBe(true);
    await store.unmount('data', 'never-mounted'); // harmless
    await store.unmount('data', 'id1'); // already released: harmless too
    expect(readFileSync(join(dir, 'file'), 'utf8')).toBe('kept while mounted');
    expect((await store.get('data')).status).toEqual({ size: '1m', mounts: 1 });

    await store.unmount('data', 'id2');
    expect(mountedAt(dir)).toBe(false);
    expect(calls.unmount).toBe(1);
    expect((await store.get('data')).status).toEqual({ size: '1m', mounts: 0 });
    expect(await store.path('data')).toBeUndefined();
  });

  it('takes down a mount its last Unmount could not, once what held it is gone, saying so once', async () => {
    const root = newRoot();
    const { backend } = tmpfsBackend();
    const lines: string[] = [];
    const store = await openStore(root, backend, lines);
    await store.create('data', { size: '1m' });
    const dir = await store.mount('data', 'id1');
    // A shell working in the volume on the host.
    const shell = spawn('sleep', ['600'], { cwd: dir, stdio: 'ignore' });
    const gone = new Promise((resolve) => shell.once('exit', resolve));
    onCleanup(`sleep ${shell.pid}`, () => {
      shell.kill('SIGKILL');
    });
    await expect(store.unmount('data', 'id1')).rejects.toThrow(/could not unmount volume data/);
    expect(mountedAt(dir)).toBe(true);
    expect(await store.unmountUnused('data')).toBe(false);
    expect(await store.unmountUnused('data')).toBe(false);
    expect(lines.filter((l) => l.includes('stays mounted'))).toHaveLength(1);
    shell.kill('SIGKILL');
    await gone;
    // Stayed mounted until its next Mount or Remove.
    expect(await store.unmountUnused('data')).toBe(true);
    expect(mountedAt(dir)).toBe(false);
    expect(await store.unmountUnused('data')).toBe(false);
    // A volume mount references hold is left alone.
    await store.mount('data', 'id2');
    expect(await store.unmountUnused('data')).toBe(false);
    expect(mountedAt(dir)).toBe(true);
    await store.unmount('data', 'id2');
  });

  it('releases references of a mount nothing uses, once no Mount came for the timeout', async () => {
    const root = newRoot();
    // Volumes under a shared mount, as on a systemd host: other namespaces get copies by propagation.
    const volumes = join(root, 'volumes');
    mkdirSync(volumes, { recursive: true });
    await run('mount', ['--bind', volumes, volumes]);
    await run('mount', ['--make-shared', volumes]);
    onCleanup(`bind ${volumes}`, async () => {
      await run('umount', ['-l', volumes]);
    });
    const { backend, calls } = tmpfsBackend();
    let clock = Date.now();
    const lines: string[] = [];
    const store = await openStore(root, backend, lines, {
      now: () => new Date(clock),
      releaseUnheldMs: 60_000,
    });
    await store.create('data', { size: '1m' });
    const dir = await store.mount('data', 'engine-forgot-me');

    // Within the timeout nothing is released: the container may not have started yet.
    clock += 59_000;
    expect(await store.releaseUnheld('data')).toBe(false);

    // Past it, a namespace holding the mount keeps it.
    const holder = await inNamespace('private');
    clock += 2_000;
    expect(await store.releaseUnheld('data')).toBe(false);
    expect(mountedAt(dir)).toBe(true);
    expect((await store.get('data')).status.mounts).toBe(1);

    // So does a process of our own namespace working inside it (a shell, the engine copying files in).
    await holder();
    const shell = spawn('sleep', ['600'], { cwd: dir, stdio: 'ignore' });
    const shellExited = new Promise((resolve) => shell.once('exit', resolve));
    onCleanup(`sleep in ${dir}`, async () => {
      shell.kill('SIGKILL');
      await shellExited;
    });
    await waitUntil('sleep to run in the volume', () => {
      try {
        return readlinkSync(`/proc/${shell.pid}/cwd`) === dir;
      } catch {
        return false;
      }
    });
    expect(await store.releaseUnheld('data')).toBe(false);
    shell.kill('SIGKILL');
    await shellExited;

    // A namespace that only has a propagated copy holds nothing; the users gone, the refs go too.
    const copy = await inNamespace('slave');
    expect(await store.releaseUnheld('data')).toBe(true);
    expect(mountedAt(dir)).toBe(false);
    expect(calls.unmount).toBe(1);
    expect((await store.get('data')).status.mounts).toBe(0);
    expect(lines.join('\n')).toContain(
      'volume data: released 1 mount reference(s) the engine never released (engine-forgot-me): nothing uses its mount, and no Mount of any volume came for 61 s',
    );
    await copy();

    // The volume mounts again as before.
    expect(await store.mount('data', 'next')).toBe(dir);
    expect(mountedAt(dir)).toBe(true);
    await store.unmount('data', 'next');
  });

  it('counts a namespace holding only a mount inside the volume (a container given a subpath) as a user', async () => {
    const root = newRoot();
    const { backend } = tmpfsBackend();
    // A disk inside the volume's root, as the simple driver mounts them.
    const inner: VolumeBackend = {
      ...backend,
      mount: async (volume, dir, ctx) => {
        await backend.mount(volume, dir, ctx);
        mkdirSync(join(dir, 'simple-0'));
        await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'volkit-disk', join(dir, 'simple-0')]);
      },
      unmount: async (volume, dir, ctx) => {
        await run('umount', [join(dir, 'simple-0')]);
        await backend.unmount(volume, dir, ctx);
      },
    };
    let clock = Date.now();
    const store = await openStore(root, inner, [], { now: () => new Date(clock), releaseUnheldMs: 60_000 });
    await store.create('data', { size: '1m' });
    const dir = await store.mount('data', 'container');
    // docker run --mount ...,volume-subpath=simple-0: the container binds the disk's directory
    // only, and none of the volume's root.
    const bound = join(root, 'container-data');
    mkdirSync(bound);
    const holder = await inNamespace('private', [
      `mount --bind ${join(dir, 'simple-0')} ${bound} && umount -l ${dir}`,
    ]);
    clock += 61_000;
    expect(await store.releaseUnheld('data')).toBe(false);
    expect(mountedAt(join(dir, 'simple-0'))).toBe(true);
    await holder();
    expect(await store.releaseUnheld('data')).toBe(true);
    expect(mountedAt(dir)).toBe(false);
  });

  it('counts the quiet time of a volume from the reply to its Mount, however slow the mount was', async () => {
    const root = newRoot();
    const { backend } = tmpfsBackend();
    let clock = Date.now();
    const slow: VolumeBackend = {
      ...backend,
      mount: async (volume, dir, ctx) => {
        clock += 90_000; // a ZooKeeper slow to answer, a disk slow to open
        await backend.mount(volume, dir, ctx);
      },
    };
    const store = await openStore(root, slow, [], { now: () => new Date(clock), releaseUnheldMs: 60_000 });
    await store.create('slow', { size: '1m' });
    const dir = await store.mount('slow', 'container-starting');
    clock += 2_000;
    // Nothing holds it yet: its container starts only now that the Mount was answered.
    expect(await store.releaseUnheld('slow')).toBe(false);
    expect(mountedAt(dir)).toBe(true);
    await store.unmount('slow', 'container-starting');
  });

  it("keeps a volume's references while the engine mounts its container's other volumes", async () => {
    // The engine mounts a container's volumes one after another, and starts it after the last:
    // a slow later Mount must not use up the quiet time of the first.
    const root = newRoot();
    const { backend } = tmpfsBackend();
    let clock = Date.now();
    let opening: (() => void) | undefined;
    const slowOnce: VolumeBackend = {
      ...backend,
      mount: async (volume, dir, ctx) => {
        if (volume.name === 'second') await new Promise<void>((resolve) => (opening = resolve));
        await backend.mount(volume, dir, ctx);
      },
    };
    const store = await openStore(root, slowOnce, [], {
      now: () => new Date(clock),
      releaseUnheldMs: 60_000,
    });
    await store.create('first', { size: '1m' });
    await store.create('second', { size: '1m' });
    const dir = await store.mount('first', 'container');
    const second = store.mount('second', 'container');
    await waitUntil('the second Mount to start', () => opening !== undefined);
    clock += 61_000;
    expect(await store.releaseUnheld('first')).toBe(false);
    opening?.();
    await second;
    clock += 59_000;
    expect(await store.releaseUnheld('first')).toBe(false);
    expect(mountedAt(dir)).toBe(true);
    // Nothing started using either, and no Mount came since: the engine forgot them.
    clock += 2_000;
    expect(await store.releaseUnheld('first')).toBe(true);
    expect(await store.releaseUnheld('second')).toBe(true);
  });

  it('reports the mount point in Get, Path and List only while mounted', async () => {
    const root = newRoot();
    const { backend } = tmpfsBackend();
    const store = await openStore(root, backend);
    await store.create('a', { size: '1m' });
    await store.create('b', { size: '1m' });
    const dir = await store.mount('b', 'x');
    expect(await store.list()).toEqual([{ name: 'a' }, { name: 'b', mountpoint: dir }]);
    expect((await store.get('b')).mountpoint).toBe(dir);
    expect((await store.get('a')).mountpoint).toBeUndefined();
    expect(await store.path('b')).toBe(dir);
    await store.unmount('b', 'x');
  });

  it('keeps state in a 0600 file, secrets included, and out of Get', async () => {
    const root = newRoot();
    const { backend } = tmpfsBackend();
    const lines: string[] = [];
    const store = await openStore(root, backend, lines);
    await store.create('s', { size: '1m', auth: 'alice:pw-123' });
    const file = join(root, 'state', 'plugin-state.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toContain('alice:pw-123');
    expect(JSON.stringify(await store.get('s'))).not.toContain('pw-123');
    expect(store.secrets()).toEqual(['alice:pw-123']);
    expect(lines.join('\n')).not.toContain('pw-123');
  });

  it('leaves nothing behind when the backend fails to mount', async () => {
    const root = newRoot();
    const t = tmpfsBackend();
    const store = await openStore(root, t.backend);
    await store.create('f', { size: '1m' });
    t.failNext();
    await expect(store.mount('f', 'id1')).rejects.toThrow('backend refused to mount');
    expect((await store.get('f')).status.mounts).toBe(0);
    // The next attempt works and the engine's later Unmount of the failed ID is harmless.
    await store.mount('f', 'id2');
    await store.unmount('f', 'id1');
    expect((await store.get('f')).status.mounts).toBe(1);
    await store.unmount('f', 'id2');
  });

  it('after a restart keeps mounts in use, forgets holders of lost ones and takes down unused ones', async () => {
    const root = newRoot();
    const t = tmpfsBackend();
    const first = await openStore(root, t.backend);
    for (const name of ['kept', 'lost', 'stray', 'idle']) await first.create(name, { size: '1m' });
    const kept = await first.mount('kept', 'c1');
    const lost = await first.mount('lost', 'c2');
    await first.flush();
    // The plugin dies: its mounts stay, except one that is gone (a reboot, an umount by hand); one is
    // mounted by hand.
    execFileSync('umount', [lost]);
    const stray = join(root, 'volumes', 'stray');
    execFileSync('mkdir', ['-p', stray]);
    execFileSync('mount', ['-t', 'tmpfs', 'volkit-stray', stray]);

    const lines: string[] = [];
    const second = await openStore(root, t.backend, lines);
    const report = await second.startReconcile();
    expect(report).toEqual([
      { name: 'idle', action: 'none' },
      { name: 'kept', action: 'keep' },
      { name: 'lost', action: 'forget' },
      { name: 'stray', action: 'unmount' },
    ]);
    // No container can hold a mount that is gone: mounting it again would keep it mounted for
    // nobody, as the engine sends no Unmount for containers a reboot ended.
    expect([kept, lost].map(mountedAt)).toEqual([true, false]);
    expect(mountedAt(stray)).toBe(false);
    expect(t.calls.mount).toBe(2);
    expect(lines.some((l) => l.includes('forgot 1 mount reference(s)'))).toBe(true);
    expect((await second.get('lost')).status.mounts).toBe(0);

    // The references in use survived the restart: the container's Unmount releases its volume.
    await second.unmount('kept', 'c1');
    expect(mountedAt(kept)).toBe(false);
    // A Mount after the restart under the same ID (the engine reuses it) counts once, and one Unmount ends it.
    await second.mount('lost', 'c2');
    await second.unmount('lost', 'c2');
    expect(mountedAt(lost)).toBe(false);
  });

  it('removes a volume: unmounts what the engine forgot, removes the empty mount point, keeps data', async () => {
    const root = newRoot();
    const { backend } = tmpfsBackend();
    const lines: string[] = [];
    const store = await openStore(root, backend, lines);
    await store.create('r', { size: '1m' });
    const dir = await store.mount('r', 'forgotten');
    // Another engine's container (a mount namespace holding the mount): the removal would cut it off.
    const holder = await inNamespace('private');
    await expect(store.remove('r')).rejects.toThrow(
      "volume r is in use: 1 user(s) of its mount besides this engine's containers (another engine sharing this plugin, or a process inside it); not removed",
    );
    expect(mountedAt(dir)).toBe(true);
    expect((await store.get('r')).status.mounts).toBe(1);
    await holder();
    await store.remove('r');
    expect(mountedAt(dir)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    expect(lines.some((l) => l.includes('never released (forgotten)'))).toBe(true);
    await expect(store.get('r')).rejects.toThrow('no such volume: r');

    // A mount point holding files (not ours to delete) is left in place.
    await store.create('r2', { size: '1m' });
    const dir2 = join(root, 'volumes', 'r2');
    execFileSync('mkdir', ['-p', dir2]);
    writeFileSync(join(dir2, 'precious'), 'x');
    await store.remove('r2');
    expect(readFileSync(join(dir2, 'precious'), 'utf8')).toBe('x');
  });

  it('rejects Create with bad options and with different options for an existing name', async () => {
    const root = newRoot();
    const { backend } = tmpfsBackend();
    const store = await openStore(root, backend);
    await expect(store.create('v', {})).rejects.toThrow('missing option size');
    await store.create('v', { size: '1m' });
    await store.create('v', { size: '1m' });
    await expect(store.create('v', { size: '2m' })).rejects.toThrow('already exists with different options');
    await expect(store.mount('nope', 'x')).rejects.toThrow('no such volume: nope');
  });
});
