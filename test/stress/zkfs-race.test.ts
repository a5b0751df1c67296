/**
 * A stress run, not part of `npm test` (`npm run stress`, a few minutes per
 * fault): programs on two mounts of one tree racing each other while
 * ZooKeeper fails under them, the leader of a three-server ensemble killed
 * every few seconds, or each mount's session expired in turn by freezing its
 * daemon past the session's timeout.
 *
 * What they do: new files renamed over a few shared names, renames between
 * those names and removals of them; rewrites in place of two more names, one
 * writer per mount; files made in place (O_EXCL) under three more names
 * that others remove or rename over; appends to shared logs; and, each in a
 * directory of its own, files in subdirectories that are made, renamed
 * (whole directories too) and removed. A name only ever replaced by a
 * rename reads, on either mount, as missing or as one whole file some
 * program wrote, never a mix nor empty (one made in place may be empty
 * until closed); an own file reads as its program wrote it. At the end both
 * mounts and ZooKeeper agree on every name, each shared name holds one whole file,
 * each log holds every line whose append returned, once and in each
 * program's order, and every own directory is as its program left it.
 *
 * Meanwhile programs on a third, read-only mount of the tree (whose kernel
 * opens files without asking the daemon) read the shared names to their
 * end, over and over: each reads as missing or one whole file, never a mix.
 *
 * STRESS_OPS sets the operations per program; STRESS_CACHE_SIZE mounts with
 * that --cache-size (a small one makes memory let go of nodes under load).
 * When a program finds something wrong, both daemons' debug logs are kept in
 * a directory the failure names.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ZkClient } from '../../src/adapters/zookeeper.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { startRacingPrograms } from '../fixtures/racing-programs.js';
import { startZk, type ZkServer } from '../fixtures/zk-server.js';
import { childrenByServer } from '../fixtures/zk-views.js';
import { daemonPid, mountStatus, mountZkfs, type ZkfsMount } from '../fixtures/zkfs-mount.js';

const SHARED_NAMES = 5;
const INPLACE_NAMES = 2;
const MADE_NAMES = 3;
const LOGS = 2;
const PROGRAMS_PER_MOUNT = 3;

/**
 * What both scripts below share, after they set `seed`: rnd(n), a number
 * below n from the seed, and whole(b), whether b is one whole record as
 * the race script's record() writes it (a head naming its body's length and
 * checksum, then the body).
 */
const SCRIPT_BASICS = `
const crypto = require('node:crypto');
const rnd = (n) => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };
const sum = (b) => crypto.createHash('sha1').update(b).digest('hex').slice(0, 12);
const whole = (b) => {
  const nl = b.indexOf(10);
  const head = b.subarray(0, nl).toString().split(':');
  const body = b.subarray(nl + 1);
  return head.length === 4 && Number(head[2]) === body.length && head[3] === sum(body);
};
// What was read, for a finding: the tail tells zeros (a size the kernel kept) from another file's bytes.
const shown = (v) => {
  if (!Buffer.isBuffer(v)) return v;
  const text = (b) => JSON.stringify(b.toString('latin1'));
  return v.length + ' bytes ' + text(v.subarray(0, 40)) + ' … ' + text(v.subarray(-24));
};
// The time as the daemons' logs give it.
const now = () => new Date().toISOString();
`;

/**
 * One program: node race.cjs ROOT OTHER ID OPS SEED, ROOT and OTHER being
 * the same tree on two mounts. Prints JSON { own: {path: base64}, dirs: [],
 * appended: {log: [seq…]}, conflicts } when done; anything it finds wrong, or
 * an operation that fails where it may not, goes to stderr and makes the
 * exit code 1.
 */
