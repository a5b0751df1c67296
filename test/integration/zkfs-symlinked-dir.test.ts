/**
 * zkfsctl mount, umount and status given a mount point spelled through a
 * symbolic link (a link to it, or to a directory above it, as /var/run is
 * /run). The kernel mounts at the real path and lists that one in the mount
 * table, so every spelling must reach the same mount.
 */
import { mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../src/adapters/processes.js';
import { escapeMountPoint } from '../../src/adapters/zkfs/run-state.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import type { ZkServer } from '../fixtures/zk-server.js';
import { daemonPid, eventually, isMounted, startZkWithClient, zkfsctl } from '../fixtures/zkfs-mount.js';

/** How many mounts the kernel lists at `dir` (read from the mount table, never the path). */
function mountsAt(dir: string): number {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => (line.split(' ')[4] ?? '') === dir).length;
}

/** A real directory `real` and spellings of it through links: `link` to it, and `up/real` via a link to its parent. */
function spellings(): { real: string; link: string; viaParent: string } {
  const parent = scratchDir('zkfs-links');
  const real = join(parent, 'real');
  mkdirSync(real);
  symlinkSync(real, join(parent, 'link'));
  symlinkSync(parent, join(parent, 'up'));
  return { real, link: join(parent, 'link'), viaParent: join(parent, 'up', 'real') };
}

/** Unmounts whatever is still mounted at `real` after the file, however many times. */
function unmountAtCleanup(real: string): void {
  onCleanup(`zkfs mounts at ${real}`, async () => {
    while (isMounted(real)) {
      const r = await zkfsctl(['umount', real]);
      if (r.exitCode !== 0) await execa('fusermount', ['-uz', real], { reject: false });
    }
  });
}

// The daemon looks for its own mount in the table twice a second; a wrong spelling shows within that.
const settle = () => new Promise((r) => setTimeout(r, 1500));

describe.skipIf(missing({ fuse: true }))('zkfsctl with a mount point spelled through a symbolic link', () => {
  let zk: ZkServer;

  beforeAll(async () => {
    ({ zk } = await startZkWithClient());
  });

  it.each([
    ['a link to the mount point', 'link'],
    ['a link to a directory above it', 'viaParent'],
  ] as const)(
    'mounted through %s, it stays live, and status and umount reach it by its real path',
    async (_, spelling) => {
      const paths = spellings();
      const logFile = join(scratchDir('zkfs-log'), 'daemon.log');
      const mounted = await zkfsctl([
        '--json',
        'mount',
        zk.connectString,
        `/linked-${spelling}`,
        paths[spelling],
        '--log-file',
        logFile,
      ]);
      unmountAtCleanup(paths.real);
      expect(mounted.exitCode, mounted.stderr).toBe(0);
      await settle();
      // Written through the spelling that mounted it, read back through the real path.
      const io = await execa(
        'bash',
        ['-c', 'cd "$1" && echo hi > f && cat "$2/f"', 'bash', paths[spelling], paths.real],
        { reject: false },
      );
      expect(`${io.stderr}${io.stdout}`).toBe('hi');
      expect(JSON.parse(mounted.stdout).dir).toBe(paths.real);
      const pid = daemonPid(paths.real);
      expect(isProcessAlive(pid)).toBe(true);
      const status = await zkfsctl(['--json', 'status', paths.real]);
      expect(status.exitCode, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout).pid).toBe(pid);
      const gone = await zkfsctl(['umount', paths.real]);
      expect(gone.exitCode, gone.stderr).toBe(0);
      expect(isMounted(paths.real)).toBe(false);
      expect(isProcessAlive(pid)).toBe(false);
    },
  );

  it('mounted at the real path, status and umount reach it through a link, and a second mount through it is refused', async () => {
    const paths = spellings();
    const logFile = join(scratchDir('zkfs-log'), 'daemon.log');
    const first = await zkfsctl([
      'mount',
      zk.connectString,
      '/linked-real',
      paths.real,
      '--log-file',
      logFile,
    ]);
    unmountAtCleanup(paths.real);
    expect(first.exitCode, first.stderr).toBe(0);
    const pid = daemonPid(paths.real);

    const status = await zkfsctl(['--json', 'status', paths.link]);
    expect(status.exitCode, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).pid).toBe(pid);

    const second = await zkfsctl(['mount', zk.connectString, '/linked-real', paths.viaParent]);
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toContain(`${paths.viaParent} (${paths.real}) is already a mount point`);
    await settle();
    expect(mountsAt(paths.real)).toBe(1);
    const io = await execa('bash', ['-c', 'echo still > f && cat f'], { cwd: paths.real, reject: false });
    expect(io.stdout).toBe('still');

    const gone = await zkfsctl(['umount', paths.link]);
    expect(gone.exitCode, gone.stderr).toBe(0);
    expect(gone.stdout).toContain(`unmounted ${paths.real}`);
    expect(isMounted(paths.real)).toBe(false);
    expect(isProcessAlive(pid)).toBe(false);

    const again = await zkfsctl(['umount', paths.link]);
    expect(again.exitCode).toBe(1);
    expect(again.stderr).toContain(`${paths.link} (${paths.real}) is not mounted`);
  });

  it('refuses a log file that a link puts inside the mount point', async () => {
    const paths = spellings();
    const r = await zkfsctl([
      'mount',
      zk.connectString,
      '/linked-log',
      paths.real,
      '--log-file',
      join(paths.link, 'daemon.log'),
    ]);
    unmountAtCleanup(paths.real);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain('cannot be inside the mount point');
    expect(isMounted(paths.real)).toBe(false);
  });

  it('names the default log after the real mount point, whichever spelling mounted it', async () => {
    const paths = spellings();
    const expected = `/var/log/zkfsctl/${escapeMountPoint(paths.real)}.log`;
    for (const dir of [paths.real, paths.link]) {
      const log = `/var/log/zkfsctl/${escapeMountPoint(dir)}.log`;
      onCleanup(`default log ${log}`, () => rmSync(log, { force: true }));
    }
    const r = await zkfsctl(['--json', 'mount', zk.connectString, '/linked-default-log', paths.link]);
    unmountAtCleanup(paths.real);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).logFile).toBe(expected);
    expect(readFileSync(expected, 'utf8')).toContain(`at ${paths.real}`);
  });

  it('asks a hung daemon for its status and gives up, when its mount point is given with a trailing slash', async () => {
    const paths = spellings();
    const logFile = join(scratchDir('zkfs-log'), 'daemon.log');
    const r = await zkfsctl(['mount', zk.connectString, '/linked-hung', paths.real, '--log-file', logFile]);
    unmountAtCleanup(paths.real);
    expect(r.exitCode, r.stderr).toBe(0);
    const pid = daemonPid(paths.real);
    // Reading the mount point itself would wait for the stopped daemon for ever, and the test with it.
    process.kill(pid, 'SIGSTOP');
    onCleanup(`SIGCONT ${pid}`, () => {
      if (isProcessAlive(pid)) process.kill(pid, 'SIGCONT');
    });
    try {
      for (const dir of [`${paths.real}/`, `${paths.link}/`]) {
        const status = await zkfsctl(['status', dir], { timeoutMs: 20_000 });
        expect(status.exitCode, dir).toBe(1);
        expect(status.stderr).toContain(`(pid ${pid}) does not answer`);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await eventually(
      async () => (await zkfsctl(['status', paths.real])).exitCode === 0,
      'the daemon answers',
    );
  });
});
