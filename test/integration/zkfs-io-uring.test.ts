/**
 * FUSE over io_uring (src/native/fuse-ring.c) on real mounts: requests come
 * on a queue per CPU where the kernel offers it (bin/setup-host turns the
 * fuse module's enable_uring on), the native answers still happen there,
 * more requests than a queue's entries wait their turn rather than stall,
 * and --no-io-uring reads /dev/fuse as before.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { isProcessAlive } from '../../src/adapters/processes.js';
import type { ZkClient } from '../../src/adapters/zookeeper.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { missing } from '../fixtures/environment.js';
import type { ZkServer } from '../fixtures/zk-server.js';
import {
  daemonPid,
  eventually,
  fuseConnection,
  isMounted,
  mountStatus,
  mountZkfs,
  startZkWithClient,
  waitUntilOpen,
  type ZkfsMount,
  zkfsctl,
} from '../fixtures/zkfs-mount.js';

const ENABLE_URING = '/sys/module/fuse/parameters/enable_uring';
/** 2: io_uring_setup refuses every process (Linux 6.6 and later). */
const IO_URING_DISABLED = '/proc/sys/kernel/io_uring_disabled';

/** Why this kernel cannot take FUSE requests over io_uring, if it cannot (an error under CI). */
function uringMissing(): string | undefined {
  const fuse = missing({ fuse: true });
  if (fuse) return fuse;
  if (existsSync(ENABLE_URING) && readFileSync(ENABLE_URING, 'utf8').trim() === 'Y') return undefined;
  const reason = existsSync(ENABLE_URING)
    ? `${ENABLE_URING} is not Y (bin/setup-host sets it)`
    : 'this kernel has no FUSE over io_uring (Linux 6.14 and later)';
  if (process.env.CI) throw new Error(`this machine cannot run the io_uring tests under CI: ${reason}`);
  return reason;
}

/** The queues the kernel makes: one per CPU it may ever run (/sys/devices/system/cpu/possible, e.g. 0-1). */
function possibleCpus(): number {
  return readFileSync('/sys/devices/system/cpu/possible', 'utf8')
    .trim()
    .split(',')
    .reduce((sum, range) => {
      const [first, last = first] = range.split('-').map(Number);
      return sum + (last as number) - (first as number) + 1;
    }, 0);
}

async function ringQueues(m: ZkfsMount): Promise<number | undefined> {
  return (await mountStatus(m.dir)).reader?.ringQueues;
}

const files = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => `${prefix} ${i + 1}\n`).join('');

