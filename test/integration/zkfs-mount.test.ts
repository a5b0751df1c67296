/**
 * zkfsctl mount and umount as an operator uses them: the daemon, readiness,
 * bounded failure, signals, credentials, read-only mounts, and refusals.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../src/adapters/processes.js';
import { daemonV8PoolSize } from '../../src/adapters/zkfs/daemon.js';
import { escapeMountPoint } from '../../src/adapters/zkfs/run-state.js';
import { ZkClient } from '../../src/adapters/zookeeper.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { missing, REPO_ROOT, scratchDir } from '../fixtures/environment.js';
import { freePort } from '../fixtures/ports.js';
import { startZkProxy } from '../fixtures/zk-proxy.js';
import type { ZkServer } from '../fixtures/zk-server.js';
import {
  eventually,
  fuseConnection,
  isMounted,
  mountStatus,
  mountZkfs,
  sees,
  startZkWithClient,
  tryMountZkfs,
  waitUntilOpen,
  zkfsctl,
  zkfsEnv,
  zkfsRunDir,
} from '../fixtures/zkfs-mount.js';

function recordFile(dir: string): string {
  return join(zkfsRunDir(), `${escapeMountPoint(dir)}.json`);
}

function daemonPid(dir: string): number {
  return (JSON.parse(readFileSync(recordFile(dir), 'utf8')) as { pid: number }).pid;
}

describe.skipIf(missing({ fuse: true }))('zkfsctl mount and umount', () => {
  let zk: ZkServer;
  let client: ZkClient;

  beforeAll(async () => {
    ({ zk, client } = await startZkWithClient());
  });

  it('returns once the mount is live, creates PATH, serves it, and unmounts cleanly', async () => {
    const m = await mountZkfs(zk.connectString, '/life/app');
    // Usable on the very next line, no waiting.
    expect(await m.ok('echo hi > greeting && cat greeting')).toBe('hi\n');
    expect((await client.getData('/life/app/greeting')).data.toString()).toBe('hi\n');
    const table = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.includes(` ${m.dir} `));
    expect(table).toMatch(/ - fuse\.zkfs zkfs:\/life\/app /);
    const df = await m.ok('df -P .');
    expect(df).toMatch(/zkfs:\/life\/app\s+\d+\s+\d+\s+\d+/);
    const pid = daemonPid(m.dir);
    expect(isProcessAlive(pid)).toBe(true);
    // V8's background work (compiling, helping the collector) takes a thread per four CPUs, not
    // four: it competes with the programs using the mount.
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    expect(argv).toContain(`--v8-pool-size=${daemonV8PoolSize(availableParallelism())}`);
    expect(argv).toContain('--no-turbo-inlining');
    expect(argv).toContain('--max-semi-space-size=4');
    const r = await m.unmount();
    expect(r?.exitCode).toBe(0);
    expect(r?.stdout).toContain(`unmounted ${m.dir}`);
    expect(isMounted(m.dir)).toBe(false);
    expect(isProcessAlive(pid)).toBe(false);
    expect(existsSync(recordFile(m.dir))).toBe(false);
    expect(m.log()).toMatch(/mounted .*\/life\/app/);
  });

  it('serves the same with /dev/fuse read on the thread pool, the fallback where the event loop cannot poll it', async () => {
    const m = await mountZkfs(zk.connectString, '/life/pool', { env: { VOLKIT_FUSE_READER: 'thread-pool' } });
    await m.ok('mkdir -p a/b && for i in $(seq 1 50); do echo "n $i" > a/b/f$i; done && mv a/b a/c');
    expect(await m.ok('cat a/c/f7 a/c/f50; ls a/c | wc -l')).toBe('n 7\nn 50\n50\n');
    await client.setData('/life/pool/a/c/f1', Buffer.from('changed\n'), -1);
    await sees(m, 'cat a/c/f1', 'changed\n');
    expect(m.log()).toContain('reading /dev/fuse on the thread pool');
    expect((await m.unmount())?.exitCode).toBe(0);
    expect(isMounted(m.dir)).toBe(false);
  });

  it('serves the same with requests read in JavaScript on the event loop, where the native reader is missing', async () => {
    const m = await mountZkfs(zk.connectString, '/life/loop', { env: { VOLKIT_FUSE_READER: 'event-loop' } });
    await m.ok('mkdir -p a/b && for i in $(seq 1 50); do echo "n $i" > a/b/f$i; done && mv a/b a/c');
    for (let pass = 0; pass < 3; pass++)
      expect(await m.ok('cat a/c/f7 a/c/f50; ls a/c | wc -l')).toBe('n 7\nn 50\n50\n');
    await client.setData('/life/loop/a/c/f7', Buffer.from('changed\n'), -1);
    await sees(m, 'cat a/c/f7', 'changed\n');
    const status = JSON.parse((await zkfsctl(['--json', 'status', m.dir])).stdout);
    expect(status.reader).toEqual({ kind: 'event-loop', opens: 0, releases: 0, xattrs: 0, ringQueues: 0 });
    expect(status.operations.byName.open).toBeGreaterThanOrEqual(7);
    expect((await m.unmount())?.exitCode).toBe(0);
    expect(isMounted(m.dir)).toBe(false);
  });

  it('fails within the connect timeout when ZooKeeper is unreachable, leaving nothing behind', async () => {
    const port = await freePort();
    const started = Date.now();
    const { result: r, dir } = await tryMountZkfs(`127.0.0.1:${port}`, '/x', {
      args: ['--connect-timeout', '2'],
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`could not connect to ZooKeeper at 127.0.0.1:${port} within 2 s`);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(isMounted(dir)).toBe(false);
  });

  it('refuses bad input with exit 2 and a message naming it', async () => {
    const dir = scratchDir('zkfs-bad');
    const cases: [string[], RegExp][] = [
      [['mount', 'localhost', '/x', dir], /ports are required/],
      [['mount', zk.connectString, 'x', dir], /must start with \//],
      [['mount', zk.connectString, '/x', dir, '--mode', 'tree'], /--mode 'tree'/],
      [['mount', zk.connectString, '/x', join(dir, 'missing')], /does not exist/],
      [['mount', zk.connectString, '/x', dir, '-o', 'exec'], /-o exec is not supported/],
      [['mount', zk.connectString, '/x', dir, '--max-file-size', '2M'], /out of range/],
      [['mount', zk.connectString, '/x', dir, '--busy-poll', '-5'], /--busy-poll '-5'/],
      [
        ['mount', zk.connectString, '/x', dir, '--connect-timeout', 'soon'],
        /--connect-timeout 'soon' is not/,
      ],
      [['mount', zk.connectString, '/x', dir, '--auth', 'nocolon'], /: --auth must be user:password/],
    ];
    for (const [args, message] of cases) {
      const r = await zkfsctl(args);
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(isMounted(dir)).toBe(false);
  });

  it('says which log file it cannot write, quickly, and mounts nothing', async () => {
    const dir = scratchDir('zkfs-log-file');
    const logDir = scratchDir('zkfs-log-dir');
    for (const [logFile, foreground] of [
      [logDir, false],
      [logDir, true],
      // Node 20's recursive mkdir spins for ever under /proc.
      ['/proc/volkit-no-such/zk.log', false],
    ] as const) {
      const args = ['mount', zk.connectString, '/x', dir, '--log-file', logFile];
      const r = await zkfsctl(foreground ? [...args, '--foreground'] : args);
      expect(r.exitCode, args.join(' ')).toBe(1);
      expect(r.stderr.trim()).toMatch(
        new RegExp(
          `^zkfsctl: cannot write the log file ${logFile} \\(E[A-Z]+: .*\\); give --log-file a file you can write$`,
        ),
      );
      expect(isMounted(dir)).toBe(false);
    }
  });

  it('refuses to mount twice, to unmount what is not a zkfs mount, and to unmount nothing', async () => {
    const m = await mountZkfs(zk.connectString, '/twice');
    const again = await zkfsctl(['mount', zk.connectString, '/twice', m.dir]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain('already a mount point');
    const tmpfs = scratchDir('zkfs-tmpfs');
    await execa('mount', ['-t', 'tmpfs', 'volkit-test', tmpfs]);
    try {
      const r = await zkfsctl(['umount', tmpfs]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain('is not a ZooKeeper mount');
      expect(isMounted(tmpfs)).toBe(true);
    } finally {
      await execa('umount', [tmpfs]);
    }
    await m.unmount();
    const r = await zkfsctl(['umount', m.dir]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('is not mounted');
  });

  it("does not take another process that has a dead daemon's pid now for the daemon", async () => {
    // A restarted managed plugin's pid namespace hands out the same small pids again, and its run
    // records outlive it.
    const m = await mountZkfs(zk.connectString, '/reused');
    const record = JSON.parse(readFileSync(recordFile(m.dir), 'utf8')) as { pid: number };
    process.kill(record.pid, 'SIGKILL');
    await eventually(async () => !isProcessAlive(record.pid), 'the daemon dies');
    const other = execa('sleep', ['60'], { reject: false });
    // Had the other process been another mount's daemon, this would be its status socket.
    const othersSocket = join(zkfsRunDir(), `zkfsctl-${other.pid}.sock`);
    const listening = createServer();
    await new Promise<void>((resolve) => listening.listen(othersSocket, resolve));
    try {
      writeFileSync(recordFile(m.dir), JSON.stringify({ ...record, pid: other.pid }));
      const status = await zkfsctl(['status', m.dir]);
      expect(status.exitCode).toBe(1);
      expect(status.stderr).toContain(`(pid ${other.pid}) is not running`); // was "does not answer"
      const started = Date.now();
      const r = await zkfsctl(['umount', m.dir]);
      expect(r.exitCode, r.stderr).toBe(0); // waited 30 s for the other process, then failed
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(isMounted(m.dir)).toBe(false);
      expect(isProcessAlive(other.pid!)).toBe(true);
      expect(existsSync(othersSocket)).toBe(true);
    } finally {
      listening.close();
      other.kill();
    }
  });

  it('refuses a busy unmount, then detaches with --lazy and lets the daemon finish', async () => {
    const m = await mountZkfs(zk.connectString, '/busy');
    await m.ok('echo x > f');
    const pid = daemonPid(m.dir);
    const holder = execa('bash', ['-c', 'exec 3<f; read -r _'], { cwd: m.dir, stdin: 'pipe', reject: false });
    await waitUntilOpen(holder.pid!, join(m.dir, 'f'));
    const busy = await zkfsctl(['umount', m.dir]);
    expect(busy.exitCode).toBe(1);
    expect(busy.stderr).toContain('is busy');
    expect(isMounted(m.dir)).toBe(true);
    const lazy = await zkfsctl(['umount', '--lazy', m.dir]);
    expect(lazy.exitCode).toBe(0);
    expect(isMounted(m.dir)).toBe(false);
    holder.stdin?.end('\n');
    await holder;
    await eventually(async () => !isProcessAlive(pid), 'the daemon exits once the last file is closed');
  });

  it.each(['SIGTERM', 'SIGHUP'] as const)('unmounts on %s to the daemon', async (signal) => {
    const path = `/term-${signal}`;
    const m = await mountZkfs(zk.connectString, path);
    await m.ok('printf kept > f');
    const pid = daemonPid(m.dir);
    // The daemon keeps no directory of its caller busy.
    expect(readlinkSync(`/proc/${pid}/cwd`)).toBe('/');
    process.kill(pid, signal);
    await eventually(
      async () => !isProcessAlive(pid) && !isMounted(m.dir),
      'daemon exits and the mount is gone',
    );
    expect((await client.getData(`${path}/f`)).data.toString()).toBe('kept');
    expect(m.log()).toContain('stopping: unmounting');
  });

  /** A bash holding `f` open for writing in `dir` (fd 7): writes `one`, then per line of input the next word. */
  const startHolder = async (dir: string) => {
    const holder = execa(
      'bash',
      [
        '-c',
        'exec 7>f && echo one >&7 && read && echo two >&7 && read && echo three >&7 && exec 7>&- && echo closed',
      ],
      { cwd: dir, stdin: 'pipe', reject: false },
    );
    await waitUntilOpen(holder.pid!, join(dir, 'f'));
    return { holder }; // not the process itself: awaiting it would wait for it to end
  };

  it('on SIGTERM with a file open for writing, serves it until it is closed, then exits', async () => {
    const m = await mountZkfs(zk.connectString, '/term-open');
    const pid = daemonPid(m.dir);
    const { holder } = await startHolder(m.dir);
    process.kill(pid, 'SIGTERM');
    await eventually(async () => !isMounted(m.dir), 'the busy mount is detached');
    expect(isProcessAlive(pid)).toBe(true);
    // Serving for a while (it looks every 100 ms) leaves nothing piling up behind.
    await new Promise((r) => setTimeout(r, 1500));
    holder.stdin?.write('\n');
    holder.stdin?.end('\n');
    const r = await holder;
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('closed');
    await eventually(async () => !isProcessAlive(pid), 'the daemon exits once the file is closed');
    expect((await client.getData('/term-open/f')).data.toString()).toBe('one\ntwo\nthree\n');
    expect(m.log()).toContain('detaching it lazily');
    expect(m.log()).not.toMatch(/MaxListenersExceeded|memory leak/);
  });

  it('on a second SIGTERM stops serving open files at once, with what they hold written back', async () => {
    const m = await mountZkfs(zk.connectString, '/term-twice');
    const pid = daemonPid(m.dir);
    const { holder } = await startHolder(m.dir);
    process.kill(pid, 'SIGTERM');
    await eventually(async () => !isMounted(m.dir), 'the busy mount is detached');
    holder.stdin?.write('\n');
    await eventually(
      async () => (await client.getData('/term-twice/f').catch(() => undefined)) !== undefined,
      'the file exists',
    );
    // `two` reaches the daemon before the second signal: the write returns only once it has.
    await new Promise((r) => setTimeout(r, 500));
    process.kill(pid, 'SIGTERM');
    await eventually(async () => !isProcessAlive(pid), 'the daemon exits at once', 10_000);
    expect((await client.getData('/term-twice/f')).data.toString()).toBe('one\ntwo\n');
    holder.stdin?.end('\n');
    const r = await holder;
    expect(r.stderr).toContain('Transport endpoint is not connected');
    expect(m.log()).toContain('still open: writing back what they hold');
  });

  it('when its FUSE connection is aborted, writes back open files, unmounts the dead mount and exits', async () => {
    const m = await mountZkfs(zk.connectString, '/aborted');
    const pid = daemonPid(m.dir);
    const { holder } = await startHolder(m.dir);
    // What `echo 1 > .../abort` does by hand (or the kernel, when the daemon cannot go on).
    writeFileSync(`/sys/fs/fuse/connections/${await fuseConnection(m.dir)}/abort`, '1');
    await eventually(async () => !isProcessAlive(pid), 'the daemon exits');
    expect(isMounted(m.dir)).toBe(false);
    expect(existsSync(recordFile(m.dir))).toBe(false);
    // What the program had written before the abort is in ZooKeeper; its next write fails.
    expect((await client.getData('/aborted/f')).data.toString()).toBe('one\n');
    holder.stdin?.end('\n\n');
    const r = await holder;
    expect(r.stderr).toMatch(/Transport endpoint is not connected|Software caused connection abort/);
    expect(m.log()).toMatch(/the FUSE connection of .* ended while it was mounted/);
    expect(m.log()).toContain('1 file(s) still open: writing back what they hold');
    // No dead mount is left behind (it would answer ENOTCONN): the empty directory under it shows.
    expect(readdirSync(m.dir)).toEqual([]);
  });

  it('serves in the foreground until SIGINT', async () => {
    const dir = scratchDir('zkfs-fg');
    const child = execa(
      join(REPO_ROOT, 'bin/zkfsctl'),
      ['--log-level', 'info', 'mount', '--foreground', zk.connectString, '/fg', dir],
      { reject: false, env: { ZKFSCTL_RUN_DIR: zkfsRunDir() } },
    );
    await eventually(async () => isMounted(dir), 'foreground mount appears');
    const ls = await execa('bash', ['-c', 'echo fg > f && cat f'], { cwd: dir });
    expect(ls.stdout).toBe('fg');
    child.kill('SIGINT');
    const r = await child;
    expect(r.exitCode).toBe(0);
    expect(isMounted(dir)).toBe(false);
    expect(String(r.stderr)).toContain('stopping');
  });

  it('authenticates with digest credentials from standard input, never exposing them', async () => {
    const id = `bob:${createHash('sha1').update('bob:pw-Secret9').digest('base64')}`;
    await client.create('/locked', Buffer.alloc(0), { acl: [{ perms: 31, scheme: 'digest', id }] });
    // Without credentials the mount cannot even list the path.
    const { result: denied } = await tryMountZkfs(zk.connectString, '/locked');
    expect(denied.exitCode).toBe(1);
    expect(denied.stderr).toContain('refused');
    const m = await mountZkfs(zk.connectString, '/locked', {
      args: ['--auth-file', '-'],
      input: 'bob:pw-Secret9\n',
    });
    await m.ok('mkdir sub && printf secret > sub/f');
    expect(await m.ok('cat sub/f')).toBe('secret');
    // New nodes inherit their parent's ACL, so they are not world-readable.
    const bob = await ZkClient.connect({
      connectString: zk.connectString,
      auth: { user: 'bob', password: 'pw-Secret9' },
    });
    try {
      expect((await bob.getAcl('/locked/sub/f')).acl).toEqual([{ perms: 31, scheme: 'digest', id }]);
    } finally {
      await bob.close();
    }
    await expect(client.getData('/locked/sub/f')).rejects.toThrow(/NO_AUTH/);
    const pid = daemonPid(m.dir);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).not.toContain('pw-Secret9');
    expect(readFileSync(`/proc/${pid}/environ`, 'utf8')).not.toContain('pw-Secret9');
    expect(m.log()).not.toContain('pw-Secret9');
  });

  it('reads credentials from the first line of --auth-file, warns when others can read it, names one it cannot read', async () => {
    const id = `carol:${createHash('sha1').update('carol:pw-File7').digest('base64')}`;
    await client.create('/locked-file', Buffer.alloc(0), { acl: [{ perms: 31, scheme: 'digest', id }] });
    const files = scratchDir('zkfs-auth');
    const shared = join(files, 'shared.auth');
    writeFileSync(shared, 'carol:pw-File7\nnot read\n', { mode: 0o644 });
    const open = await mountZkfs(zk.connectString, '/locked-file', { args: ['--auth-file', shared] });
    expect(open.stderr).toContain(
      `--auth-file ${shared} is accessible by group or others (mode 644); chmod 600 it`,
    );
    await open.ok('printf one > f');
    expect(await open.ok('cat f')).toBe('one');
    await open.unmount();

    const private_ = join(files, 'private.auth');
    writeFileSync(private_, 'carol:pw-File7\n', { mode: 0o600 });
    const quiet = await mountZkfs(zk.connectString, '/locked-file', { args: ['--auth-file', private_] });
    expect(quiet.stderr).not.toContain('--auth-file');
    expect(await quiet.ok('cat f')).toBe('one');
    expect(quiet.log()).not.toContain('pw-File7');
    await quiet.unmount();

    const missingFile = join(files, 'missing.auth');
    const { result: r, dir } = await tryMountZkfs(zk.connectString, '/locked-file', {
      args: ['--auth-file', missingFile],
    });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`--auth-file ${missingFile} does not exist`);
    expect(isMounted(dir)).toBe(false);

    const noColon = join(files, 'nocolon.auth');
    writeFileSync(noColon, 'alice\n', { mode: 0o600 });
    const bad = await tryMountZkfs(zk.connectString, '/locked-file', { args: ['--auth-file', noColon] });
    expect(bad.result.exitCode).toBe(2);
    expect(bad.result.stderr).toContain(
      `the first line of --auth-file ${noColon} must be user:password (digest scheme)`,
    );
  });

  it('maps ACL refusals to EACCES', async () => {
    await client.create('/acl', Buffer.alloc(0));
    await client.create('/acl/ro', Buffer.from('r'), { acl: [{ perms: 1, scheme: 'world', id: 'anyone' }] });
    const m = await mountZkfs(zk.connectString, '/acl');
    for (const script of ['echo x > ro', 'echo x >> ro', 'truncate -s 0 ro']) {
      const r = await m.sh(script);
      expect(r.exitCode, script).not.toBe(0);
      expect(r.stderr, script).toContain('Permission denied');
    }
    expect((await client.getData('/acl/ro')).data.toString()).toBe('r');
    expect(await m.ok('cat ro')).toBe('r');
  });

  it('refuses every change on a read-only mount with EROFS', async () => {
    await client.create('/ro', Buffer.alloc(0));
    await client.create('/ro/f', Buffer.from('old'));
    const m = await mountZkfs(zk.connectString, '/ro', { args: ['--read-only'] });
    expect(await m.ok('cat f')).toBe('old');
    for (const script of ['echo x > f', 'mkdir d', 'rm f', 'touch g', 'mv f g', 'ln -s f l', 'chmod 600 f']) {
      const r = await m.sh(script);
      expect(r.exitCode, script).not.toBe(0);
      expect(r.stderr, script).toContain('Read-only file system');
    }
    expect((await client.getData('/ro/f')).data.toString()).toBe('old');
  });

  it('shows --uid, --gid and --umask for nodes with nothing stored, and lets others in only with -o allow_other', async () => {
    // Run as nobody from inside the mount (the scratch root above it is 0700).
    const asNobody = (dir: string, script: string) =>
      execa('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'sh', '-c', script], {
        cwd: dir,
        reject: false,
      });
    await client.create('/owners', Buffer.alloc(0));
    await client.create('/owners/f', Buffer.from('readable'));
    const m = await mountZkfs(zk.connectString, '/owners', {
      args: ['--uid', '1234', '--gid', '5678', '--umask', '027'],
    });
    expect(await m.ok('stat -c "%u %g %a" f .')).toBe('1234 5678 640\n1234 5678 750\n');

    await client.create('/open', Buffer.alloc(0));
    await client.create('/open/f', Buffer.from('for everyone'));
    const own = await mountZkfs(zk.connectString, '/open');
    expect(await own.ok('stat -c %a f')).toBe('644\n');
    const denied = await asNobody(own.dir, 'cat f');
    expect(denied.exitCode).not.toBe(0);
    expect(String(denied.stderr)).toContain('Permission denied');
    // allow_root lets in root and the user who mounted, who is root: nobody else.
    const rootOnly = await mountZkfs(zk.connectString, '/open', { args: ['-o', 'allow_root'] });
    expect(await rootOnly.ok('cat f')).toBe('for everyone');
    expect(String((await asNobody(rootOnly.dir, 'cat f')).stderr)).toContain('Permission denied');
    const shared = await mountZkfs(zk.connectString, '/open', { args: ['-o', 'allow_other'] });
    expect(String((await asNobody(shared.dir, 'cat f')).stdout)).toBe('for everyone');
    // Modes still apply to other users (default_permissions): f is 0644 and root's.
    expect(String((await asNobody(shared.dir, 'echo x > f')).stderr)).toContain('Permission denied');
  });

  it('lets only one of two mounts started together at one DIR through', async () => {
    const dir = scratchDir('zkfs-mnt');
    const logs = scratchDir('zkfs-log');
    // A slow ensemble: each mount has checked DIR long before its session is up.
    const proxy = await startZkProxy(zk.clientPorts[0] as number);
    proxy.holdReplies();
    const mounting = Promise.all(
      [1, 2].map((n) =>
        zkfsctl(['mount', proxy.connectString, `/together${n}`, dir, '--log-file', join(logs, `d${n}.log`)]),
      ),
    );
    await new Promise((r) => setTimeout(r, 2000));
    proxy.releaseReplies();
    const results = await mounting;
    if (isMounted(dir)) onCleanup(`mount ${dir}`, async () => void (await zkfsctl(['umount', dir])));
    expect(results.map((r) => r.exitCode).sort()).toEqual([0, 1]);
    expect(results.find((r) => r.exitCode === 1)?.stderr).toMatch(
      new RegExp(`${dir} (is being mounted by another zkfsctl|is already a mount point)`),
    );
    // One mount there, not one stacked on another.
    expect(
      readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.includes(` ${dir} `)),
    ).toHaveLength(1);
  });

  it('stops the daemon it started when interrupted before the mount is live: nothing gets mounted', async () => {
    const dir = scratchDir('zkfs-mnt');
    const log = join(scratchDir('zkfs-log'), 'daemon.log');
    const proxy = await startZkProxy(zk.clientPorts[0] as number);
    proxy.holdReplies(); // a slow ensemble: the mount is still coming up when Ctrl-C is pressed
    const command = execa(
      join(REPO_ROOT, 'bin/zkfsctl'),
      ['mount', proxy.connectString, '/interrupted', dir, '--log-file', log],
      {
        env: zkfsEnv(),
        reject: false,
      },
    );
    const daemons = () =>
      readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return (
              readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`\0--foreground\0`) &&
              readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(`\0${dir}`)
            );
          } catch {
            return false;
          }
        });
    await eventually(async () => daemons().length > 0, 'the daemon started');
    await new Promise((resolve) => setTimeout(resolve, 500));
    command.kill('SIGINT');
    const r = await command;
    expect(r.exitCode).toBe(1);
    expect(String(r.stderr)).toContain('interrupted before the mount was live; its daemon was stopped');
    proxy.releaseReplies();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(isMounted(dir)).toBe(false);
    expect(daemons()).toEqual([]);
  });

  it('lets Ctrl-C stop a program that waits for a lost connection to read, and serves it once back', async () => {
    await client.create('/waiting', Buffer.alloc(0));
    await client.create('/waiting/unread', Buffer.from('still here\n'));
    const proxy = await startZkProxy(zk.clientPorts[0] as number);
    const m = await mountZkfs(proxy.connectString, '/waiting', { args: ['--reconnect-timeout', '60'] });
    proxy.refuse();
    await eventually(
      async () => (await mountStatus(m.dir)).session.state === 'disconnected',
      'the connection lost',
    );
    // Nothing of the tree is in memory yet: cat waits for the connection, up to 60 s.
    for (const signal of ['SIGINT', 'SIGKILL'] as const) {
      const reader = execa('cat', [join(m.dir, 'unread')], { reject: false });
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const started = Date.now();
      reader.kill(signal);
      const r = await reader;
      expect(Date.now() - started, signal).toBeLessThan(3000);
      expect(r.signal).toBe(signal);
    }
    proxy.accept();
    expect(await m.ok('cat unread')).toBe('still here\n');
    await m.unmount();
  });

  it('lets Ctrl-C stop a program whose read a silent server leaves unanswered, before the connection is given up', async () => {
    await client.create('/silent', Buffer.alloc(0));
    await client.create('/silent/unread', Buffer.from('here\n'));
    const proxy = await startZkProxy(zk.clientPorts[0] as number);
    const m = await mountZkfs(proxy.connectString, '/silent', { args: ['--reconnect-timeout', '60'] });
    // The server takes requests and answers none: the connection counts as up for 20 s more.
    proxy.holdReplies();
    const reader = execa('cat', [join(m.dir, 'unread')], { reject: false });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const started = Date.now();
    reader.kill('SIGINT');
    const r = await reader;
    expect(Date.now() - started).toBeLessThan(1500);
    expect(r.signal).toBe('SIGINT');
    proxy.releaseReplies();
    expect(await m.ok('cat unread')).toBe('here\n');
    await m.unmount();
  });

  it('refuses a missing PATH with --no-create', async () => {
    const { result: r } = await tryMountZkfs(zk.connectString, '/nope', { args: ['--no-create'] });
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('ZooKeeper path /nope does not exist');
    expect(await client.exists('/nope')).toBeNull();
  });
});
