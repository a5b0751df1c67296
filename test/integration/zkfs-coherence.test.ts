/**
 * Coherence of real mounts: what a mount answers from memory (no request to
 * ZooKeeper), how fast another mount's or client's change becomes visible
 * through the kernel, and `zkfsctl status`.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { type MountStatus, statusSocketPath } from '../../src/adapters/zkfs/status-socket.js';
import type { ZkClient } from '../../src/adapters/zookeeper.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { OP_GET_DATA, startZkProxy } from '../fixtures/zk-proxy.js';
import type { ZkServer } from '../fixtures/zk-server.js';
import {
  eventually,
  mountStatus,
  mountTwice,
  mountZkfs,
  sees,
  startZkWithClient,
  tryMountZkfs,
  waitUntilOpen,
  type ZkfsMount,
  zkfsctl,
  zkfsRunDir,
} from '../fixtures/zkfs-mount.js';

/** The status of a daemon of this version: it reports what older ones may leave out. */
type CurrentStatus = MountStatus & {
  operations: Required<MountStatus['operations']>;
  polling: NonNullable<MountStatus['polling']>;
};

async function status(dir: string): Promise<CurrentStatus> {
  const doc = await mountStatus(dir);
  if (!doc.operations.byName || !doc.polling)
    throw new Error(`zkfsctl status ${dir}: no counts by request or polling`);
  return doc as CurrentStatus;
}

/** What `work` returned, the READs the mount at `dir` answered while it ran, and its status around it. */
async function readsDuring<T>(
  dir: string,
  work: () => Promise<T>,
): Promise<{ value: T; reads: number; before: CurrentStatus; after: CurrentStatus }> {
  const before = await status(dir);
  const value = await work();
  const after = await status(dir);
  const reads = (after.operations.byName.read ?? 0) - (before.operations.byName.read ?? 0);
  return { value, reads, before, after };
}