const RACE_SCRIPT = `
const fs = require('node:fs');
const [root, other, id, ops, seed0] = process.argv.slice(2);
const SHARED = ${SHARED_NAMES}, INPLACE = ${INPLACE_NAMES}, MADE = ${MADE_NAMES}, LOGS = ${LOGS};
let seed = Number(seed0) >>> 0;
${SCRIPT_BASICS}
const fail = (what) => { process.stderr.write('program ' + id + ': ' + what + '\\n'); process.exitCode = 1; };
// A whole file as some program wrote it: a head naming its body's length and checksum.
const record = (i) => {
  const body = Buffer.from('x'.repeat(rnd(2000)) + '\\n');
  return Buffer.concat([Buffer.from(id + ':' + i + ':' + body.length + ':' + sum(body) + '\\n'), body]);
};
// ESTALE, which libuv has no name for, is errno 116.
const read = (p) => { try { return fs.readFileSync(p); } catch (e) { return e.errno === -116 ? 'ESTALE' : e.code; } };
const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const mine = 'own' + id;
const own = new Map();   // path under mine -> content
const dirs = new Set();  // subdirectories of mine
const appended = {};
let conflicts = 0, stale = 0, lost = 0;
fs.mkdirSync(root + '/' + mine);
const at = (r, p) => r + '/' + mine + '/' + p;
const checkShared = (r) => {
  const p = r + '/shared/n' + rnd(SHARED);
  const got = read(p);
  // ESTALE: the name went again while the kernel looked it up once more (README).
  if (got === 'ESTALE') stale++;
  else if (got !== 'ENOENT' && !(Buffer.isBuffer(got) && got.length > 0 && whole(got))) fail(p + ': neither missing nor a whole file at ' + now() + ': ' + shown(got));
};
const checkOwn = (r, tries) => {
  const paths = [...own.keys()];
  if (paths.length === 0) return;
  const p = paths[rnd(paths.length)];
  const want = own.get(p);
  let got = read(at(r, p));
  for (let t = 1; t < tries && !(Buffer.isBuffer(got) && got.equals(want)); t++) { sleep(20); got = read(at(r, p)); }
  if (!(Buffer.isBuffer(got) && got.equals(want))) fail(at(r, p) + ': want ' + shown(want) + ', read ' + shown(got));
};
const dirOf = () => 'd' + rnd(4);
for (let i = 0; i < Number(ops); i++) {
  const op = rnd(18);
  try {
    if (op <= 1 && Number(id) % ${PROGRAMS_PER_MOUNT} === 0) {
      // A rewrite in place, by one program per mount, of names nothing renames: refused (EIO) when
      // the other host's writer wrote it meanwhile, or ESTALE should the name go twice while
      // open(2) walks to it. (A rewrite in place is not atomic on any filesystem: a program
      // reading the file meanwhile may find it empty, or one version's head with another's tail.)
      const p = root + '/shared/m' + rnd(INPLACE);
      try { fs.writeFileSync(p, record(i)); } catch (e) { if (e.code !== 'EIO' && e.errno !== -116 /* ESTALE, which libuv has no name for */) throw e; conflicts++; }
    } else if (op <= 2) {
      const tmp = root + '/shared/.t' + id + '-' + i;
      fs.writeFileSync(tmp, record(i));
      fs.renameSync(tmp, root + '/shared/n' + rnd(SHARED));
    } else if (op === 3) {
      try { fs.renameSync(root + '/shared/n' + rnd(SHARED), root + '/shared/n' + rnd(SHARED)); } catch (e) { if (e.code !== 'ENOENT') throw e; }
    } else if (op === 4) {
      try { fs.unlinkSync(root + '/shared/n' + rnd(SHARED)); } catch (e) { if (e.code !== 'ENOENT') throw e; }
    } else if (op === 5) checkShared(root);
    else if (op === 6) checkShared(other);
    else if (op === 7) {
      const log = 'l' + rnd(LOGS);
      const seq = (appended[log] ?? []).length;
      fs.appendFileSync(root + '/logs/' + log, id + ':' + seq + '\\n');
      (appended[log] ??= []).push(seq);
    } else if (op === 8) {
      const d = dirOf();
      if (!dirs.has(d)) { fs.mkdirSync(at(root, d)); dirs.add(d); }
    } else if (op === 9 || op === 10) {
      const d = dirOf();
      if (dirs.has(d)) { const p = d + '/f' + rnd(4); const c = record(i); fs.writeFileSync(at(root, p), c); own.set(p, c); }
    } else if (op === 11) {
      const from = dirOf(); const to = dirOf();
      if (dirs.has(from) && !dirs.has(to)) {
        fs.renameSync(at(root, from), at(root, to));
        dirs.delete(from); dirs.add(to);
        for (const [p, c] of [...own]) if (p.startsWith(from + '/')) { own.delete(p); own.set(to + p.slice(from.length), c); }
      }
    } else if (op === 12) {
      const d = dirOf();
      if (dirs.has(d) && rnd(3) === 0) {
        fs.rmSync(at(root, d), { recursive: true });
        dirs.delete(d);
        for (const p of [...own.keys()]) if (p.startsWith(d + '/')) own.delete(p);
      }
    } else if (op === 13) {
      const paths = [...own.keys()];
      const to = dirOf() + '/f' + rnd(4);
      if (paths.length > 0 && dirs.has(to.split('/')[0])) {
        const p = paths[rnd(paths.length)];
        if (p !== to) { fs.renameSync(at(root, p), at(root, to)); own.set(to, own.get(p)); own.delete(p); }
      }
    } else if (op === 14) checkOwn(root, 1);
    else if (op === 15) checkOwn(other, 250);
    else if (op === 16) {
      // Names made in place (O_CREAT|O_EXCL, written, closed) while other programs remove them or
      // rename over them: a close fails (EIO) when another host's did so while the file was open,
      // however soon after it was made.
      const p = root + '/shared/x' + rnd(MADE);
      const how = rnd(3);
      if (how === 0) {
        let fd;
        try { fd = fs.openSync(p, 'wx'); } catch (e) { if (e.code !== 'EEXIST') throw e; }
        if (fd !== undefined) {
          sleep(rnd(10)); // open a while: another host's removal or rename lands meanwhile
          fs.writeSync(fd, record(i));
          try { fs.closeSync(fd); } catch (e) { if (e.code !== 'EIO') throw e; lost++; }
        }
      } else if (how === 1) {
        try { fs.unlinkSync(p); } catch (e) { if (e.code !== 'ENOENT') throw e; }
      } else {
        const tmp = root + '/shared/.u' + id + '-' + i;
        fs.writeFileSync(tmp, record(i));
        fs.renameSync(tmp, p);
      }
    } else {
      // Read on either mount: missing, empty (made, not closed yet) or one whole file.
      const p = (rnd(2) === 0 ? root : other) + '/shared/x' + rnd(MADE);
      const got = read(p);
      if (got === 'ESTALE') stale++;
      else if (got !== 'ENOENT' && !(Buffer.isBuffer(got) && (got.length === 0 || whole(got)))) fail(p + ': neither missing, empty nor a whole file at ' + now() + ': ' + shown(got));
    }
  } catch (e) {
    fail('operation ' + op + ' (step ' + i + '): ' + (e.code ?? e.message));
  }
}
const out = { own: {}, dirs: [...dirs].sort(), appended, conflicts, stale, lost };
for (const [p, c] of own) out.own[p] = c.toString('base64');
process.stdout.write(JSON.stringify(out));
`;

