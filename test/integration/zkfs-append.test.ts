/**
 * Logs on two mounts of one tree (two hosts): lines appended with `>>` on
 * both, log rotation by copytruncate or by mv. The shell never reports a
 * failed close of `echo line >> log` (bash closes the file with dup2 and
 * ignores the error), so a line refused at close is a line silently lost:
 * appends must land, as on a local disk, however the hosts interleave.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ZkClient } from '../../src/adapters/zookeeper.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import type { ZkServer } from '../fixtures/zk-server.js';
import {
  daemonPid,
  mountStatus,
  mountTwice,
  mountZkfs,
  startZkWithClient,
  waitUntilOpen,
  type ZkfsMount,
} from '../fixtures/zkfs-mount.js';

/**
 * Opens FILE (`a`: O_APPEND; `r+`: O_RDWR), writes TEXT (at the end, or at
 * offset 0) or, for `truncate`, cuts the file to nothing; then, each when
 * told (a file GO.fsync, then GO.close), fsyncs and closes, printing how
 * each went (GO.fsynced once fsync returned).
 */
const HOLD_SCRIPT = `
const fs = require('node:fs');
const [file, how, text, go] = process.argv.slice(1);
const fd = fs.openSync(file, how === 'a' ? 'a' : 'r+');
if (how === 'a') fs.writeSync(fd, text);
else if (how === 'r+') fs.writeSync(fd, text, 0);
else fs.ftruncateSync(fd, 0);
fs.writeFileSync(go + '.ready', '');
const result = {};
for (const [step, run] of [['fsync', () => fs.fsyncSync(fd)], ['close', () => fs.closeSync(fd)]]) {
  while (!fs.existsSync(go + '.' + step)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  try { run(); result[step] = 'ok'; } catch (e) { result[step] = e.code; }
  fs.writeFileSync(go + '.' + step + 'ed', result[step]);
}
process.stdout.write(JSON.stringify(result));
`;

interface Holder {
  /** fsync(2)s: 'ok' or the error code. */
  fsync(): Promise<string>;
  /** fsync(2)s, closes, and says how each went. */
  finish(): Promise<{ fsync: string; close: string }>;
}

