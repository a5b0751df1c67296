/**
 * zkfs read and write speed against the two limits of the workload,
 * measured in the same run on the same ZooKeeper:
 *
 * - the floor: the same work done directly with the ZooKeeper client (list
 *   every directory, read every node, each directory's children requested
 *   in parallel over one connection);
 * - tmpfs: the same walk over a copy of the tree in memory, no network and
 *   no FUSE (the physical limit of `find | xargs cat`).
 *
 * Read workload: `find DIR -type f -print0 | xargs -0 cat | wc -c` over a
 * tree of 10,000 znodes (100 directories of 99 files, 200–600 bytes each),
 * cold (a fresh mount) and warm (the same mount again). Write workload:
 * `cp -r` of 1,000 1 KiB files onto the mount against the client creating
 * each node and setting its data, one file after another as cp does.
 *
 * Targets: cold within 1.5x of the floor; warm faster than the floor and
 * within 3x of tmpfs; cp within 2x of the client. Each line says whether
 * its target was met.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { ZkClient } from '../../src/adapters/zookeeper.js';
import { onCleanup, runCleanups } from '../fixtures/cleanup.js';
import { scratchDir, testRoot } from '../fixtures/environment.js';
import { startZk } from '../fixtures/zk-server.js';
import { mountZkfs, zkfsctl } from '../fixtures/zkfs-mount.js';

const DIRS = 100;
const FILES_PER_DIR = 99;
const WRITE_FILES = 1000;
const TREE = '/bench/tree';
const WALK = 'find . -type f -print0 | xargs -0 cat | wc -c';

function fileContent(d: number, f: number): Buffer {
  const n = d * FILES_PER_DIR + f;
  return Buffer.from(`key_${n}=${'v'.repeat(200 + ((n * 37) % 400))}\n`);
}

const names = {
  dir: (d: number) => `d${String(d).padStart(2, '0')}`,
  file: (f: number) => `f${String(f).padStart(2, '0')}`,
};

async function buildTree(client: ZkClient): Promise<number> {
  let bytes = 0;
  for (const path of ['/bench', TREE]) await client.create(path, Buffer.alloc(0)).catch(() => {});
  for (let d = 0; d < DIRS; d++) {
    const dir = `${TREE}/${names.dir(d)}`;
    await client.create(dir, Buffer.alloc(0));
    const creates: Promise<string>[] = [];
    for (let f = 0; f < FILES_PER_DIR; f++) {
      const data = fileContent(d, f);
      bytes += data.length;
      creates.push(client.create(`${dir}/${names.file(f)}`, data));
    }
    await Promise.all(creates);
  }
  return bytes;
}

/** The floor: list and read everything with the client, a directory's children in parallel. */
async function clientWalk(client: ZkClient, path: string): Promise<number> {
  const { children } = await client.getChildren(path);
  const nodes = await Promise.all(children.map((c) => client.getData(`${path}/${c}`)));
  let bytes = 0;
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]!;
    if (node.stat.numChildren > 0) bytes += await clientWalk(client, `${path}/${children[i]}`);
    else if (node.data.length > 0) bytes += node.data.length;
  }
  return bytes;
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = process.hrtime.bigint();
  const value = await work();
  return { ms: Number(process.hrtime.bigint() - start) / 1e6, value };
}

async function shell(cwd: string, script: string): Promise<string> {
  const r = await execa('bash', ['-c', script], { cwd, env: { LC_ALL: 'C' }, timeout: 600_000 });
  return String(r.stdout);
}

async function timedWalk(dir: string, expected: number): Promise<number> {
  const { ms, value } = await timed(() => shell(dir, WALK));
  if (Number(value.trim()) !== expected)
    throw new Error(`walk of ${dir} read ${value.trim()} bytes, not ${expected}`);
  return ms;
}

async function best(runs: number, measure: () => Promise<number>): Promise<number> {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) min = Math.min(min, await measure());
  return min;
}

interface Row {
  label: string;
  ms: number;
  floor?: number;
  tmpfs?: number;
  verdict?: string;
}

function ratio(a: number, b: number | undefined): string {
  return b === undefined ? '' : `${(a / b).toFixed(2)}x`;
}