/**
 * A reader on the read-only mount: node read.cjs ROOT SEED STOP reads the
 * shared names, to their end (not as far as fstat() said: README), until
 * the file STOP exists. Prints JSON { reads, missing, stale }; anything it
 * finds wrong goes to stderr and makes the exit code 1.
 */
const READ_SCRIPT = `
const fs = require('node:fs');
const [root, seed0, stop] = process.argv.slice(2);
const SHARED = ${SHARED_NAMES}, MADE = ${MADE_NAMES};
let seed = Number(seed0) >>> 0;
${SCRIPT_BASICS}
const code = (e) => (e.errno === -116 ? 'ESTALE' : e.code); // ESTALE: libuv has no name for it
const readToEnd = (p) => {
  let fd;
  try { fd = fs.openSync(p, 'r'); } catch (e) { return code(e); }
  try {
    const parts = [];
    const chunk = Buffer.alloc(65536);
    for (let n; (n = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0; ) parts.push(Buffer.from(chunk.subarray(0, n)));
    return Buffer.concat(parts);
  } catch (e) { return code(e); } finally { fs.closeSync(fd); }
};
let reads = 0, missing = 0, stale = 0;
while (!fs.existsSync(stop)) {
  // Names only ever replaced by a rename: missing or one whole file. Names made in place: also empty.
  const made = rnd(3) === 0;
  const p = root + '/shared/' + (made ? 'x' + rnd(MADE) : 'n' + rnd(SHARED));
  const got = readToEnd(p);
  reads++;
  if (got === 'ENOENT') missing++;
  else if (got === 'ESTALE') stale++;
  else if (!Buffer.isBuffer(got) || !(whole(got) || (made && got.length === 0))) {
    process.stderr.write('reader: ' + p + ' at ' + now() + ': ' + shown(got) + '\\n');
    process.exitCode = 1;
  }
}
process.stdout.write(JSON.stringify({ reads, missing, stale }));
`;

