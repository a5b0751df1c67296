/**
 * A mount on a real three-server ensemble riding out server failures, two
 * mounts making and removing files in one directory across leader restarts,
 * and a mount whose session expires (its daemon paused past the session timeout):
 * no write whose close() succeeded is lost, the mount keeps answering, and
 * what it cached before the fault is not trusted after it.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ZkClient } from '../../src/adapters/zookeeper.js';
import { onCleanup } from '../fixtures/cleanup.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { startZk, type ZkServer } from '../fixtures/zk-server.js';
import { quorumChildren } from '../fixtures/zk-views.js';
import { daemonPid, eventually, mountZkfs, mountStatus as status } from '../fixtures/zkfs-mount.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it holds; a check that throws counts as not yet, and the last error is reported. */
async function within(check: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      if (!last) console.log(`(${what}: retrying after ${String(error)})`);
      last = error;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/**
 * Writes files w/f0, w/f1, … one after another until STOP exists, and reports
 * each close() as "ok N" or "fail N CODE" on a line as it happens.
 */
const WRITER_SCRIPT = `
const fs = require('node:fs');
const [dir, stop] = process.argv.slice(2);
const content = (i) => 'file ' + i + ' ' + 'y'.repeat(i % 50) + '\\n';
for (let i = 0; !fs.existsSync(stop); i++) {
  try {
    fs.writeFileSync(dir + '/w/f' + i, content(i));
    process.stdout.write('ok ' + i + '\\n');
  } catch (e) {
    process.stdout.write('fail ' + i + ' ' + e.code + '\\n');
  }
}
`;

/**
 * Makes files w/HOST-0, w/HOST-1, … with O_EXCL until STOP exists, removing
 * each one's predecessor, and reports each as "ok N", or "fail N CODE" for a
 * failed create or removal.
 */
const EXCL_SCRIPT = `
const fs = require('node:fs');
const [dir, stop, host] = process.argv.slice(2);
const name = (i) => dir + '/w/' + host + '-' + i;
for (let i = 0; !fs.existsSync(stop); i++) {
  try {
    const fd = fs.openSync(name(i), 'wx');
    fs.writeSync(fd, host + ' ' + i + '\\n');
    fs.closeSync(fd);
    if (i > 0) fs.unlinkSync(name(i - 1));
    process.stdout.write('ok ' + i + '\\n');
  } catch (e) {
    process.stdout.write('fail ' + i + ' ' + e.code + '\\n');
  }
}
`;

function contentOf(i: number): string {
  return `file ${i} ${'y'.repeat(i % 50)}\n`;
}

describe.skipIf(missing({ fuse: true }))('zkfs on a three-server ensemble', () => {
  let zk: ZkServer;
  let client: ZkClient;

  beforeAll(async () => {
    zk = await startZk({ servers: 3 });
    client = await ZkClient.connect({ connectString: zk.connectString, requestTimeoutMs: 60_000 });
  });
  afterAll(async () => {
    await client?.close();
  });

  it('keeps writing while the leader and then its own server are killed and restarted; every acknowledged file is there', async () => {
    const m = await mountZkfs(zk.connectString, '/cluster/app', { args: ['--reconnect-timeout', '60'] });
    await m.ok('mkdir w');
    const control = scratchDir('zkfs-writer');
    const script = join(control, 'writer.cjs');
    const stop = join(control, 'stop');
    writeFileSync(script, WRITER_SCRIPT);
    let output = '';
    const writer = execa(process.execPath, [script, m.dir, stop], { reject: false, timeout: 300_000 });
    onCleanup('writer', () => {
      writeFileSync(stop, '');
    });
    writer.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const oks = () => output.split('\n').filter((l) => l.startsWith('ok ')).length;
    const progress = async (more: number, what: string) => {
      const target = oks() + more;
      await eventually(async () => oks() >= target, what, 90_000);
    };

    await progress(50, 'first writes');
    const leader = await zk.leader();
    await zk.kill(leader);
    await sleep(2000);
    await zk.start(leader);
    await progress(50, 'writes after the leader came back');

    let server = '';
    await within(
      async () => {
        server = (await status(m.dir)).session.server ?? '';
        return server !== '';
      },
      'the mount connected to a server',
      30_000,
    );
    const mine = zk.clientPorts.findIndex((port) => server.endsWith(`:${port}`));
    expect(mine).toBeGreaterThanOrEqual(0);
    await zk.kill(mine);
    await progress(30, 'writes while its server is down');
    await zk.start(mine);
    await progress(30, 'writes after its server came back');

    writeFileSync(stop, '');
    await writer;
    const lines = output.trim().split('\n');
    const written = lines.filter((l) => l.startsWith('ok ')).map((l) => Number(l.split(' ')[1]));
    const failed = lines.filter((l) => l.startsWith('fail '));
    console.log(
      `zkfs cluster: ${written.length} files written across a leader restart and a restart of the mount's server, ${failed.length} failed`,
    );
    expect(failed).toEqual([]);
    expect(written.length).toBeGreaterThanOrEqual(160);

    // Every acknowledged write is in ZooKeeper with its exact content...
    const missingOrWrong: number[] = [];
    for (const i of written) {
      const node = await client.getData(`/cluster/app/w/f${i}`).catch(() => undefined);
      if (node?.data.toString() !== contentOf(i)) missingOrWrong.push(i);
    }
    expect(missingOrWrong).toEqual([]);
    expect(m.log()).toContain('connection lost; trying the other servers,');
    // ...and the mount still answers, showing the same.
    const listed = (await m.ok('ls w')).trim().split('\n');
    expect(listed.length).toBeGreaterThanOrEqual(written.length);
    const last = written[written.length - 1] as number;
    expect(await m.ok(`cat w/f${last}`)).toBe(contentOf(last));
    const after = await status(m.dir);
    expect(after.session.state).toBe('connected');
    expect(after.session.reconnects).toBeGreaterThanOrEqual(2);
    expect(after.session.expiries).toBe(0);
  });

  it('two hosts making (O_EXCL) and removing files in one directory across leader restarts: no operation fails', async () => {
    // A reply lost with the leader, and the other host rewriting the directory's document before
    // the mount sends the request again: creates failed with EEXIST and removals with ENOENT, in
    // about one leader restart in ten (write-proof.ts, write-verify.ts).
    const a = await mountZkfs(zk.connectString, '/cluster/two', { args: ['--reconnect-timeout', '60'] });
    const b = await mountZkfs(zk.connectString, '/cluster/two', { args: ['--reconnect-timeout', '60'] });
    await a.ok('mkdir w');
    const control = scratchDir('zkfs-two');
    const script = join(control, 'excl.cjs');
    const stop = join(control, 'stop');
    writeFileSync(script, EXCL_SCRIPT);
    onCleanup('exclusive writers', () => {
      writeFileSync(stop, '');
    });
    const outputs = { a: '', b: '' };
    const writers = (['a', 'b'] as const).map((host) => {
      const writer = execa(process.execPath, [script, (host === 'a' ? a : b).dir, stop, host], {
        reject: false,
        timeout: 300_000,
      });
      writer.stdout?.on('data', (chunk: Buffer) => {
        outputs[host] += chunk.toString();
      });
      return writer;
    });
    const made = () => `${outputs.a}${outputs.b}`.split('\n').filter((l) => l.startsWith('ok ')).length;
    for (let restart = 0; restart < 6; restart++) {
      const before = made();
      await eventually(async () => made() >= before + 30, 'files made', 90_000);
      const leader = await zk.leader();
      await zk.kill(leader);
      await sleep(1500);
      await zk.start(leader);
    }
    const before = made();
    await eventually(async () => made() >= before + 30, 'files made after the last restart', 90_000);
    writeFileSync(stop, '');
    await Promise.all(writers);

    const failed = `${outputs.a}${outputs.b}`.split('\n').filter((l) => l.startsWith('fail '));
    console.log(`zkfs cluster, two hosts: ${made()} files made and removed across 6 leader restarts`);
    expect(failed).toEqual([]);
    // Each host removed every file but its last, which holds what it wrote: as the ensemble
    // committed it, which a server that lost transactions as its leader was killed may not show.
    const { children, astray } = await quorumChildren(zk, '/cluster/two/w');
    if (astray.length > 0)
      console.log(`zkfs cluster, two hosts: servers ${astray.join(', ')} lost transactions (ZOOKEEPER-4785)`);
    const left = children.filter((n) => n !== '__zkfs__');
    const last = (host: string) =>
      Math.max(
        ...outputs[host as 'a' | 'b']
          .split('\n')
          .filter((l) => l.startsWith('ok '))
          .map((l) => Number(l.split(' ')[1])),
      );
    expect(left).toEqual([`a-${last('a')}`, `b-${last('b')}`]);
    expect((await client.getData(`/cluster/two/w/b-${last('b')}`)).data.toString()).toBe(`b ${last('b')}\n`);
  });

  it('survives its session expiring while paused: new session, cache rebuilt, buffered write saved with its version check', async () => {
    const m = await mountZkfs(zk.connectString, '/cluster/expiry', {
      args: ['--session-timeout', '2'],
    });
    await m.ok('echo old > cached && echo base > open && cat cached open > /dev/null && ls > /dev/null');
    const granted = (await status(m.dir)).session.timeoutMs;
    expect(granted).toBeLessThanOrEqual(2000);

    // A program has the file open with unsaved changes when the host freezes.
    const holder = execa(
      'bash',
      [
        '-c',
        'exec 3>open; printf "written before the pause\\n" >&3; echo ready; read -r _; exec 3>&-; echo closed',
      ],
      { cwd: m.dir, reject: false, stdin: 'pipe', timeout: 120_000 },
    );
    let holderOut = '';
    holder.stdout?.on('data', (c: Buffer) => {
      holderOut += c.toString();
    });
    await eventually(async () => holderOut.includes('ready'), 'the program wrote');

    const pid = daemonPid(m.dir);
    process.kill(pid, 'SIGSTOP');
    try {
      await client.setData('/cluster/expiry/cached', Buffer.from('changed during the pause\n'), -1);
      await client.create('/cluster/expiry/born', Buffer.from('new\n'));
      await sleep(granted + 4000);
    } finally {
      process.kill(pid, 'SIGCONT');
    }

    await within(async () => (await status(m.dir)).session.expiries >= 1, 'a new session', 30_000);
    expect(existsSync(join(m.dir, 'cached'))).toBe(true);
    await within(
      async () => (await m.ok('cat cached')) === 'changed during the pause\n',
      'the change made during the pause',
      5000,
    );
    expect(await m.ok('cat born')).toBe('new\n');

    holder.stdin?.end('\n');
    const closed = await holder;
    expect(closed.exitCode).toBe(0);
    expect(String(closed.stdout)).toContain('closed');
    expect((await client.getData('/cluster/expiry/open')).data.toString()).toBe('written before the pause\n');
    expect(await m.ok('cat open')).toBe('written before the pause\n');

    // The rebuilt watch reports changes again.
    await client.setData('/cluster/expiry/cached', Buffer.from('after\n'), -1);
    await within(async () => (await m.ok('cat cached')) === 'after\n', 'a change after recovery', 2000);
    expect(m.log()).toMatch(/expired; opening a new one/);
    const after = await status(m.dir);
    expect(after.session.state).toBe('connected');
    expect(after.cache.mode).toBe('watch');
  });
});
