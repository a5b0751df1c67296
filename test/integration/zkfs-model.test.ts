/**
 * Programs on two mounts of one tree doing random file operations (writes,
 * appends, renames, truncates, partial overwrites, removals) in one shared
 * directory while the ZooKeeper server is killed and started again under
 * them: each program keeps a model of its own files, checks what it reads
 * against it as it goes (on its own mount, and on the other within 5 s:
 * after a restart, until that mount is connected again), and at the end every file is, on both mounts and in ZooKeeper,
 * what the model says. No operation may fail.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ZkClient } from '../../src/adapters/zookeeper.js';
import { missing } from '../fixtures/environment.js';
import { startRacingPrograms } from '../fixtures/racing-programs.js';
import { startZk, type ZkServer } from '../fixtures/zk-server.js';
import { mountZkfs } from '../fixtures/zkfs-mount.js';

/**
 * One program: node model.cjs DIR OTHER ID OPS SEED. Works on DIR/pID-f0…f11,
 * reads the same names under OTHER (the other mount) to check them too, and
 * prints its model (name -> base64 content) as JSON when done; a mismatch or
 * a failed operation goes to stderr and makes the exit code 1.
 */
const MODEL_SCRIPT = `
const fs = require('node:fs');
const [dir, other, id, ops, seed0] = process.argv.slice(2);
let seed = Number(seed0) >>> 0;
const rnd = (n) => { seed = (seed * 1103515245 + 12345) >>> 0; return (seed >>> 8) % n; };
const model = new Map();
const name = (k) => 'p' + id + '-f' + k;
const content = (i) => Buffer.from(id + ':' + i + ':' + 'x'.repeat(rnd(3000)) + '\\n');
const fail = (what) => { process.stderr.write('program ' + id + ': ' + what + '\\n'); process.exitCode = 1; };
const readOr = (path) => { try { return fs.readFileSync(path); } catch (e) { return e.code; } };
const same = (want, got) => (Buffer.isBuffer(want) && Buffer.isBuffer(got) ? want.equals(got) : want === got);
const shown = (v) => (Buffer.isBuffer(v) ? v.length + ' bytes ' + JSON.stringify(v.subarray(0, 24).toString()) : v);
const check = (n, root, tries) => {
  const want = model.get(n) ?? 'ENOENT';
  let got = readOr(root + '/' + n);
  for (let t = 1; t < tries && !same(want, got); t++) {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    got = readOr(root + '/' + n);
  }
  if (!same(want, got)) fail(root + '/' + n + ': want ' + shown(want) + ', read ' + shown(got));
};
for (let i = 0; i < Number(ops); i++) {
  const n = name(rnd(12));
  const f = dir + '/' + n;
  const op = rnd(9);
  const had = model.get(n);
  try {
    if (op <= 1) { const c = content(i); fs.writeFileSync(f, c); model.set(n, c); }
    else if (op === 2) { const c = content(i); fs.appendFileSync(f, c); model.set(n, Buffer.concat([had ?? Buffer.alloc(0), c])); }
    else if (op === 3 && had) { const to = name(rnd(12)); fs.renameSync(f, dir + '/' + to); model.delete(n); model.set(to, had); }
    else if (op === 4 && had) {
      const size = rnd(had.length + 10);
      fs.truncateSync(f, size);
      const next = Buffer.alloc(size); had.copy(next, 0, 0, Math.min(size, had.length)); model.set(n, next);
    }
    else if (op === 5 && had) { fs.unlinkSync(f); model.delete(n); }
    else if (op === 6 && had) {
      const at = rnd(had.length + 1); const c = Buffer.from('<' + i + '>');
      const fd = fs.openSync(f, 'r+'); fs.writeSync(fd, c, 0, c.length, at); fs.closeSync(fd);
      const next = Buffer.alloc(Math.max(had.length, at + c.length)); had.copy(next); c.copy(next, at); model.set(n, next);
    }
    else if (op === 7) check(n, dir, 1);
    else if (op === 8) check(n, other, 250);
  } catch (e) {
    fail('operation ' + op + ' on ' + n + ': ' + (e.code ?? e.message));
  }
}
for (let k = 0; k < 12; k++) check(name(k), dir, 1);
const out = {};
for (const [n, c] of model) out[n] = c.toString('base64');
process.stdout.write(JSON.stringify(out));
`;

const PROGRAMS_PER_MOUNT = 3;
const OPS = 800;

describe.skipIf(missing({ fuse: true }))('zkfs against a model of its files', () => {
  let zk: ZkServer;
  let client: ZkClient;

  beforeAll(async () => {
    zk = await startZk();
    client = await ZkClient.connect({ connectString: zk.connectString, requestTimeoutMs: 60_000 });
  });
  afterAll(async () => {
    await client?.close();
  });

  it('random operations by programs on two mounts in one directory, the server restarted under them, leave every file as they made it', async () => {
    const args = ['--reconnect-timeout', '60'];
    const a = await mountZkfs(zk.connectString, '/model', { args });
    const b = await mountZkfs(zk.connectString, '/model', { args });
    await a.ok('mkdir shared');
    const programs = startRacingPrograms({
      name: 'zkfs-model',
      source: MODEL_SCRIPT,
      mounts: [a, b],
      perMount: PROGRAMS_PER_MOUNT,
      argv: (here, there, id) => [
        join(here.dir, 'shared'),
        join(there.dir, 'shared'),
        String(id),
        String(OPS),
        String(1000 + id),
      ],
      timeoutMs: 300_000,
    });
    let running = true;
    const finished = Promise.all(programs).finally(() => {
      running = false;
    });
    let restarts = 0;
    while (running) {
      await new Promise((resolve) => setTimeout(resolve, 2000));
      if (!running) break;
      await zk.kill(0);
      await zk.start(0);
      restarts++;
    }
    const results = await finished;
    for (const r of results) expect(r.stderr, 'what a program found wrong').toBe('');
    for (const r of results) expect(r.exitCode).toBe(0);
    console.log(
      `${programs.length} programs, ${OPS} operations each, the server restarted ${restarts} times`,
    );
    expect(restarts).toBeGreaterThan(0);

    const model = new Map<string, Buffer>();
    for (const r of results) {
      for (const [name, content] of Object.entries(JSON.parse(r.stdout) as Record<string, string>)) {
        model.set(name, Buffer.from(content, 'base64'));
      }
    }
    const expected = [...model.keys()].sort();
    for (const m of [a, b]) {
      expect((await m.ok('ls shared')).split('\n').filter(Boolean).sort()).toEqual(expected);
    }
    const { children } = await client.getChildren('/model/shared');
    expect(children.filter((n) => n !== '__zkfs__').sort()).toEqual(expected);
    for (const [name, content] of model) {
      expect(
        (await client.getData(`/model/shared/${name}`)).data.equals(content),
        `${name} in ZooKeeper`,
      ).toBe(true);
      for (const m of [a, b]) {
        expect(readFileSync(join(m.dir, 'shared', name)).equals(content), `${name} in ${m.dir}`).toBe(true);
      }
    }
  });
});