/** The race script's whole(), for a file as ZooKeeper holds it at the end. */
function isWhole(content: Buffer): boolean {
  const nl = content.indexOf(10);
  const head = content.subarray(0, nl).toString().split(':');
  const body = content.subarray(nl + 1);
  return (
    head.length === 4 &&
    Number(head[2]) === body.length &&
    head[3] === createHash('sha1').update(body).digest('hex').slice(0, 12)
  );
}

interface ProgramResult {
  own: Record<string, string>;
  dirs: string[];
  appended: Record<string, number[]>;
  conflicts: number;
  stale: number;
  lost: number;
}

interface ReaderResult {
  reads: number;
  missing: number;
  stale: number;
}

/** How ZooKeeper fails while the programs run; returns what it did, once `running()` is false. */
type Fault = (zk: ZkServer, mounts: readonly ZkfsMount[], running: () => boolean) => Promise<string>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The leader killed every 2.5 s and started again a second later. */
const leaderKills: Fault = async (zk, _mounts, running) => {
  let kills = 0;
  while (running()) {
    await sleep(2500);
    if (!running()) break;
    const leader = await zk.leader();
    await zk.kill(leader);
    await sleep(1000);
    await zk.start(leader);
    kills++;
  }
  return `${kills} leaders killed`;
};

/** Each daemon in turn frozen past its session's timeout: the server expires the session. */
const sessionExpiries: Fault = async (_zk, mounts, running) => {
  const granted = (await mountStatus(mounts[0]!.dir)).session.timeoutMs;
  let freezes = 0;
  for (let turn = 0; running(); turn++) {
    await sleep(1000);
    if (!running()) break;
    const pid = daemonPid(mounts[turn % mounts.length]!.dir);
    process.kill(pid, 'SIGSTOP');
    await sleep(granted + 2500);
    process.kill(pid, 'SIGCONT');
    freezes++;
  }
  let expiries = 0;
  for (const m of mounts) expiries += (await mountStatus(m.dir)).session.expiries;
  return `${freezes} freezes, ${expiries} sessions expired`;
};

const RUNS = [
  {
    name: 'a three-server ensemble whose leader is killed',
    servers: 3,
    ops: 1500,
    args: [],
    fault: leaderKills,
  },
  {
    name: 'sessions expiring under a frozen daemon',
    servers: 1,
    ops: 1500,
    args: ['--session-timeout', '2'],
    fault: sessionExpiries,
  },
] as const;