describe.skipIf(uringMissing())('zkfs over io_uring', () => {
  let zk: ZkServer;
  let client: ZkClient;

  beforeAll(async () => {
    ({ zk, client } = await startZkWithClient());
    await client.create('/uring', Buffer.alloc(0));
  });

  it('takes requests on a queue per CPU, and still answers re-opens without JavaScript', async () => {
    const m = await mountZkfs(zk.connectString, '/uring/walk');
    expect(await ringQueues(m)).toBe(possibleCpus());
    await m.ok('mkdir d && for i in $(seq 1 40); do echo "file $i" > d/f$i; done');
    const walk = 'for i in $(seq 1 40); do cat d/f$i; done';
    for (let pass = 0; pass < 3; pass++) expect(await m.ok(walk)).toBe(files('file', 40));
    const { reader } = await mountStatus(m.dir);
    expect(reader?.opens).toBeGreaterThanOrEqual(40);
    expect((await zkfsctl(['status', m.dir])).stdout).toMatch(
      new RegExp(
        `reader\\s+native: .* answered without JavaScript, requests over io_uring \\(${possibleCpus()} queues?, at idle priority`,
      ),
    );
    // A change made elsewhere still reaches a file the queues answer opens of.
    await client.setData('/uring/walk/d/f7', Buffer.from('changed elsewhere\n'), -1);
    await expect.poll(() => m.ok('cat d/f7'), { timeout: 5000 }).toBe('changed elsewhere\n');
    await m.unmount();
  });

  it('lets its queue threads wait at idle priority, and raises one that waits behind a busy program', async () => {
    const m = await mountZkfs(zk.connectString, '/uring/busy');
    await m.ok('mkdir d && for i in $(seq 1 60); do echo "busy $i" > d/f$i; done');
    expect((await mountStatus(m.dir)).reader?.ringRaised).toBeGreaterThanOrEqual(0);
    // A program that never sleeps shares CPU 0 with the queue thread of CPU 0, which at idle
    // priority would get the CPU only after it; the programs reading run on CPU 0 too.
    const hog = execa('taskset', ['-c', '0', 'sh', '-c', 'while :; do :; done'], { reject: false });
    onCleanup('the CPU hog', () => {
      hog.kill('SIGKILL');
    });
    try {
      const reading = `for pass in 1 2 3; do for i in $(seq 1 60); do cat d/f$i; done; done`;
      const out = await execa('taskset', ['-c', '0', 'bash', '-c', `cd '${m.dir}' && ${reading}`]);
      expect(out.stdout).toBe(files('busy', 60).repeat(3).trimEnd());
      await expect
        .poll(async () => (await mountStatus(m.dir)).reader?.ringRaised, { timeout: 10_000 })
        .toBeGreaterThan(0);
    } finally {
      hog.kill('SIGKILL');
    }
    expect((await zkfsctl(['status', m.dir])).stdout).toMatch(
      /raised to normal \d+ times? behind a busy program/,
    );
    await m.unmount();
  });

  it('reads /dev/fuse where io_uring is refused, and logs why', async () => {
    // As under a seccomp profile that refuses io_uring (Docker's default): here, the kernel's
    // switch for every process, turned back at once (what runs meanwhile is refused too).
    const before = readFileSync(IO_URING_DISABLED, 'utf8').trim();
    const restore = () => writeFileSync(IO_URING_DISABLED, `${before}\n`);
    onCleanup(`kernel.io_uring_disabled back to ${before}`, restore);
    writeFileSync(IO_URING_DISABLED, '2\n');
    let m: ZkfsMount;
    try {
      m = await mountZkfs(zk.connectString, '/uring/refused');
    } finally {
      restore();
    }
    expect(await ringQueues(m)).toBe(0);
    expect(m.log()).toContain('FUSE over io_uring is offered, but io_uring is not permitted');
    await m.ok('mkdir d && for i in $(seq 1 10); do echo "refused $i" > d/f$i; done');
    expect(await m.ok('for i in $(seq 1 10); do cat d/f$i; done')).toBe(files('refused', 10));
    await m.unmount();
  });

  it('reads /dev/fuse instead with --no-io-uring', async () => {
    const m = await mountZkfs(zk.connectString, '/uring/plain', { args: ['--no-io-uring'] });
    expect(await ringQueues(m)).toBe(0);
    await m.ok('mkdir d && for i in $(seq 1 10); do echo "plain $i" > d/f$i; done');
    expect(await m.ok('for i in $(seq 1 10); do cat d/f$i; done')).toBe(files('plain', 10));
    expect((await zkfsctl(['status', m.dir])).stdout).not.toContain('io_uring');
    await m.unmount();
  });

  it('ends the mount when a queue fails, so that programs on its CPU get an error instead of waiting for ever', async () => {
    // Nothing else could serve that queue: the kernel keeps its CPU's requests for it.
    // VOLKIT_FUSE_RING_FAIL_AFTER makes a queue's io_uring_enter fail (EIO) after that many requests.
    await client.create('/uring/failing', Buffer.alloc(0));
    await client.create('/uring/failing/d', Buffer.alloc(0));
    for (let i = 1; i <= 100; i++)
      await client.create(`/uring/failing/d/f${i}`, Buffer.from(`failing ${i}\n`));
    const m = await mountZkfs(zk.connectString, '/uring/failing', {
      env: { VOLKIT_FUSE_RING_FAIL_AFTER: '60' },
    });
    const pid = daemonPid(m.dir);
    // Everything on CPU 0, so that its queue is the one that fails. A file open for writing
    // holds a line the daemon has not written to ZooKeeper yet.
    const holder = execa(
      'taskset',
      ['-c', '0', 'bash', '-c', `cd '${m.dir}' && exec 7>held && echo kept >&7 && read`],
      {
        stdin: 'pipe',
        reject: false,
      },
    );
    onCleanup('the program holding a file open', () => {
      holder.kill('SIGKILL');
    });
    await waitUntilOpen(holder.pid as number, `${m.dir}/held`);
    const reading = await execa(
      'taskset',
      ['-c', '0', 'bash', '-c', `cd '${m.dir}' && for i in $(seq 1 100); do cat d/f$i; done`],
      { reject: false, timeout: 60_000 },
    );
    expect(reading.timedOut).toBe(false);
    expect(reading.exitCode).not.toBe(0);
    expect(reading.stdout).toContain('failing 1\n');
    expect(reading.stderr).toMatch(
      /Transport endpoint is not connected|Software caused connection abort|Operation canceled/,
    );
    await eventually(async () => !isProcessAlive(pid), 'the daemon exits');
    expect(isMounted(m.dir)).toBe(false);
    expect(m.log()).toContain('FUSE requests over io_uring: queue 0 failed (EIO)');
    expect((await client.getData('/uring/failing/held')).data.toString()).toBe('kept\n');
    holder.stdin?.end('\n');
    await holder;
  });

  it('serves more requests at once than its queues have entries, all waiting for ZooKeeper', async () => {
    // Nothing cached: every open asks the server.
    const m = await mountZkfs(zk.connectString, '/uring/many', { args: ['--cache-size', '0'] });
    const count = 300;
    await m.ok(
      `mkdir d && for i in $(seq 1 ${count}); do echo "many $i" > d/f$i; done && ls -l d > /dev/null`,
    );
    await zk.kill(0);
    // Each open waits for the server, holding a queue's entry (64 each) while the rest wait
    // in the kernel for one. (The script changes directory itself: a cwd for execa would be
    // stat()ed in this process, which would wait too, and never start the server again.)
    const reading = execa(
      'bash',
      ['-c', `cd '${m.dir}' && seq 1 ${count} | xargs -P ${count} -I{} cat d/f{}`],
      { reject: false, timeout: 120_000 },
    );
    const waiting = `/sys/fs/fuse/connections/${await fuseConnection(m.dir)}/waiting`;
    await expect
      .poll(() => Number(readFileSync(waiting, 'utf8')), { timeout: 10_000 })
      .toBeGreaterThan(2 * 64);
    await zk.start(0);
    const r = await reading;
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout.split('\n').filter(Boolean).sort();
    expect(lines).toEqual(files('many', count).split('\n').filter(Boolean).sort());
    await m.unmount();
  });
});