export async function bench(): Promise<void> {
  const ownRoot = process.env.VOLKIT_TEST_ROOT === undefined;
  const zk = await startZk();
  const client = await ZkClient.connect({ connectString: zk.connectString, requestTimeoutMs: 120_000 });
  onCleanup('bench client', () => client.close());
  try {
    const started = Date.now();
    const totalBytes = await buildTree(client);
    console.log(
      `zkfs: tree of ${DIRS * (FILES_PER_DIR + 1)} znodes (${DIRS} directories, ${DIRS * FILES_PER_DIR} files, ${totalBytes} bytes) built in ${Date.now() - started} ms`,
    );

    // A copy of the tree on tmpfs: the walk with no network and no FUSE.
    const tmpfs = scratchDir('zkfs-bench-tmpfs');
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=256m', 'volkit-bench', tmpfs]);
    onCleanup(`tmpfs ${tmpfs}`, async () => {
      await execa('umount', [tmpfs], { reject: false });
    });
    for (let d = 0; d < DIRS; d++) {
      mkdirSync(join(tmpfs, 'tree', names.dir(d)), { recursive: true });
      for (let f = 0; f < FILES_PER_DIR; f++) {
        writeFileSync(join(tmpfs, 'tree', names.dir(d), names.file(f)), fileContent(d, f));
      }
    }

    const floor = await best(3, async () => {
      const { ms, value } = await timed(() => clientWalk(client, TREE));
      if (value !== totalBytes) throw new Error(`client walk read ${value} bytes, not ${totalBytes}`);
      return ms;
    });
    const tmpfsMs = await best(3, () => timedWalk(join(tmpfs, 'tree'), totalBytes));

    // Cold: a fresh mount each time (nothing cached in the daemon or the kernel).
    let cold = Number.POSITIVE_INFINITY;
    let mount = await mountZkfs(zk.connectString, TREE);
    for (let run = 0; run < 2; run++) {
      if (run > 0) {
        await mount.unmount();
        mount = await mountZkfs(zk.connectString, TREE);
      }
      cold = Math.min(cold, await timedWalk(mount.dir, totalBytes));
    }
    const warm = await best(3, () => timedWalk(mount.dir, totalBytes));
    const status = JSON.parse((await zkfsctl(['--json', 'status', mount.dir])).stdout) as {
      cache: { hitRate: number; bytes: number; entries: number };
      session: { requests: number };
    };

    // Writing: cp -r of 1,000 1 KiB files against create + setData per file with the client.
    const source = join(tmpfs, 'src');
    mkdirSync(source);
    const block = Buffer.alloc(1024, 'w');
    for (let i = 0; i < WRITE_FILES; i++)
      writeFileSync(join(source, `w${String(i).padStart(4, '0')}`), block);
    await client.create('/bench/write', Buffer.alloc(0));
    const clientWrite = await best(2, async (run = 0) => {
      const base = `/bench/write/client${Date.now()}${run}`;
      await client.create(base, Buffer.alloc(0));
      const { ms } = await timed(async () => {
        for (let i = 0; i < WRITE_FILES; i++) {
          const path = `${base}/w${String(i).padStart(4, '0')}`;
          await client.create(path, Buffer.alloc(0));
          await client.setData(path, block, 0);
        }
      });
      return ms;
    });
    const target = await mountZkfs(zk.connectString, '/bench/write');
    let copyRun = 0;
    const copy = await best(2, async () => {
      const dest = `cp${copyRun++}`;
      const { ms } = await timed(() => shell(target.dir, `cp -r ${source} ${dest}`));
      const count = await shell(target.dir, `ls ${dest} | wc -l`);
      if (Number(count.trim()) !== WRITE_FILES) throw new Error(`cp wrote ${count.trim()} files`);
      return ms;
    });

    const met = (ok: boolean) => (ok ? 'target met' : 'TARGET MISSED');
    const rows: Row[] = [
      { label: 'floor: ZooKeeper client, list + getData', ms: floor, floor, tmpfs: tmpfsMs },
      { label: 'tmpfs copy: find | xargs cat', ms: tmpfsMs, floor, tmpfs: tmpfsMs },
      {
        label: 'zkfs cold: find | xargs cat',
        ms: cold,
        floor,
        tmpfs: tmpfsMs,
        verdict: `${met(cold <= 1.5 * floor)} (<= 1.5x floor)`,
      },
      {
        label: 'zkfs warm: find | xargs cat',
        ms: warm,
        floor,
        tmpfs: tmpfsMs,
        verdict: `${met(warm < floor && warm <= 3 * tmpfsMs)} (< floor, <= 3x tmpfs)`,
      },
      { label: `client: create + setData x ${WRITE_FILES}`, ms: clientWrite, floor: clientWrite },
      {
        label: `zkfs: cp -r of ${WRITE_FILES} 1 KiB files`,
        ms: copy,
        floor: clientWrite,
        verdict: `${met(copy <= 2 * clientWrite)} (<= 2x client)`,
      },
    ];
    console.log(
      `\n${'workload'.padEnd(44)}${'ms'.padStart(9)}${'/floor'.padStart(9)}${'/tmpfs'.padStart(9)}`,
    );
    for (const r of rows) {
      console.log(
        `${r.label.padEnd(44)}${r.ms.toFixed(0).padStart(9)}${ratio(r.ms, r.floor).padStart(9)}${ratio(r.ms, r.tmpfs).padStart(9)}  ${r.verdict ?? ''}`,
      );
    }
    console.log(
      `(write rows: /floor is the client doing create + setData; warm mount: cache hit rate ${(status.cache.hitRate * 100).toFixed(1)}%, ${status.cache.entries} entries, ${(status.cache.bytes / 1048576).toFixed(1)} MiB, ${status.session.requests} requests in all)`,
    );
  } finally {
    await runCleanups().catch((error: unknown) => console.error(String(error)));
    await zk.stop();
    if (ownRoot) rmSync(testRoot(), { recursive: true, force: true });
  }
}