for (const run of RUNS) {
  describe.skipIf(missing({ fuse: true }))(`zkfs racing programs, ${run.name}`, () => {
    let zk: ZkServer;
    let client: ZkClient;

    beforeAll(async () => {
      zk = await startZk({ servers: run.servers });
      client = await ZkClient.connect({ connectString: zk.connectString, requestTimeoutMs: 60_000 });
    });
    afterAll(async () => {
      await client?.close();
    });

    it('names replaced by renames read whole, logs keep every line once, own trees stay as made', async () => {
      const ops = Number(process.env.STRESS_OPS ?? run.ops);
      const cache = process.env.STRESS_CACHE_SIZE;
      const args = [
        '--reconnect-timeout',
        '60',
        '--log-level',
        'debug',
        ...run.args,
        ...(cache ? ['--cache-size', cache] : []),
      ];
      const a = await mountZkfs(zk.connectString, '/race', { args });
      const b = await mountZkfs(zk.connectString, '/race', { args });
      await a.ok(
        `mkdir shared logs && touch ${Array.from({ length: LOGS }, (_, k) => `logs/l${k}`).join(' ')}`,
      );
      const c = await mountZkfs(zk.connectString, '/race', { args: [...args, '--read-only'] });
      const stop = join(scratchDir('zkfs-read-stop'), 'stop');
      const readers = startRacingPrograms({
        name: 'zkfs-read',
        source: READ_SCRIPT,
        mounts: [c, c],
        perMount: 1,
        argv: (here, _there, id) => [here.dir, String(3000 + id), stop],
        timeoutMs: 600_000,
      });
      const programs = startRacingPrograms({
        name: 'zkfs-race',
        source: RACE_SCRIPT,
        mounts: [a, b],
        perMount: PROGRAMS_PER_MOUNT,
        argv: (here, there, id) => [here.dir, there.dir, String(id), String(ops), String(2000 + id)],
        timeoutMs: 600_000,
      });
      let running = true;
      const fault = run.fault(zk, [a, b, c], () => running);
      const results = await Promise.all(programs);
      running = false;
      writeFileSync(stop, '');
      const read = await Promise.all(readers);
      const faults = await fault;
      /** Keeps the daemons' logs and ZooKeeper's stats of the shared names; says where. */
      const keep = async (): Promise<string> => {
        const kept = mkdtempSync(join(tmpdir(), 'zkfs-stress-'));
        writeFileSync(join(kept, 'daemon-a.log'), a.log());
        writeFileSync(join(kept, 'daemon-b.log'), b.log());
        writeFileSync(join(kept, 'daemon-c.log'), c.log());
        const { children } = await client.getChildren('/race/shared');
        const stats = await Promise.all(
          children.map(
            async (n) =>
              `${n} ${JSON.stringify((await client.getData(`/race/shared/${n}`)).stat, (_k, v) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v))}`,
          ),
        );
        const byServer = await childrenByServer(zk, '/race/shared');
        const listings = byServer.map((names, i) => `server ${i}: ${names.join(' ')}`);
        writeFileSync(join(kept, 'shared.txt'), `${[...stats, ...listings].join('\n')}\n`);
        return kept;
      };
      const found = [...results, ...read].map((r) => r.stderr).filter(Boolean);
      if (found.length > 0) {
        expect.fail(`the programs found:\n${found.join('\n')}\n(daemon logs kept in ${await keep()})`);
      }
      for (const r of [...results, ...read]) expect(r.exitCode).toBe(0);
      const outs = results.map((r) => JSON.parse(r.stdout) as ProgramResult);
      const readOuts = read.map((r) => JSON.parse(r.stdout) as ReaderResult);
      console.log(
        `${faults}; ${programs.length} programs, ${ops} operations each; ` +
          `${outs.reduce((n, o) => n + o.conflicts, 0)} rewrites in place refused as conflicts, ` +
          `${outs.reduce((n, o) => n + o.lost, 0)} files made in place refused at close (another host's removal or rename while open), ` +
          `${outs.reduce((n, o) => n + o.stale, 0)} reads of a replaced name ESTALE; ` +
          `on the read-only mount, ${readOuts.reduce((n, o) => n + o.reads, 0)} reads to the end, ` +
          `${readOuts.reduce((n, o) => n + o.missing, 0)} missing, ${readOuts.reduce((n, o) => n + o.stale, 0)} ESTALE`,
      );
      try {
        await serversAgree(zk, '/race/shared');
        await agreeAtTheEnd(client, [a, b, c], outs);
      } catch (error) {
        console.log(`the mounts disagree: daemon logs kept in ${await keep()}`);
        throw error;
      }
    });
  });
}