/** Resolves once the mount's count of ZooKeeper requests has stopped moving (what it started ahead is done). */
async function requestsSettle(dir: string): Promise<void> {
  let last = -1;
  await eventually(
    async () => {
      const now = (await status(dir)).session.requests;
      const still = now === last;
      last = now;
      await new Promise((r) => setTimeout(r, 100));
      return still;
    },
    'requests settled',
    5000,
  );
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

/**
 * Writes `count` values to A and polls B with read(2) until it shows each
 * one; prints one latency (ms) per write, from the moment the writer's
 * close() returned. A separate process, so the test runner's own event loop
 * does not skew the timing.
 */
const LATENCY_SCRIPT = `
const fs = require('node:fs');
const [a, b, count] = process.argv.slice(2);
const out = [];
for (let i = 0; i < Number(count); i++) {
  const value = 'value ' + i + ' ' + 'x'.repeat(i % 13);
  fs.writeFileSync(a, value);
  const start = process.hrtime.bigint();
  for (;;) {
    let seen = null;
    try { seen = fs.readFileSync(b, 'utf8'); } catch {}
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (seen === value || ms > 5000) { out.push(seen === value ? ms : Infinity); break; }
  }
}
process.stdout.write(JSON.stringify(out));
`;

/**
 * Runs LATENCY_SCRIPT: `count` writes to `shared` on `a`, each read back on
 * `b`; prints p50, p99 and max and returns the latencies (ms), sorted.
 */
async function writeToReadLatencies(
  a: ZkfsMount,
  b: ZkfsMount,
  count: number,
  what: string,
): Promise<number[]> {
  const script = join(scratchDir('zkfs-latency'), 'latency.cjs');
  writeFileSync(script, LATENCY_SCRIPT);
  const r = await execa(
    process.execPath,
    [script, join(a.dir, 'shared'), join(b.dir, 'shared'), String(count)],
    {
      timeout: 300_000,
    },
  );
  const sorted = (JSON.parse(r.stdout) as (number | null)[]).map((x) => x ?? Infinity).sort((x, y) => x - y);
  console.log(
    `zkfs coherence: ${sorted.length} writes ${what}: p50 ${percentile(sorted, 50).toFixed(1)} ms, ` +
      `p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${(sorted[sorted.length - 1] ?? Number.NaN).toFixed(1)} ms`,
  );
  return sorted;
}

/**
 * For each directory given: list it, open two files for reading and keep
 * them open, and a third for writing with a change not yet written back,
 * read its first file (which reads the files after it ahead into the
 * kernel's page cache, those open for reading too, not the one being
 * written), then at once truncate, overwrite and append to three of those, overwrite one of the
 * two held open, and read them back (the held ones through their open
 * descriptors). Prints what was read, one JSON array per directory.
 */
const AHEAD_SCRIPT = `
const fs = require('node:fs');
const out = [];
for (const dir of process.argv.slice(2)) {
  fs.readdirSync(dir);
  const held = ['f09', 'f10'].map((f) => fs.openSync(dir + '/' + f, 'r'));
  const writing = fs.openSync(dir + '/f11', 'r+');
  fs.writeSync(writing, 'NEW', 0);
  fs.readFileSync(dir + '/f00');
  fs.truncateSync(dir + '/f05', 3);
  fs.writeFileSync(dir + '/f06', 'new');
  fs.appendFileSync(dir + '/f07', '+');
  fs.writeFileSync(dir + '/f10', 'new');
  const viaHeld = [...held, writing].map((fd) => {
    const buf = Buffer.alloc(4096);
    const text = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)).toString();
    fs.closeSync(fd);
    return text;
  });
  out.push([...['f05', 'f06', 'f07', 'f08'].map((f) => fs.readFileSync(dir + '/' + f, 'utf8')), ...viaHeld]);
}
process.stdout.write(JSON.stringify(out));
`;

/**
 * Sets the mode of argv[1] to 600 and 640 in turn, argv[3] times, each time
 * stat-ing argv[2] (the same file on another mount) until it shows that
 * mode (polling each millisecond, well inside the 10 ms a diff waits);
 * fails at the first not seen within 5 s (half the kernel's --attr-timeout),
 * else prints percentiles.
 */
const CHMOD_PING_PONG = `
import os, sys, time
here, there, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
took = []
for i in range(count):
    mode = 0o600 if i % 2 == 0 else 0o640
    os.chmod(here, mode)
    start = time.monotonic()
    while os.stat(there).st_mode & 0o777 != mode:
        if time.monotonic() - start > 5:
            sys.exit("late: change %d (%o) not seen in 5 s" % (i, mode))
        time.sleep(0.001)
    took.append((time.monotonic() - start) * 1000)
took.sort()
print("p50 %.1f ms, p99 %.1f ms, max %.1f ms over %d changes" % (took[len(took) // 2], took[len(took) * 99 // 100], took[-1], count))
`;

/**
 * Lists the whole tree, then reads every file in order, slowly enough that
 * every page-cache store lands before the file it is for is read: no races,
 * so the READs counted are the read-ahead windows' own. Prints the bytes read.
 */
const SLOW_ORDERED_READ = `python3 -c '
import os, time
paths = sorted(os.path.join(root, name) for root, _, files in os.walk(".") for name in files)
out = 0
for path in paths:
    with open(path, "rb") as f:
        out += len(f.read())
    time.sleep(0.002)
print(out)'`;

describe.skipIf(missing({ fuse: true }))('zkfs coherence across mounts', () => {
  let zk: ZkServer;
  let client: ZkClient;

  beforeAll(async () => {
    ({ zk, client } = await startZkWithClient());
  });

  it('answers a repeated ls -lR and cat of unchanged nodes without a request to ZooKeeper', async () => {
    const m = await mountZkfs(zk.connectString, '/coh/quiet');
    await m.ok('mkdir -p a/b && for i in $(seq 1 30); do echo "f $i" > a/f$i; echo "g $i" > a/b/g$i; done');
    await m.ok('ls -lR . > /dev/null && cat a/f* a/b/g* > /dev/null');
    const before = await status(m.dir);
    // Longer than the kernel's attribute timeout: the kernel asks the daemon again, the daemon needs nobody.
    const listing = await m.ok(
      'sleep 0.2; ls -lR .; cat a/f* a/b/g*; sleep 0.2; ls -lR . >/dev/null; cat a/f1',
    );
    const after = await status(m.dir);
    expect(listing).toContain('g 30');
    expect(after.session.requests).toBe(before.session.requests);
    expect(after.operations.total).toBeGreaterThan(before.operations.total + 60);
    // Every operation is counted under its request's name: cat opens each file (61 of them).
    const counted = Object.values(after.operations.byName).reduce((sum, count) => sum + count, 0);
    expect(counted).toBe(after.operations.total);
    expect(after.operations.byName.open ?? 0).toBeGreaterThanOrEqual(
      (before.operations.byName.open ?? 0) + 61,
    );
    expect(after.cache.hits).toBeGreaterThan(before.cache.hits);
    expect(after.cache.mode).toBe('watch');
  });

  it('lists the next directory ahead of a walk: the walk finds it, its files and attributes in memory', async () => {
    const writer = await mountZkfs(zk.connectString, '/coh/walk');
    // Two directories, so that nothing comes after b to be listed ahead of it in turn.
    await writer.ok('mkdir a b && for d in a b; do for i in 1 2 3; do echo $d$i > $d/f$i; done; done');
    const m = await mountZkfs(zk.connectString, '/coh/walk');
    await m.ok('ls -l > /dev/null && ls -l a > /dev/null');
    // What the listing of a started (b, ahead) is done once the request count stops moving.
    await requestsSettle(m.dir);
    const before = await status(m.dir);
    expect(await m.ok('ls b; cat b/*')).toBe('f1\nf2\nf3\nb1\nb2\nb3\n');
    expect((await status(m.dir)).session.requests).toBe(before.session.requests);
  });

  it('lists further ahead while a walk keeps listing what was listed ahead, and one ahead of a lone listing', async () => {
    const writer = await mountZkfs(zk.connectString, '/coh/ramp');
    // Six directories: nothing comes after d6 for the last listings to list ahead in turn.
    await writer.ok('for d in 1 2 3 4 5 6; do mkdir d$d && echo $d > d$d/f; done');
    const m = await mountZkfs(zk.connectString, '/coh/ramp');
    const requests = async () => (await status(m.dir)).session.requests;
    const settled = () => requestsSettle(m.dir);
    await m.ok('ls -l > /dev/null && ls -l d1 > /dev/null');
    await settled();
    // A lone listing (d1) listed one directory ahead (d2), not d3.
    let before = await requests();
    expect(await m.ok('ls d3')).toBe('f\n');
    expect(await requests()).toBeGreaterThan(before);
    await settled();
    // d3 listed d4 ahead; listing d4 shows a walk: d5 and d6 are listed ahead of it.
    await m.ok('ls d4 > /dev/null');
    await settled();
    before = await requests();
    expect(await m.ok('ls d5 d6; cat d5/f d6/f')).toBe('d5:\nf\n\nd6:\nf\n5\n6\n');
    expect(await requests()).toBe(before);
  });

  it("shows another client's changes: data, new nodes, deletions, a child under a file", async () => {
    const m = await mountZkfs(zk.connectString, '/coh/other');
    await m.ok('echo one > f && mkdir d && cat f && ls d');
    await client.setData('/coh/other/f', Buffer.from('two\n'), -1);
    await eventually(async () => (await m.ok('cat f')) === 'two\n', 'new content', 2000);
    await client.create('/coh/other/d/n', Buffer.from('new\n'));
    await eventually(async () => (await m.ok('ls d')) === 'n\n', 'new node listed', 2000);
    expect(await m.ok('cat d/n')).toBe('new\n');
    await client.create('/coh/other/f/child', Buffer.from('c'));
    await eventually(async () => (await m.sh('test -d f')).exitCode === 0, 'f became a directory', 2000);
    await client.remove('/coh/other/f/child', -1);
    await client.remove('/coh/other/d/n', -1);
    await eventually(async () => (await m.ok('ls d')) === '', 'node gone', 2000);
  });

  it.each([
    { how: 'stat', kind: 'read-write', args: [] },
    { how: 'stat', kind: 'read-only', args: ['--read-only'] },
    { how: 'ls -l', kind: 'read-only', args: ['--read-only'] },
  ])(
    "shows a file another client writes while this mount looks it up ($how) at once, not as it was for the kernel's 10 s ($kind)",
    async ({ how, args }) => {
      // The lookup's read of x is answered before the write; its read of the directory's document
      // after it, and so its reply to the kernel, come after the write's notice, which then found
      // no node of x to drop (a proxy holds that read back; no cache, so that it is made at all).
      const proxy = await startZkProxy(zk.clientPorts[0] as number);
      const base = `/coh/looked-${how.length}-${args.length}`;
      if (!(await client.exists('/coh'))) await client.create('/coh', Buffer.alloc(0));
      await client.create(base, Buffer.alloc(0));
      const m = await mountZkfs(proxy.connectString, base, { args: [...args, '--cache-size', '0'] });
      await client.create(`${base}/x`, Buffer.from('old\n'));
      await sees(m, 'stat -c %h .', '1\n');
      // A listing reads every entry's stat with the document first, then each entry alone.
      proxy.holdRequests(OP_GET_DATA, '__zkfs__', how === 'stat' ? 0 : 1);
      // Not run in the mount: spawn() waits for the child's exec, and so for its chdir there.
      const looked =
        how === 'stat' ? execa('stat', ['-c', '%s', join(m.dir, 'x')]) : execa('ls', ['-l', m.dir]);
      looked.catch(() => {});
      await proxy.holding();
      await client.setData(`${base}/x`, Buffer.from('written\n'), -1);
      await new Promise((resolve) => setTimeout(resolve, 300));
      proxy.releaseRequests();
      // The lookup itself reads x again, and answers with what was written.
      const shown = (await looked).stdout;
      if (how === 'stat') expect(shown).toBe('8');
      else expect(shown).toMatch(/ 8 .* x$/m);
      // Its size first: a read would make the kernel ask for it again (it reads past the old end).
      await eventually(async () => (await m.ok('stat -c %s x')) === '8\n', 'the new size', 1000);
      expect(await m.ok('cat x')).toBe('written\n');
      await m.unmount();
    },
  );

  it('shows nodes it may not read that another client creates or deletes, in a directory where it met one', async () => {
    // ZooKeeper 3.8.4+ tells the mount's recursive watch nothing about such nodes: it listed the
    // directory as it was, for as long as it was mounted.
    const alice = createHash('sha1').update('alice:pw').digest('base64');
    const secret = { acl: [{ perms: 31, scheme: 'digest', id: `alice:${alice}` }] };
    const m = await mountZkfs(zk.connectString, '/coh/acl');
    // Made by another client before the mount lists anything: a first such node is found by a listing.
    await client.create('/coh/acl/d', Buffer.alloc(0));
    await client.create('/coh/acl/d/open', Buffer.from('o\n'));
    await client.create('/coh/acl/d/s1', Buffer.from('s\n'), secret);
    // One directly under the mount root, where no child watch may go (it would replace the recursive one).
    await client.create('/coh/acl/top', Buffer.from('t\n'), secret);
    expect(await m.ok('ls d')).toBe('open\ns1\n');
    expect(await m.ok('ls')).toBe('d\ntop\n');
    expect((await m.sh('cat d/s1')).stderr).toContain('Permission denied');

    const soon = (check: () => Promise<boolean>, what: string) => eventually(check, what, 1000);
    await client.remove('/coh/acl/d/s1', -1);
    await client.create('/coh/acl/d/s2', Buffer.from('s\n'), secret);
    await soon(async () => (await m.ok('ls d')) === 'open\ns2\n', 'the unreadable node replaced');
    expect((await m.sh('test -e d/s1')).exitCode).toBe(1);
    await client.create('/coh/acl/d/new', Buffer.from('n\n'));
    await soon(async () => (await m.ok('ls d')) === 'new\nopen\ns2\n', 'a readable node beside them');
    expect(await m.ok('cat d/new')).toBe('n\n');
    // The recursive watch still speaks for the whole tree.
    await client.setData('/coh/acl/d/open', Buffer.from('changed\n'), -1);
    await soon(async () => (await m.ok('cat d/open')) === 'changed\n', 'a data change below');
    expect((await status(m.dir)).cache.childWatches).toBe(1);
    expect(await zkfsctl(['status', m.dir])).toMatchObject({
      stdout: expect.stringContaining(
        'kept exact by a watch, and by watches on 1 directory holding nodes it may not read,',
      ),
    });

    // Readable nodes made there come with notices of their own: nothing is read again for them.
    const before = await status(m.dir);
    for (let i = 0; i < 20; i++) await client.create(`/coh/acl/d/r${i}`, Buffer.alloc(0));
    for (let i = 0; i < 20; i++) await client.remove(`/coh/acl/d/r${i}`, -1);
    let after = before;
    await soon(async () => {
      after = await status(m.dir);
      return after.cache.notices - before.cache.notices >= 80;
    }, 'a node notice and a children notice for each of 40 changes');
    expect(after.session.requests - before.session.requests).toBe(0);
    expect(await m.ok('ls d')).toBe('new\nopen\ns2\n');
  });

  it("a program holding a file open for reading reads another client's later change through it, as tail -f does", async () => {
    const m = await mountZkfs(zk.connectString, '/coh/follow');
    await m.ok('printf "one\\n" > log');
    // Reads to the end, waits for a line, then reads on from where it was (tail -f) and again from the start.
    const follower = execa(
      process.execPath,
      [
        '-e',
        `const fs = require('node:fs');
         const fd = fs.openSync('log', 'r');
         const buf = Buffer.alloc(4096);
         let at = fs.readSync(fd, buf, 0, 4096, null);
         process.stdout.write(buf.subarray(0, at).toString() + '|');
         process.stdin.once('data', () => {
           const more = fs.readSync(fd, buf, 0, 4096, null);
           process.stdout.write(buf.subarray(0, more).toString() + '|');
           const all = fs.readSync(fd, buf, 0, 4096, 0);
           process.stdout.write(buf.subarray(0, all).toString() + '|' + fs.fstatSync(fd).size);
           process.exit(0);
         });`,
      ],
      { cwd: m.dir, stdin: 'pipe', reject: false, timeout: 30_000 },
    );
    await waitUntilOpen(follower.pid!, join(m.dir, 'log'));
    await client.setData('/coh/follow/log', Buffer.from('one\ntwo\n'), -1);
    // Its size shows the change (a stat opens nothing, which would read the new data for every handle).
    await sees(m, 'stat -c %s log', '8\n');
    follower.stdin?.end('\n');
    const r = await follower;
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('one\n|two\n|one\ntwo\n|8');
  });

  it('modes, owners, links and renames made on one mount show on another at once, though its kernel caches for 10 s', async () => {
    const [a, b] = await mountTwice(zk.connectString, '/coh/meta');
    await a.ok('mkdir -p d/e && echo x > d/f && echo y > d/e/g');
    // b's kernel now holds all of it.
    expect(await b.ok('stat -c "%a %u %F" d/f d/e d/e/g')).toBe(
      '644 0 regular file\n755 0 directory\n644 0 regular file\n',
    );
    const soon = (check: () => Promise<boolean>, what: string) => eventually(check, what, 1000);
    await a.ok('chmod 600 d/f && chown 123 d/e/g');
    await soon(async () => (await b.ok('stat -c "%a" d/f')) === '600\n', 'mode');
    await soon(async () => (await b.ok('stat -c "%u" d/e/g')) === '123\n', 'owner');
    await a.ok('ln -s f d/link');
    await soon(async () => (await b.sh('readlink d/link')).stdout === 'f\n', 'new link');
    await a.ok('rm d/link && mv d/e d/moved');
    await soon(
      async () => (await b.sh('test -e d/link || test -e d/e')).exitCode !== 0,
      'link and old name gone',
    );
    expect(await b.ok('cat d/moved/g')).toBe('y\n');
    await a.ok('echo bigger content > d/f');
    await soon(async () => (await b.ok('cat d/f')) === 'bigger content\n', 'content');
    expect(await b.ok('stat -c %s d/f')).toBe('15\n');
  });

  it('a chmod back and forth on one mount shows each time on another, which keeps stat-ing the file', async () => {
    // Another host's chmod is told to the kernel by comparing the directory's document before and
    // after it. A stat meanwhile read the new document, and when the mode went back before the
    // comparison, before and after were equal: the kernel kept the mode in between for its whole
    // --attr-timeout (10 s), about once in a hundred changes.
    const [a, b] = await mountTwice(zk.connectString, '/coh/chmod');
    await a.ok('mkdir d && echo x > d/f');
    expect(await b.ok('stat -c %a d/f')).toBe('644\n');
    const run = await execa(
      'python3',
      ['-c', CHMOD_PING_PONG, join(a.dir, 'd/f'), join(b.dir, 'd/f'), '500'],
      {
        reject: false,
      },
    );
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    console.log(`chmod on one mount to stat on another: ${run.stdout}`);
  });

  it('a directory listed on one mount while another copies files into it shows each as the file it is', async () => {
    const [a, b] = await mountTwice(zk.connectString, '/coh/fill');
    await a.ok('mkdir d && echo first > d/first');
    expect(await b.ok('ls d')).toBe('first\n'); // b's kernel and cache hold the directory and its document
    // b keeps listing as the copy goes: every name it shows is a regular file (an empty node whose
    // type the document has not told b yet would show as a directory).
    const copy = a.ok(
      'mkdir /tmp/src-$$ && for i in $(seq 100 299); do echo "file $i" > /tmp/src-$$/f$i; done && chmod 600 /tmp/src-$$/f150 && cp -p /tmp/src-$$/* d/ && rm -r /tmp/src-$$',
    );
    let done = false;
    void copy.finally(() => {
      done = true;
    });
    let listings = 0;
    while (!done) {
      const types = await b.ok('find d -mindepth 1 -printf "%y\\n" | sort | uniq -c');
      expect(types.trim(), 'only regular files').toMatch(/^\d+ f$/);
      listings++;
    }
    await copy;
    expect(listings).toBeGreaterThan(0);
    await eventually(
      async () => (await b.ok('ls d | wc -l')).trim() === '201',
      'all 200 copies listed',
      1000,
    );
    expect(await b.ok('cat d/f100 d/f299 && stat -c "%a %s %F" d/f150 d/f151')).toBe(
      'file 100\nfile 299\n600 9 regular file\n644 9 regular file\n',
    );
  });

  it('a write on one mount is read on another within 100 ms (1,000 writes, p50 and p99)', async () => {
    const [a, b] = await mountTwice(zk.connectString, '/coh/pair');
    await a.ok('echo start > shared');
    await sees(b, 'cat shared', 'start\n');
    const sorted = await writeToReadLatencies(a, b, 1000, 'on one mount read on another');
    expect(sorted).toHaveLength(1000);
    expect(percentile(sorted, 99)).toBeLessThan(100);
  });

  it('a read-only mount re-reads unchanged files with no request at all, and still shows every change within 100 ms', async () => {
    const a = await mountZkfs(zk.connectString, '/coh/ro');
    await a.ok('mkdir d && for i in $(seq 1 40); do echo "file $i" > d/f$i; done && echo start > shared');
    const b = await mountZkfs(zk.connectString, '/coh/ro', { args: ['--read-only'] });
    expect(await b.ok('cat d/f7 shared')).toBe('file 7\nstart\n');
    await b.ok('find . -type f | xargs cat > /dev/null');
    const before = await status(b.dir);
    const again = await b.ok('find . -type f | xargs cat; cat d/f1 d/f40');
    const after = await status(b.dir);
    expect(again).toContain('start\n');
    expect(again.endsWith('file 1\nfile 40\n')).toBe(true);
    // The kernel opens, reads and closes cached files without asking the daemon.
    expect(after.operations.total).toBe(before.operations.total);

    // Reading d/f1 puts the files listed after it into the kernel's page cache, never a
    // directory's or a link's (their pages hold a listing and a target).
    await a.ok('mkdir d/f1a && echo inside > d/f1a/x && ln -s f2 d/f1b');
    await client.setData('/coh/ro/d/f1a', Buffer.from('data of a directory'), -1);
    await sees(b, 'ls -d d/f1a d/f1b', 'd/f1a\nd/f1b\n');
    await b.ok('cat d/f1 > /dev/null');
    expect(await b.ok('ls d/f1a; cat d/f1a/x d/f1a/_zoo_data_; echo; readlink d/f1b; cat d/f1b')).toBe(
      '_zoo_data_\nx\ninside\ndata of a directory\nf2\nfile 2\n',
    );
    expect((await status(b.dir)).kernel.pagesStored).toBeGreaterThan(0);

    await client.setData('/coh/ro/d/f1', Buffer.from('a longer second version\n'), -1);
    await sees(b, 'cat d/f1; stat -c %s d/f1', 'a longer second version\n24\n');
    await a.ok('echo x > d/f2');
    await sees(b, 'cat d/f2', 'x\n');

    const sorted = await writeToReadLatencies(a, b, 300, 'read on a read-only mount');
    expect(sorted).toHaveLength(300);
    expect(percentile(sorted, 99)).toBeLessThan(100);
  });

  it('reads ahead on a read-write mount, files open for reading included, and a truncate, overwrite or append made here right after is what is read', async () => {
    const m = await mountZkfs(zk.connectString, '/coh/ahead');
    // Made by another client, so the mount's kernel holds none of it when the script starts.
    const old = (d: number, f: number) => `old ${d} ${f} ${'o'.repeat(100 + f)}`;
    const dirs: string[] = [];
    for (let d = 0; d < 20; d++) {
      await client.create(`/coh/ahead/d${d}`, Buffer.alloc(0));
      await Promise.all(
        Array.from({ length: 40 }, (_, f) =>
          client.create(`/coh/ahead/d${d}/f${String(f).padStart(2, '0')}`, Buffer.from(old(d, f))),
        ),
      );
      dirs.push(join(m.dir, `d${d}`));
    }
    const script = join(scratchDir('zkfs-ahead'), 'ahead.cjs');
    writeFileSync(script, AHEAD_SCRIPT);
    const before = await status(m.dir);
    const r = await execa(process.execPath, [script, ...dirs], { timeout: 120_000 });
    const seen = JSON.parse(r.stdout) as string[][];
    // (Cut to 3 bytes, not 0: an empty node another client made reads as a directory in hybrid mode.)
    expect(seen).toEqual(
      dirs.map((_, d) => [
        'old',
        'new',
        `${old(d, 7)}+`,
        old(d, 8),
        old(d, 9),
        'new',
        `NEW${old(d, 11).slice(3)}`,
      ]),
    );
    expect((await status(m.dir)).kernel.pagesStored).toBeGreaterThan(before.kernel.pagesStored);
    for (let d = 0; d < 20; d++) {
      expect((await client.getData(`/coh/ahead/d${d}/f05`)).data.toString()).toBe('old');
      expect((await client.getData(`/coh/ahead/d${d}/f06`)).data.toString()).toBe('new');
      expect((await client.getData(`/coh/ahead/d${d}/f10`)).data.toString()).toBe('new');
      expect((await client.getData(`/coh/ahead/d${d}/f11`)).data.toString()).toBe(
        `NEW${old(d, 11).slice(3)}`,
      );
    }
  });

  it('walks a tree larger than its cache reading ahead all the same: few READs, every byte right, twice', async () => {
    const base = '/coh/big';
    const content = (d: number, f: number) => `${d}/${f} ${'x'.repeat(480)}\n`;
    const paths: string[] = [];
    if (!(await client.exists('/coh'))) await client.create('/coh', Buffer.alloc(0));
    await client.create(base, Buffer.alloc(0));
    for (let d = 0; d < 10; d++) {
      await client.create(`${base}/d${d}`, Buffer.alloc(0));
      await Promise.all(
        Array.from({ length: 100 }, (_, f) => {
          const name = `d${d}/f${String(f).padStart(3, '0')}`;
          paths.push(`./${name}`);
          return client.create(`${base}/${name}`, Buffer.from(content(d, f)));
        }),
      );
    }
    // 1,000 files of 500 bytes: their data alone is more than twice the cache.
    const m = await mountZkfs(zk.connectString, base, { args: ['--cache-size', '192Ki'] });
    const byPath = new Map(paths.map((p) => [p, p.slice(2).split('/')]));
    const expected = createHash('sha256');
    for (const p of [...paths].sort()) {
      const [d, f] = byPath.get(p) as [string, string];
      expected.update(content(Number(d.slice(1)), Number(f.slice(1))));
    }
    const digest = expected.digest('hex');
    for (let walk = 1; walk <= 2; walk++) {
      const {
        value: out,
        reads,
        before,
        after,
      } = await readsDuring(m.dir, () => m.ok('find . -type f | LC_ALL=C sort | xargs cat | sha256sum'));
      expect(out.split(' ')[0], `walk ${walk}`).toBe(digest);
      // Reading ahead stores about 64 files per READ (races with cat add some: 20-110 measured, under
      // load too); one READ per file, 1,000, is what a cache that lost the data costs.
      console.log(`zkfs larger than cache: walk ${walk}, ${reads} READs`);
      expect(reads, `READs in walk ${walk}`).toBeLessThan(400);
      expect(after.cache.evictions).toBeGreaterThan(before.cache.evictions);
    }
  });

  it('reads further ahead while a program reads through whole windows: one READ for a directory after the first', async () => {
    const base = '/coh/wide';
    const content = (d: number, f: number) => `${d}/${f} ${'w'.repeat(300)}\n`;
    if (!(await client.exists('/coh'))) await client.create('/coh', Buffer.alloc(0));
    await client.create(base, Buffer.alloc(0));
    for (let d = 0; d < 3; d++) {
      await client.create(`${base}/d${d}`, Buffer.alloc(0));
      await Promise.all(
        Array.from({ length: 200 }, (_, f) =>
          client.create(`${base}/d${d}/f${String(f).padStart(3, '0')}`, Buffer.from(content(d, f))),
        ),
      );
    }
    const m = await mountZkfs(zk.connectString, base);
    const { value: bytes, reads } = await readsDuring(m.dir, () => m.ok(SLOW_ORDERED_READ));
    let expected = 0;
    for (let d = 0; d < 3; d++) for (let f = 0; f < 200; f++) expected += content(d, f).length;
    expect(Number(bytes)).toBe(expected);
    console.log(`zkfs read-ahead, 3 directories of 200 files read in order: ${reads} READs`);
    // Windows of 64 files throughout took 4 READs per directory (files 0, 65, 130 and 195): 12.
    // Doubling after each window read through: 3 in the first directory (0, 65, 194), 1 in each after.
    expect(reads).toBeLessThanOrEqual(6);
  });

  it('reads ahead on into the next directories: a walk of small directories costs a few READs, not one each', async () => {
    const base = '/coh/small';
    const content = (d: number, f: number) => `${d}/${f} ${'s'.repeat(200)}\n`;
    if (!(await client.exists('/coh'))) await client.create('/coh', Buffer.alloc(0));
    await client.create(base, Buffer.alloc(0));
    let expected = 0;
    for (let d = 0; d < 20; d++) {
      await client.create(`${base}/d${String(d).padStart(2, '0')}`, Buffer.alloc(0));
      await Promise.all(
        Array.from({ length: 10 }, (_, f) => {
          expected += content(d, f).length;
          return client.create(`${base}/d${String(d).padStart(2, '0')}/f${f}`, Buffer.from(content(d, f)));
        }),
      );
    }
    const m = await mountZkfs(zk.connectString, base);
    const { value: bytes, reads } = await readsDuring(m.dir, () => m.ok(SLOW_ORDERED_READ));
    expect(Number(bytes)).toBe(expected);
    console.log(`zkfs read-ahead, 20 directories of 10 files read in order: ${reads} READs`);
    // Each directory's first file was a READ (20) while a window stopped at its directory's end.
    expect(reads).toBeLessThanOrEqual(5);
  });

  it('reads ahead again once the kernel has dropped what it read ahead, also after the mount sat idle', async () => {
    const base = '/coh/dropped';
    const content = (d: number, f: number) => `${d}/${f} ${'y'.repeat(480)}\n`;
    if (!(await client.exists('/coh'))) await client.create('/coh', Buffer.alloc(0));
    await client.create(base, Buffer.alloc(0));
    const expected = createHash('sha256');
    for (let d = 0; d < 5; d++) {
      await client.create(`${base}/d${d}`, Buffer.alloc(0));
      await Promise.all(
        Array.from({ length: 100 }, (_, f) =>
          client.create(`${base}/d${d}/f${String(f).padStart(3, '0')}`, Buffer.from(content(d, f))),
        ),
      );
      for (let f = 0; f < 100; f++) expected.update(content(d, f));
    }
    const digest = expected.digest('hex');
    const m = await mountZkfs(zk.connectString, base);
    // What memory pressure does to the pages of files nobody has open.
    const dropPages = `python3 -c '
import os
for root, _, files in os.walk("."):
    for name in files:
        fd = os.open(os.path.join(root, name), os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)'`;
    const walk = async (what: string) => {
      const { value: out, reads } = await readsDuring(m.dir, () =>
        m.ok('find . -type f | LC_ALL=C sort | xargs cat | sha256sum'),
      );
      expect(out.split(' ')[0], what).toBe(digest);
      console.log(`zkfs read-ahead, ${what}: ${reads} READs for 500 files`);
      return reads;
    };
    await walk('first walk');
    await m.ok(dropPages);
    // Before: the mount took those files for stored still, and each cost a READ (495-500 measured).
    // Now: 15-40 measured, as on the first walk; up to 130 in a full CI run, the machine busy.
    expect(await walk('pages dropped')).toBeLessThan(300);
    // Idle past the time after which stores lost again are left to READ (page-store.ts, 10 s). When a
    // worker wrote the stores and stopped when idle, the walk was over before another had started
    // (214-361 READs measured); the native store thread now waits 30 s before it ends.
    await new Promise((resolve) => setTimeout(resolve, 11_000));
    await m.ok(dropPages);
    expect(await walk('pages dropped while idle')).toBeLessThan(300);
  });

  it('zkfsctl status shows the session, server, cache and counters; refuses what is not a zkfs mount', async () => {
    // Sockets of daemons killed before they could remove them go when the next daemon starts.
    const dead = statusSocketPath(spawnSync('true').pid, zkfsRunDir());
    const live = statusSocketPath(process.pid, zkfsRunDir());
    for (const path of [dead, live]) writeFileSync(path, '');
    const m = await mountZkfs(zk.connectString, '/coh/status');
    expect(existsSync(dead)).toBe(false);
    expect(existsSync(live)).toBe(true);
    rmSync(live);
    await m.ok('echo x > f && cat f && ls -l');
    const text = await zkfsctl(['status', m.dir]);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toContain(m.dir);
    expect(text.stdout).toMatch(new RegExp(`connected to 127\\.0\\.0\\.1:${zk.clientPorts[0]}`));
    expect(text.stdout).toMatch(/kept exact by a watch, \d+ entr(y|ies), .* of 64\.0 MiB/);
    expect(text.stdout).toMatch(/hit rate\s+\d+\.\d% \(\d+ hits?, \d+ miss(es)?\)/);
    expect(text.stdout).toMatch(/operations\s+\d+/);
    const json = await status(m.dir);
    expect(json.session).toMatchObject({ state: 'connected', server: `127.0.0.1:${zk.clientPorts[0]}` });
    expect(json.session.id).toMatch(/^0x[0-9a-f]{16}$/);
    expect(json.cache.entries).toBeGreaterThan(0);
    expect(json.operations.total).toBeGreaterThan(0);
    expect(json.kernel).toMatchObject({ attrTimeoutMs: 10_000, notifications: true });
    expect(text.stdout).toMatch(/kernel cache\s+attributes, names and pages up to 10 s, dropped on change/);
    // The daemon's whole resident memory, as the kernel counts it, not the cache's share.
    expect(text.stdout).toMatch(/memory\s+\d+(\.\d+)? MiB resident, the cache included/);
    const vmRssKiB = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${json.pid}/status`, 'utf8'))?.[1]);
    expect(json.memory?.residentBytes).toBeGreaterThan(vmRssKiB * 1024 * 0.5);
    expect(json.memory?.residentBytes).toBeLessThan(vmRssKiB * 1024 * 2);
    expect(json.memory?.residentBytes).toBeGreaterThan(json.cache.bytes);
    const elsewhere = await zkfsctl(['status', scratchDir('zkfs-not-mounted')]);
    expect(elsewhere.exitCode).toBe(1);
    expect(elsewhere.stderr).toContain('is not mounted');
    const { result: bad } = await tryMountZkfs(zk.connectString, '/x', { args: ['--cache-size', 'lots'] });
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('--cache-size');
  });

  it('polls for the next request after answers by default, not with --busy-poll 0, and status says so', async () => {
    // Polling follows the answers given in JavaScript; the native reader answers these re-opens itself.
    const env = { VOLKIT_FUSE_READER: 'event-loop' };
    const polled = await mountZkfs(zk.connectString, '/coh/poll', { env });
    const still = await mountZkfs(zk.connectString, '/coh/poll', { args: ['--busy-poll', '0'], env });
    await polled.ok('for i in $(seq 20); do echo $i > f$i; done');
    // Reading files one after another: each open answered, the next one asked for at once; enough
    // of them for the daemon to try polling against sleeping at least once (256 cycles).
    for (const m of [polled, still]) await m.ok('for i in $(seq 20); do cat f* > /dev/null; done');
    const on = (await status(polled.dir)).polling;
    expect(on.windowUs).toBe(100);
    expect(on.windows).toBeGreaterThan(0);
    expect(on.hits).toBeGreaterThan(0);
    expect(on.trials).toBeGreaterThan(0);
    expect(on.won).toBeLessThanOrEqual(on.trials!);
    expect((await zkfsctl(['status', polled.dir])).stdout).toMatch(
      /polling\s+100 us after answers where it pays: [\d,]+ windows?, .*; faster than sleeping in \d+ of \d+ trials?, so (not )?polling between them/,
    );
    expect((await status(still.dir)).polling).toEqual({
      windowUs: 0,
      windows: 0,
      hits: 0,
      misses: 0,
      trials: 0,
      won: 0,
      pays: false,
    });
    expect((await zkfsctl(['status', still.dir])).stdout).toMatch(/polling\s+off \(--busy-poll 0\)/);
  });
});