/** A program holding `file` on mount `m` open with a change not yet written back. */
async function hold(m: ZkfsMount, file: string, how: 'a' | 'r+' | 'truncate', text = ''): Promise<Holder> {
  const go = join(scratchDir('zkfs-hold'), 'go');
  const child = execa(process.execPath, ['-e', HOLD_SCRIPT, join(m.dir, file), how, text, go], {
    reject: false,
    timeout: 60_000,
  });
  const until = async (flag: string) => {
    const deadline = Date.now() + 15_000;
    while (!existsSync(flag)) {
      if (Date.now() > deadline || child.exitCode !== null) {
        throw new Error(`holder of ${file} never wrote ${flag}: ${String((await child).stderr)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return readFileSync(flag, 'utf8');
  };
  await waitUntilOpen(child.pid!, join(m.dir, file));
  await until(`${go}.ready`);
  const fsync = async () => {
    writeFileSync(`${go}.fsync`, '');
    return until(`${go}.fsynced`);
  };
  return {
    fsync,
    finish: async () => {
      await fsync();
      writeFileSync(`${go}.close`, '');
      const r = await child;
      if (r.exitCode !== 0) throw new Error(`holder of ${file} failed: ${String(r.stderr)}`);
      return JSON.parse(String(r.stdout)) as { fsync: string; close: string };
    },
  };
}

describe.skipIf(missing({ fuse: true }))('a log appended to on two hosts', () => {
  let zk: ZkServer;
  let client: ZkClient;
  let a: ZkfsMount;
  let b: ZkfsMount;
  let dir = 0;
  /** A fresh directory for one test: its path in the mounts and its znode. */
  const fresh = async () => {
    const name = `d${++dir}`;
    await a.ok(`mkdir ${name}`);
    return { name, znode: `/logs/${name}/log` };
  };
  const zkText = async (znode: string) => (await client.getData(znode)).data.toString();
  /** Waits until ZooKeeper holds `expected` at `znode` (a release writes back a moment after close). */
  const holds = async (znode: string, expected: string) => {
    const deadline = Date.now() + 10_000;
    let last = '';
    while (Date.now() < deadline) {
      last = await zkText(znode);
      if (last === expected) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(last).toBe(expected);
  };

  beforeAll(async () => {
    ({ zk, client } = await startZkWithClient());
    [a, b] = await mountTwice(zk.connectString, '/logs');
  });

  it('keeps a line appended on one host while the other host, holding the log open, appended too', async () => {
    const { name, znode } = await fresh();
    await a.ok(`echo start > ${name}/log`);
    await b.ok(`cat ${name}/log`);
    const writer = await hold(b, `${name}/log`, 'a', 'from b\n');
    await a.ok(`echo 'from a' >> ${name}/log`);
    // Refused before (EIO at fsync and close): b's content was based on the version before a's line.
    expect(await writer.finish()).toEqual({ fsync: 'ok', close: 'ok' });
    expect(await zkText(znode)).toBe('start\nfrom a\nfrom b\n');
  });

  it('keeps every line of shells appending with >> on both hosts at once', async () => {
    const { name, znode } = await fresh();
    const lines = 40;
    const loop = (who: string) => `for i in $(seq 1 ${lines}); do echo "${who} $i" >> ${name}/log; done`;
    // Two writers per host: on each host too, one writer's close writes back the other's line.
    const results = await Promise.all([
      a.sh(loop('a1')),
      a.sh(loop('a2')),
      b.sh(loop('b1')),
      b.sh(loop('b2')),
    ]);
    for (const r of results) expect(r).toMatchObject({ exitCode: 0, stderr: '' });
    const got = (await zkText(znode)).split('\n').filter(Boolean);
    const want = ['a1', 'a2', 'b1', 'b2'].flatMap((who) =>
      Array.from({ length: lines }, (_, i) => `${who} ${i + 1}`),
    );
    expect([...got].sort()).toEqual([...want].sort());
    // Each writer's lines in its own order.
    for (const who of ['a1', 'a2', 'b1', 'b2']) {
      const mine = got.filter((l) => l.startsWith(`${who} `));
      expect(mine).toEqual(want.filter((l) => l.startsWith(`${who} `)));
    }
  });

  it('keeps both lines when both hosts make a log with >> at once', async () => {
    const { name } = await fresh();
    const rounds = 60;
    const r = await a.sh(
      `for i in $(seq 1 ${rounds}); do echo a >> ${name}/f$i & echo b >> ${b.dir}/${name}/f$i & wait; done`,
    );
    expect(r.stderr).toBe('');
    const counts = await a.ok(`for i in $(seq 1 ${rounds}); do sort ${name}/f$i | tr -d '\\n'; echo; done`);
    expect(counts).toBe('ab\n'.repeat(rounds));
  });

  it('rotates by copytruncate on one host while both append: the cut holds, no line is lost or copied twice', async () => {
    const { name, znode } = await fresh();
    await a.ok(`printf 'old 1\\nold 2\\n' > ${name}/log`);
    await b.ok(`cat ${name}/log`);
    await a.ok(`cp ${name}/log ${name}/log.1`);
    // truncate(1)'s cut, written back when it releases the file.
    const cutter = await hold(a, `${name}/log`, 'truncate');
    await b.ok(`echo 'b after' >> ${name}/log`);
    await a.ok(`echo 'a after' >> ${name}/log`);
    expect(await cutter.finish()).toEqual({ fsync: 'ok', close: 'ok' });
    // Before, a's line was refused at close (unreported) and the cut with it: the old lines stayed
    // in the log and in its copy.
    await holds(znode, 'b after\na after\n');
    expect(await zkText(`${znode}.1`)).toBe('old 1\nold 2\n');
  });

  it('puts lines appended here after a rewrite here, which another host dooms, at the end of the log: only the rewrite fails', async () => {
    const { name, znode } = await fresh();
    await a.ok(`echo start > ${name}/log`);
    await b.ok(`cat ${name}/log`);
    // A rewrite (not an append) on b, not yet written back; then a's append makes it a conflict.
    const editor = await hold(b, `${name}/log`, 'r+', 'S');
    await a.ok(`echo 'from a' >> ${name}/log`);
    // Before the editor's write-back failed, b's lines joined its buffer; before, they were
    // refused with it at close, unreported by the shell.
    await b.ok(`echo 'from b' >> ${name}/log; echo 'b again' >> ${name}/log`);
    expect(await zkText(znode)).toBe('start\nfrom a\nfrom b\nb again\n');
    expect(await editor.finish()).toEqual({ fsync: 'EIO', close: 'EIO' });
    expect(await zkText(znode)).toBe('start\nfrom a\nfrom b\nb again\n');
    expect(b.log()).toContain('bytes appended after that went to its end');
  });

  it('opens afresh a log whose write-back another host refused, for the next >> on this host', async () => {
    const { name, znode } = await fresh();
    await a.ok(`echo start > ${name}/log`);
    await b.ok(`cat ${name}/log`);
    // A rewrite (not an append) on b, which a's append makes a real conflict.
    const editor = await hold(b, `${name}/log`, 'r+', 'S');
    await a.ok(`echo 'from a' >> ${name}/log`);
    expect(await editor.fsync()).toBe('EIO');
    // The editor still holds its refused change; before, b's next line joined it and was refused
    // with it at close, unreported, and so was every line after while the editor kept the file.
    await b.ok(`echo 'from b' >> ${name}/log; echo 'b again' >> ${name}/log`);
    expect(await editor.finish()).toEqual({ fsync: 'EIO', close: 'EIO' });
    expect(await zkText(znode)).toBe('start\nfrom a\nfrom b\nb again\n');
    expect(b.log()).toContain('another client changed it');
  });

  /** Every line of the log and its rotated copies (`log.N`) in `name`, as ZooKeeper holds them. */
  const rotatedLines = async (name: string): Promise<string[]> => {
    const { children } = await client.getChildren(`/logs/${name}`);
    const logs = children.filter((c) => /^log(\.\d+)?$/.test(c));
    const texts = await Promise.all(logs.map((c) => zkText(`/logs/${name}/${c}`)));
    return texts.flatMap((t) => t.split('\n').filter(Boolean));
  };

  it('makes the log again for >> on one host while the other renames it away (mv rotation), losing no line', async () => {
    const { name } = await fresh();
    await a.ok(`echo start > ${name}/log`);
    const [writes, moves] = await Promise.all([
      b.sh(`cd ${name} && for i in $(seq 1 300); do echo "b $i" >> log; done`),
      a.sh(`cd ${name} && for i in $(seq 1 30); do sleep 0.03; mv log log.$i 2>/dev/null || true; done`),
    ]);
    expect(moves.exitCode).toBe(0);
    // Before, the kernel's entry for the moved file was opened and found gone: "No such file or directory".
    expect(writes.stderr).not.toContain('No such file');
    // Before, a line whose file was moved between its open and its close was refused at close: lost.
    const want = ['start', ...Array.from({ length: 300 }, (_, i) => `b ${i + 1}`)];
    expect((await rotatedLines(name)).sort()).toEqual(want.sort());
  });

  it.each([
    { name: 'nothing is under its name', again: '' },
    { name: 'the other host made the log again', again: 'a new\n' },
  ])(
    'puts what a program appended to a log the other host renamed away into the log under its name ($name)',
    async ({ again }) => {
      const { name, znode } = await fresh();
      await a.ok(`echo start > ${name}/log`);
      const writer = await hold(b, `${name}/log`, 'a', 'from b\n');
      await a.ok(`mv ${name}/log ${name}/log.1${again ? ` && printf '${again}' > ${name}/log` : ''}`);
      await b.ok(`ls ${name} >/dev/null`);
      // Before, both failed with EIO and the line was gone (a shell never reports a failed close).
      expect(await writer.finish()).toEqual({ fsync: 'ok', close: 'ok' });
      expect(await zkText(`${znode}.1`)).toBe('start\n');
      expect(await zkText(znode)).toBe(`${again}from b\n`);
      expect(b.log()).toContain('bytes appended here went to the file now under its name');
    },
  );

  it('keeps every line of a program holding the log open while the other host rotates it by mv', async () => {
    const { name } = await fresh();
    await a.ok(`echo start > ${name}/log`);
    // A logger: one descriptor, a line and an fsync at a time.
    const logger = execa(
      process.execPath,
      [
        '-e',
        `const fs = require('node:fs');
         const fd = fs.openSync(process.argv[1], 'a');
         for (let i = 1; i <= 200; i++) {
           fs.writeSync(fd, 'line ' + i + '\\n');
           fs.fsyncSync(fd);
           Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3);
         }
         fs.closeSync(fd);`,
        join(b.dir, name, 'log'),
      ],
      { reject: false, timeout: 60_000 },
    );
    const moves = await a.sh(
      `cd ${name} && for i in $(seq 1 20); do sleep 0.05; mv log log.$i 2>/dev/null || true; done`,
    );
    expect(moves.exitCode).toBe(0);
    expect(await logger).toMatchObject({ exitCode: 0, stderr: '' });
    const want = ['start', ...Array.from({ length: 200 }, (_, i) => `line ${i + 1}`)];
    expect((await rotatedLines(name)).sort()).toEqual(want.sort());
  });

  it.each([
    { name: 'a directory', make: 'mkdir log', check: 'test -d log && ls -A log', shows: '' },
    { name: 'a symbolic link', make: 'ln -s log.1 log', check: 'readlink log', shows: 'log.1' },
  ])(
    'refuses, with EIO, appends to a log the other host renamed away when $name took its name',
    async ({ make, check, shows }) => {
      const { name, znode } = await fresh();
      await a.ok(`echo start > ${name}/log`);
      const writer = await hold(b, `${name}/log`, 'a', 'from b\n');
      await a.ok(`cd ${name} && mv log log.1 && ${make}`);
      await b.ok(`ls ${name} >/dev/null`);
      expect(await writer.finish()).toEqual({ fsync: 'EIO', close: 'EIO' });
      expect((await a.ok(`cd ${name} && ${check}`)).trim()).toBe(shows);
      expect(await zkText(`${znode}.1`)).toBe('start\n');
    },
  );

  it("appends what a program wrote to a log renamed on its own host to the renamed log, after the other host's line", async () => {
    const { name, znode } = await fresh();
    await a.ok(`echo start > ${name}/log`);
    const writer = await hold(b, `${name}/log`, 'a', 'from b\n');
    // Renamed here: the open file follows it, as on a local disk.
    await b.ok(`mv ${name}/log ${name}/log.1`);
    await a.ok(`cat ${name}/log.1 >/dev/null && echo 'from a' >> ${name}/log.1`);
    expect(await writer.finish()).toEqual({ fsync: 'ok', close: 'ok' });
    expect(await zkText(`${znode}.1`)).toBe('start\nfrom a\nfrom b\n');
    expect(await client.exists(znode)).toBeNull();
  });

  /**
   * Holds `${name}/log` open on a third mount with `how` and `text` (see hold), freezes that
   * mount's daemon past its session's timeout while `meanwhile` runs on mount a, and returns
   * how the holder's fsync and close went.
   */
  const acrossLostSession = async (
    name: string,
    how: 'a' | 'r+',
    text: string,
    meanwhile: string,
  ): Promise<{ fsync: string; close: string }> => {
    const c = await mountZkfs(zk.connectString, '/logs', { args: ['--session-timeout', '2'] });
    try {
      const writer = await hold(c, `${name}/log`, how, text);
      const granted = (await mountStatus(c.dir)).session.timeoutMs;
      // Frozen past its session's timeout, c hears nothing of what happens meanwhile.
      const pid = daemonPid(c.dir);
      process.kill(pid, 'SIGSTOP');
      try {
        await new Promise((r) => setTimeout(r, granted + 4000));
        await a.ok(`cd ${name} && ${meanwhile}`);
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      return await writer.finish();
    } finally {
      await c.unmount();
    }
  };

  it('never appends into a directory that took the name while the mount had lost its session (no watch)', async () => {
    const { name, znode } = await fresh();
    await a.ok(`echo start > ${name}/log`);
    // Whether or not c has found the deletion by then, the line has no file to go to.
    expect(await acrossLostSession(name, 'a', 'from c\n', 'mv log log.1 && mkdir log')).toEqual({
      fsync: 'EIO',
      close: 'EIO',
    });
    expect((await client.getData(znode)).data.length).toBe(0);
    expect(await zkText(`${znode}.1`)).toBe('start\n');
    expect(await a.ok(`cd ${name} && test -d log && ls -A log`)).toBe('');
  });

  it.each([
    { how: 'a' as const, text: 'from c\n', result: { fsync: 'ok', close: 'ok' }, log: 'x\nfrom c\n' },
    { how: 'r+' as const, text: 'S', result: { fsync: 'EIO', close: 'EIO' }, log: 'x\n' },
  ])(
    'never writes over a file made again at the same data version while the mount had lost its session (O_APPEND: $how)',
    async ({ how, text, result, log }) => {
      const { name, znode } = await fresh();
      await a.ok(`echo start > ${name}/log`);
      // The new log reaches data version 1, the version c's file was opened at.
      expect(await acrossLostSession(name, how, text, 'mv log log.1 && echo x > log')).toEqual(result);
      expect((await client.exists(znode))?.version).toBeGreaterThanOrEqual(1);
      expect(await zkText(znode)).toBe(log);
      expect(await zkText(`${znode}.1`)).toBe('start\n');
    },
  );

  it('still refuses, with EIO, a change other than appends to a file the other host renamed away', async () => {
    const { name, znode } = await fresh();
    await a.ok(`echo start > ${name}/log`);
    const writer = await hold(b, `${name}/log`, 'r+', 'over');
    await a.ok(`mv ${name}/log ${name}/log.1`);
    await b.ok(`ls ${name} >/dev/null`);
    expect(await writer.finish()).toEqual({ fsync: 'EIO', close: 'EIO' });
    expect(await zkText(`${znode}.1`)).toBe('start\n');
    expect(await client.exists(znode)).toBeNull();
  });
});