/**
 * Every server of the ensemble holds the same children of `path`, once a
 * follower that lags has had a moment: should one have lost a transaction
 * when its leader was killed (ZooKeeper 3.8.0 has such bugs, fixed later),
 * what the mounts show cannot be judged against it.
 */
async function serversAgree(zk: ZkServer, path: string): Promise<void> {
  let byServer = await childrenByServer(zk, path);
  for (let t = 0; t < 10 && byServer.some((names) => names.join() !== byServer[0]?.join()); t++) {
    await sleep(500);
    byServer = await childrenByServer(zk, path);
  }
  expect(byServer, `ZooKeeper's servers disagree on ${path}`).toEqual(byServer.map(() => byServer[0]));
}

/** Both mounts and ZooKeeper agree on every name, as the programs left them. */
async function agreeAtTheEnd(
  client: ZkClient,
  mounts: readonly ZkfsMount[],
  outs: ProgramResult[],
): Promise<void> {
  const sameOnAll = async (path: string): Promise<Buffer | undefined> => {
    const inZk = await client.getData(`/race/${path}`).then(
      (r) => r.data,
      () => undefined,
    );
    for (const m of mounts) {
      const got = await m.sh(`cat ${path}`);
      expect(got.exitCode === 0 ? got.stdout : undefined, `${path} in ${m.dir} and ZooKeeper`).toEqual(
        inZk?.toString(),
      );
    }
    return inZk;
  };

  // Shared names: the same on both mounts and in ZooKeeper, each one whole file.
  const names = [
    ...Array.from({ length: SHARED_NAMES }, (_, k) => `shared/n${k}`),
    ...Array.from({ length: INPLACE_NAMES }, (_, k) => `shared/m${k}`),
    // Every file made there was closed by the end: none stays empty.
    ...Array.from({ length: MADE_NAMES }, (_, k) => `shared/x${k}`),
  ];
  for (const name of names) {
    const content = await sameOnAll(name);
    if (content) expect(isWhole(content), `${name}: ${content.subarray(0, 40).toString()}`).toBe(true);
  }
  const listed = async (m: ZkfsMount, dir: string) =>
    (await m.ok(`ls -A ${dir}`)).split('\n').filter(Boolean).sort();
  const sharedInZk = (await client.getChildren('/race/shared')).children
    .filter((n) => n !== '__zkfs__')
    .sort();
  for (const m of mounts) expect(await listed(m, 'shared')).toEqual(sharedInZk);

  // Logs: every line whose append returned, once, in its program's order.
  for (let k = 0; k < LOGS; k++) {
    const log = (await sameOnAll(`logs/l${k}`))?.toString() ?? '';
    const lines = log.split('\n').filter(Boolean);
    const byProgram = new Map<string, number[]>();
    for (const line of lines) {
      const [id, seq] = line.split(':');
      byProgram.set(id as string, [...(byProgram.get(id as string) ?? []), Number(seq)]);
    }
    outs.forEach((o, id) => {
      expect(byProgram.get(String(id)) ?? [], `program ${id}'s lines in logs/l${k}`).toEqual(
        o.appended[`l${k}`] ?? [],
      );
    });
    expect(lines.length).toBe(outs.reduce((n, o) => n + (o.appended[`l${k}`]?.length ?? 0), 0));
  }

  // Own trees: as each program left it, on both mounts and in ZooKeeper.
  for (const [id, o] of outs.entries()) {
    for (const m of mounts) expect(await listed(m, `own${id}`), `own${id} in ${m.dir}`).toEqual(o.dirs);
    for (const d of o.dirs) {
      const files = Object.keys(o.own)
        .filter((p) => p.startsWith(`${d}/`))
        .map((p) => p.slice(d.length + 1))
        .sort();
      for (const m of mounts)
        expect(await listed(m, `own${id}/${d}`), `own${id}/${d} in ${m.dir}`).toEqual(files);
    }
    for (const [p, content] of Object.entries(o.own)) {
      expect(
        (await sameOnAll(`own${id}/${p}`))?.equals(Buffer.from(content, 'base64')),
        `own${id}/${p}`,
      ).toBe(true);
    }
  }
}
