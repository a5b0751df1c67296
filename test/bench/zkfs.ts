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
 * Also shown, with no target: the client reading each directory's children
 * in batches with multiRead, as the mount itself does (ZooKeeper 3.6+).
 * The floor stays one getData per node, as the issue defines it; this line
 * says how much of the mount's lead over that floor is the protocol's.
 * Also with no target: the warm walk with the daemon and the walk pinned to
 * one CPU (what the wake-ups between CPUs cost), walks on a mount whose
 * cache is smaller than the tree (eviction at work), and the warm walk over
 * a stub daemon that serves the same tree from memory on zkfs's own FUSE
 * layer (what the transport alone costs; fuse-stub.ts), and over the
 * smallest FUSE daemon, in C (c-stub.c, built here if a C compiler is),
 * answering an open per file and none: what the kernel's round trips cost here.
 *
 * Read workload: `find DIR -type f -print0 | xargs -0 cat | wc -c` over a
 * tree of 10,000 znodes (100 directories of 99 files, 200–600 bytes each),
 * cold and warm (the same mount again), on a read-write mount and on a
 * --read-only one (where the kernel opens and closes files without asking
 * the daemon). Cold is measured twice: on a fresh mount (a daemon just
 * started, its JavaScript not yet compiled to machine code), and on an
 * identical tree the mount has never read, right after that (the daemon
 * running, as a mount is for most of its life; the floor's client is
 * measured in a process just as warmed up). Write workload:
 * `cp -r` of 1,000 1 KiB files onto the mount (as one directory of 1,000
 * and as ten of 100) against the client creating each node and setting its
 * data, one file after another as cp does, in a subtree no mount watches
 * (the copy's mount is the only one watching its own).
 *
 * Targets: cold within 1.5x of the floor; warm faster than the floor and
 * within 3x of tmpfs; cp within 2x of the client. Each line says whether
 * its target was met.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { ZkClient } from '../../src/adapters/zookeeper.js';
import { onCleanup, runCleanups } from '../fixtures/cleanup.js';
import { freePorts } from '../fixtures/ports.js';
import { pageFaultUs } from './page-faults.js';
import { cpuMsOf, pageFaultsOf } from './proc-stat.js';
import { DIRS, FILES_PER_DIR, fileContent, names } from './tree-shape.js';
import { wakeUpUs } from './wake-latency.js';

const REPO_ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

// The ZooKeeper and mount fixtures import vitest (through environment.ts), which
// cannot load outside a test run, so the bench starts both itself, the same way.
let scratch = '';
let serial = 0;
function scratchDir(name: string): string {
  const dir = join(scratch, `${name}-${serial++}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function startZk(): Promise<{ connectString: string; stop(): Promise<void> }> {
  const dir = scratchDir('zk');
  const [port] = await freePorts(1);
  const config = join(dir, 'zoo.cfg');
  writeFileSync(
    config,
    [
      'tickTime=500',
      `dataDir=${join(dir, 'data')}`,
      `clientPort=${port}`,
      'clientPortAddress=127.0.0.1',
      'maxClientCnxns=0',
      'admin.enableServer=false',
      '4lw.commands.whitelist=*',
      '',
    ].join('\n'),
  );
  const log = openSync(join(dir, 'zk.log'), 'a');
  // The JVM's defaults, as Debian's zookeeper service runs (the tests' server stops its JIT at C1
  // to start sooner, which made the floor's server work up to a third slower); only the heap is
  // bounded, for this machine.
  const child: ChildProcess = spawn(
    'java',
    [
      '-Xmx512m',
      '-cp',
      '/etc/zookeeper/conf:/usr/share/java/zookeeper.jar',
      'org.apache.zookeeper.server.ZooKeeperServerMain',
      config,
    ],
    { stdio: ['ignore', log, log] },
  );
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  };
  onCleanup('ZooKeeper', stop);
  const connectString = `127.0.0.1:${port}`;
  const probe = await ZkClient.connect({ connectString, connectTimeoutMs: 60_000 });
  await probe.close();
  return { connectString, stop };
}

interface BenchMount {
  dir: string;
  unmount(): Promise<void>;
}

async function mountZkfs(hosts: string, path: string, args: readonly string[] = []): Promise<BenchMount> {
  const dir = scratchDir('mnt');
  const env = { ZKFSCTL_RUN_DIR: join(scratch, 'run'), NO_COLOR: '1' };
  await execa(
    join(REPO_ROOT, 'bin/zkfsctl'),
    ['mount', hosts, path, dir, '--log-file', join(scratchDir('log'), 'daemon.log'), ...args],
    { env },
  );
  let mounted = true;
  const unmount = async () => {
    if (!mounted) return;
    mounted = false;
    await execa(join(REPO_ROOT, 'bin/zkfsctl'), ['umount', dir], { env, reject: false });
  };
  onCleanup(`mount ${dir}`, unmount);
  return { dir, unmount };
}

async function zkfsctl(args: readonly string[]): Promise<{ stdout: string }> {
  const r = await execa(join(REPO_ROOT, 'bin/zkfsctl'), [...args], {
    env: { ZKFSCTL_RUN_DIR: join(scratch, 'run'), NO_COLOR: '1' },
  });
  return { stdout: String(r.stdout) };
}

const WRITE_FILES = 1000;
const TREE = '/bench/tree';
/** A copy of TREE under the same mount, walked cold once the daemon is running. */
const UNSEEN = '/bench/unseen';
const WALK = 'find . -type f -print0 | xargs -0 cat | wc -c';

async function buildTree(client: ZkClient, root: string): Promise<number> {
  let bytes = 0;
  for (const path of ['/bench', root]) await client.create(path, Buffer.alloc(0)).catch(() => {});
  for (let d = 0; d < DIRS; d++) {
    const dir = `${root}/${names.dir(d)}`;
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

/** The client walk with each directory's children read in batches of 128 (multiRead). */
async function batchedClientWalk(client: ZkClient, path: string): Promise<number> {
  const { children } = await client.getChildren(path);
  const batches: Promise<({ data: Buffer; stat: { numChildren: number } } | Error)[]>[] = [];
  for (let i = 0; i < children.length; i += 128) {
    batches.push(client.getDataMany(children.slice(i, i + 128).map((c) => `${path}/${c}`)));
  }
  const nodes = (await Promise.all(batches)).flat();
  let bytes = 0;
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]!;
    if (node instanceof Error) throw node;
    if (node.stat.numChildren > 0) bytes += await batchedClientWalk(client, `${path}/${children[i]}`);
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

/** The walk in `dir`, checked to read `expected` bytes; `pin` runs it under taskset on those CPUs. */
async function timedWalk(dir: string, expected: number, pin?: string): Promise<number> {
  const { ms, value } = await timed(() =>
    shell(dir, pin === undefined ? WALK : `taskset -c ${pin} bash -c '${WALK}'`),
  );
  if (Number(value.trim()) !== expected)
    throw new Error(`walk of ${dir} read ${value.trim()} bytes, not ${expected}`);
  return ms;
}

async function best(runs: number, measure: () => Promise<number>): Promise<number> {
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i < runs; i++) min = Math.min(min, await measure());
  return min;
}

/** The best of `runs` of each of `a` and `b`, taken in turns so that both see the same spells of the machine. */
async function bestInTurns(runs: number, ...walks: (() => Promise<number>)[]): Promise<number[]> {
  const best = walks.map(() => Number.POSITIVE_INFINITY);
  for (let i = 0; i < runs; i++) {
    for (const [k, walk] of walks.entries()) best[k] = Math.min(best[k] as number, await walk());
  }
  return best;
}

interface Row {
  label: string;
  ms: number;
  floor?: number;
  tmpfs?: number;
  verdict?: string;
}

interface WriteResult {
  dirs: number;
  perDir: number;
  clientMs: number;
  copy: Measured;
  /** The same copy on a mount reading /dev/fuse (--no-io-uring), where requests came over io_uring. */
  plainCopyMs: number | undefined;
  /** `cp -a` of the same files (mode and times kept: a chmod and a futimens per file), one directory only. */
  archive: Measured | undefined;
  docBytes: number;
}

/** What a second mount did while the first copied files into a directory it had listed. */
interface Watcher {
  cpuMs: number;
  requests: number;
  invalidations: number;
}

/**
 * Another host watching a copy: a second mount of /bench/write lists a
 * directory, then the mount at `dir` copies the files of `source` into it.
 * The second mount hears of every file; what that costs it (its daemon's
 * CPU, its requests to ZooKeeper, its notifications to its kernel) is what
 * each host watching a directory pays for another host's writes there.
 */
async function watchedCopy(hosts: string, dir: string, source: string): Promise<Watcher> {
  const watching = await mountZkfs(hosts, '/bench/write');
  await shell(dir, 'mkdir watched && echo first > watched/first');
  await shell(watching.dir, 'ls -l watched > /dev/null');
  const before = await mountStatus(watching.dir);
  const cpuBefore = cpuMsOf(before.pid);
  await shell(dir, `cp -r ${source}/. watched/`);
  // Done hearing of it once it lists every file.
  const files = Number((await shell(dir, 'ls watched | wc -l')).trim());
  for (let tries = 0; Number((await shell(watching.dir, 'ls watched | wc -l')).trim()) < files; tries++) {
    if (tries > 100) throw new Error('the watching mount never listed every copied file');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const after = await mountStatus(watching.dir);
  const watcher = {
    cpuMs: cpuMsOf(before.pid) - cpuBefore,
    requests: after.session.requests - before.session.requests,
    invalidations: after.kernel.invalidations - before.kernel.invalidations,
  };
  await watching.unmount();
  return watcher;
}

interface Measured {
  ms: number;
  /** FUSE requests the daemon served. */
  ops: number;
  /** The same by request name, the most frequent first. */
  byName: [string, number][];
  /** Requests the daemon sent to ZooKeeper. */
  requests: number;
  /** Of `ops`, the requests its native reader answered without JavaScript (src/native/fuse-fast.c). */
  native: number;
  /** How the daemon read requests: `native`, or in JavaScript. */
  reader: string;
  /** Page faults the daemon took (all its threads). */
  faults: number;
}

interface StatusDoc {
  pid: number;
  kernel: { invalidations: number };
  operations: { total: number; byName: Record<string, number> };
  session: { requests: number };
  cache: { hitRate: number; bytes: number; entries: number };
  polling: { trials: number; won: number; pays: boolean };
  reader: { kind: string; opens: number; releases: number; xattrs?: number; ringQueues?: number };
}

async function mountStatus(dir: string): Promise<StatusDoc> {
  return JSON.parse((await zkfsctl(['--json', 'status', dir])).stdout) as StatusDoc;
}

/** Runs `work` (which returns its own timing) and counts what the mount's daemon did meanwhile. */
async function measured(dir: string, work: () => Promise<number>): Promise<Measured> {
  const before = await mountStatus(dir);
  const faultsBefore = pageFaultsOf(before.pid);
  const ms = await work();
  const faults = pageFaultsOf(before.pid) - faultsBefore;
  const after = await mountStatus(dir);
  return {
    ms,
    ops: after.operations.total - before.operations.total,
    byName: Object.entries(after.operations.byName)
      .map(([name, count]): [string, number] => [name, count - (before.operations.byName[name] ?? 0)])
      .filter(([, count]) => count > 0)
      .sort((a, b) => b[1] - a[1]),
    requests: after.session.requests - before.session.requests,
    native: nativeAnswers(after.reader) - nativeAnswers(before.reader),
    reader: after.reader.kind,
    faults,
  };
}

/** Requests a daemon's native reader answered by itself so far. */
function nativeAnswers(reader: StatusDoc['reader']): number {
  return reader.opens + reader.releases + (reader.xattrs ?? 0);
}

interface ReadRuns {
  /** On a fresh mount: nothing cached in the daemon or the kernel, the daemon just started. */
  cold: Measured;
  /** On a tree the running mount has never read. */
  coldRunning: Measured;
  warm: Measured;
  cache: StatusDoc['cache'];
  polling: StatusDoc['polling'];
  /** The io_uring queues requests came on (0: read from /dev/fuse). */
  ringQueues: number;
}

/** Fresh mounts walked cold, as many as the floor's walks (three before the mounts' runs, two after). */
const COLD_RUNS = 5;

/**
 * On each of five fresh mounts of /bench: the walk of TREE cold, then of
 * UNSEEN cold (best of five each: as many walks as the floor's best is
 * taken from); then TREE warm (best of three).
 */
async function readRuns(hosts: string, totalBytes: number, args: readonly string[]): Promise<ReadRuns> {
  let cold: Measured | undefined;
  let coldRunning: Measured | undefined;
  let mount = await mountZkfs(hosts, '/bench', args);
  const tree = () => join(mount.dir, TREE.slice('/bench/'.length));
  for (let run = 0; run < COLD_RUNS; run++) {
    if (run > 0) {
      await mount.unmount();
      mount = await mountZkfs(hosts, '/bench', args);
    }
    const fresh = await measured(mount.dir, () => timedWalk(tree(), totalBytes));
    if (!cold || fresh.ms < cold.ms) cold = fresh;
    const unseen = join(mount.dir, UNSEEN.slice('/bench/'.length));
    const running = await measured(mount.dir, () => timedWalk(unseen, totalBytes));
    if (!coldRunning || running.ms < coldRunning.ms) coldRunning = running;
  }
  let warm: Measured | undefined;
  for (let run = 0; run < 3; run++) {
    const m = await measured(mount.dir, () => timedWalk(tree(), totalBytes));
    if (!warm || m.ms < warm.ms) warm = m;
  }
  if (!cold || !coldRunning || !warm) throw new Error('nothing measured');
  const { cache, polling, reader } = await mountStatus(mount.dir);
  await mount.unmount();
  return { cold, coldRunning, warm, cache, polling, ringQueues: reader?.ringQueues ?? 0 };
}

/** TREE warm on a new mount (after one walk to fill it), best of three. */
async function warmRun(hosts: string, totalBytes: number, args: readonly string[]): Promise<number> {
  const mount = await mountZkfs(hosts, '/bench', args);
  const tree = join(mount.dir, TREE.slice('/bench/'.length));
  await timedWalk(tree, totalBytes);
  const ms = await best(3, () => timedWalk(tree, totalBytes));
  await mount.unmount();
  return ms;
}

/**
 * TREE warm with the daemon's threads and the walk all kept on CPU 0, and
 * as the scheduler places them, alternating on one mount (best of three
 * each), for diagnosis only: a mount cannot choose where programs run.
 * Polling is off (it would starve a walk on its own CPU); the difference is
 * what waking the other CPU costs each open.
 */
async function oneCpuWarmRun(hosts: string, totalBytes: number): Promise<{ oneCpu: number; free: number }> {
  const mount = await mountZkfs(hosts, '/bench', ['--no-io-uring', '--busy-poll', '0']);
  const tree = join(mount.dir, TREE.slice('/bench/'.length));
  const { pid } = JSON.parse((await zkfsctl(['status', '--json', mount.dir])).stdout) as { pid: number };
  const pin = (cpus: string) => execa('taskset', ['-a', '-p', '-c', cpus, String(pid)]);
  await timedWalk(tree, totalBytes);
  const [oneCpu, free] = await bestInTurns(
    3,
    async () => {
      await pin('0');
      return timedWalk(tree, totalBytes, '0');
    },
    async () => {
      await pin(`0-${availableParallelism() - 1}`);
      return timedWalk(tree, totalBytes);
    },
  );
  await mount.unmount();
  return { oneCpu: oneCpu as number, free: free as number };
}

/**
 * Mounts a stub filesystem (`command` with its arguments, given the mount
 * point last but for `after`) in a process of its own, as a daemon runs;
 * resolves once it prints `ready`.
 */
async function mountStub(
  command: string,
  args: readonly string[],
  after: readonly string[] = [],
): Promise<BenchMount> {
  const dir = scratchDir('stub');
  const child = spawn(command, [...args, dir, ...after], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const unmount = async () => {
    await execa('umount', [dir], { reject: false });
    if (child.exitCode === null && child.signalCode === null) {
      const stuck = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(stuck);
    }
  };
  onCleanup(`stub ${dir}`, unmount);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) resolve();
    });
    void exited.then(() => reject(new Error(`the stub filesystem at ${dir} exited before it was ready`)));
  });
  return { dir, unmount };
}

/** The stub on zkfs's own FUSE layer (fuse-stub.ts). */
function mountJsStub(): Promise<BenchMount> {
  return mountStub(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'test/bench/fuse-stub.ts')]);
}

/**
 * The warm walk over the stub, which answers the same tree from memory
 * through zkfs's own FUSE layer, alternating with the warm walk of a zkfs
 * mount (best of three each): the stub's time is the transport's, and the
 * difference zkfs's own work per request.
 */
async function stubWarmRun(hosts: string, totalBytes: number): Promise<{ stub: number; zkfs: number }> {
  const stubMount = await mountJsStub();
  const mount = await mountZkfs(hosts, '/bench');
  const tree = join(mount.dir, TREE.slice('/bench/'.length));
  await timedWalk(stubMount.dir, totalBytes);
  await timedWalk(tree, totalBytes);
  const [stub, zkfs] = await bestInTurns(
    3,
    () => timedWalk(stubMount.dir, totalBytes),
    () => timedWalk(tree, totalBytes),
  );
  await mount.unmount();
  await stubMount.unmount();
  return { stub: stub as number, zkfs: zkfs as number };
}

/** Compiles c-stub.c into the scratch directory: the program, or undefined (saying why) if it cannot be built here. */
async function buildCStub(): Promise<string | undefined> {
  const program = join(scratch, 'c-stub');
  const cc = process.env.CC ?? 'cc';
  const r = await execa(cc, ['-O2', '-pthread', '-o', program, join(REPO_ROOT, 'test/bench/c-stub.c')], {
    reject: false,
  });
  if (r.exitCode === 0) return program;
  console.log(
    `zkfs: the C stub was not built (${cc}: ${String(r.stderr || r.message).split('\n')[0]}); its lines are left out`,
  );
  return undefined;
}

/**
 * The warm walk over the C stub (c-stub.c) serving the tmpfs copy of the
 * tree: answering an open per file, as a read-write mount does, and
 * answering none, as a read-only mount does (best of three each, in turns).
 * It does no work but answer: its times are what the kernel's round trips
 * cost on this machine, as the tmpfs walk is the limit of any filesystem.
 */
async function cStubWarmRun(
  program: string,
  source: string,
  totalBytes: number,
): Promise<{ opens: number; noOpens: number; ringOpens: number | undefined }> {
  const opens = await mountStub(program, [], [source]);
  const noOpens = await mountStub(program, [], [source, 'no-open']);
  // Where the kernel offers FUSE over io_uring: the same opens, each answered on its program's CPU.
  const ring = await mountStub(program, [], [source, 'io-uring']).catch(() => undefined);
  await timedWalk(opens.dir, totalBytes);
  await timedWalk(noOpens.dir, totalBytes);
  if (ring) await timedWalk(ring.dir, totalBytes);
  const [withOpens, without, overRing] = await bestInTurns(
    3,
    () => timedWalk(opens.dir, totalBytes),
    () => timedWalk(noOpens.dir, totalBytes),
    ...(ring ? [() => timedWalk(ring.dir, totalBytes)] : []),
  );
  await opens.unmount();
  await noOpens.unmount();
  await ring?.unmount();
  return { opens: withOpens as number, noOpens: without as number, ringOpens: overRing };
}

/** A cache smaller than one tree's stats and data (about 7 MiB), so that a walk evicts as it reads. */
const SMALL_CACHE = '4MiB';

/**
 * TREE on a mount whose cache holds less than the tree, best of two walks
 * after a first: every walk evicts entries as it goes, and reads again the
 * ones it evicted.
 */
async function smallCacheRun(hosts: string, totalBytes: number): Promise<Measured> {
  const mount = await mountZkfs(hosts, '/bench', ['--cache-size', SMALL_CACHE]);
  const tree = join(mount.dir, TREE.slice('/bench/'.length));
  await timedWalk(tree, totalBytes);
  let fastest: Measured | undefined;
  for (let run = 0; run < 2; run++) {
    const walk = await measured(mount.dir, () => timedWalk(tree, totalBytes));
    if (!fastest || walk.ms < fastest.ms) fastest = walk;
  }
  await mount.unmount();
  if (!fastest) throw new Error('nothing measured');
  return fastest;
}

const m = (n: number) => n.toLocaleString('en-US');
/** The most frequent requests of a run: `open 9,900, release 9,900, …`. */
const mix = (x: Measured) =>
  x.byName
    .slice(0, 4)
    .map(([name, count]) => `${name} ${m(count)}`)
    .join(', ');

function ratio(a: number, b: number | undefined): string {
  return b === undefined ? '' : `${(a / b).toFixed(2)}x`;
}

export async function bench(): Promise<void> {
  scratch = mkdtempSync(join(tmpdir(), 'volkit-bench-'));
  const zk = await startZk();
  const client = await ZkClient.connect({ connectString: zk.connectString, requestTimeoutMs: 120_000 });
  onCleanup('bench client', () => client.close());
  try {
    const started = Date.now();
    const totalBytes = await buildTree(client, TREE);
    if ((await buildTree(client, UNSEEN)) !== totalBytes) throw new Error('the two trees differ');
    console.log(
      `zkfs: two trees of ${DIRS * (FILES_PER_DIR + 1)} znodes each (${DIRS} directories, ${DIRS * FILES_PER_DIR} files, ${totalBytes} bytes) built in ${Date.now() - started} ms`,
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

    const floorRun = async () => {
      const { ms, value } = await timed(() => clientWalk(client, TREE));
      if (value !== totalBytes) throw new Error(`client walk read ${value} bytes, not ${totalBytes}`);
      return ms;
    };
    const tmpfsRun = () => timedWalk(join(tmpfs, 'tree'), totalBytes);
    const batchedRun = async () => {
      const { ms, value } = await timed(() => batchedClientWalk(client, TREE));
      if (value !== totalBytes) throw new Error(`batched client walk read ${value} bytes, not ${totalBytes}`);
      return ms;
    };
    let floor = await best(3, floorRun);
    let tmpfsMs = await best(3, tmpfsRun);
    let batched = await best(3, batchedRun);
    const wakeUs = await wakeUpUs();
    const faultUs = pageFaultUs();

    const rw = await readRuns(zk.connectString, totalBytes, []);
    // A read-only mount has nothing to check or publish at close, so the kernel opens files itself.
    const ro = await readRuns(zk.connectString, totalBytes, ['--read-only']);
    // Where requests came over io_uring: the same walks reading /dev/fuse, as without it.
    const plain =
      rw.ringQueues > 0 ? await readRuns(zk.connectString, totalBytes, ['--no-io-uring']) : undefined;
    // What the daemon's polling for the next request (read from /dev/fuse) is worth: the same warm walk with it off.
    const unpolled = await warmRun(zk.connectString, totalBytes, ['--no-io-uring', '--busy-poll', '0']);
    const placement = await oneCpuWarmRun(zk.connectString, totalBytes);
    const small = await smallCacheRun(zk.connectString, totalBytes);
    const transport = await stubWarmRun(zk.connectString, totalBytes);
    const cStub = await buildCStub();
    const limits = cStub ? await cStubWarmRun(cStub, join(tmpfs, 'tree'), totalBytes) : undefined;
    // The baselines once more, after the mounts' runs: the best of both spells counts.
    floor = Math.min(floor, await best(2, floorRun));
    tmpfsMs = Math.min(tmpfsMs, await best(2, tmpfsRun));
    batched = Math.min(batched, await best(2, batchedRun));
    const { cold, warm, cache, polling } = rw;

    // Writing: cp -r of 1,000 1 KiB files against create + setData per file with the client, as one
    // directory of 1,000 and as 10 directories of 100 (each create writes its directory's metadata
    // document, which keeps only the marks of files still empty: the size of a directory should not
    // matter).
    // Each side works alone: the client's nodes go where no mount watches (every mount watching
    // a write costs the server a notice and its daemon the work of taking it in, which the
    // client's baseline must not pay), and the copy's mount is the only one watching its tree.
    const block = Buffer.alloc(1024, 'w');
    for (const path of ['/bench/write', '/bench/write-plain', '/bench/client']) {
      await client.create(path, Buffer.alloc(0));
    }
    const target = await mountZkfs(zk.connectString, '/bench/write');
    // Each request JavaScript answers crosses two more threads over io_uring than read from
    // /dev/fuse (the queue's thread hands it on, and takes the reply back): the same copies there.
    const plainTarget =
      rw.ringQueues > 0
        ? await mountZkfs(zk.connectString, '/bench/write-plain', ['--no-io-uring'])
        : undefined;
    const writes: WriteResult[] = [];
    for (const dirs of [1, 10]) {
      const perDir = WRITE_FILES / dirs;
      const source = join(tmpfs, `src${dirs}`);
      const rel = (d: number, f: number) => `d${d}/w${String(f).padStart(4, '0')}`;
      for (let d = 0; d < dirs; d++) {
        mkdirSync(join(source, `d${d}`), { recursive: true });
        for (let f = 0; f < perDir; f++) writeFileSync(join(source, rel(d, f)), block);
      }
      const clientRun = async (): Promise<number> => {
        const base = `/bench/client/${dirs}-${serial++}`;
        const { ms } = await timed(async () => {
          await client.create(base, Buffer.alloc(0));
          for (let d = 0; d < dirs; d++) {
            await client.create(`${base}/d${d}`, Buffer.alloc(0));
            for (let f = 0; f < perDir; f++) {
              await client.create(`${base}/${rel(d, f)}`, Buffer.alloc(0));
              await client.setData(`${base}/${rel(d, f)}`, block, 0);
            }
          }
        });
        return ms;
      };
      // Each server write waits for its log to reach the disk, whose speed drifts:
      // the client and cp runs alternate, so both see the same spells of it.
      let clientMs = Number.POSITIVE_INFINITY;
      let copy: Measured | undefined;
      let plainCopyMs: number | undefined;
      let archive: Measured | undefined;
      const copyTo = async (dir: string, dest: string, flags = '-r'): Promise<Measured> => {
        const m = await measured(dir, async () => {
          const { ms } = await timed(() => shell(dir, `cp ${flags} ${source} ${dest}`));
          return ms;
        });
        const count = await shell(dir, `find ${dest} -type f | wc -l`);
        if (Number(count.trim()) !== WRITE_FILES) throw new Error(`cp wrote ${count.trim()} files`);
        return m;
      };
      for (let run = 0; run < 3; run++) {
        clientMs = Math.min(clientMs, await clientRun());
        const m = await copyTo(target.dir, `cp${dirs}-${run}`);
        if (!copy || m.ms < copy.ms) copy = m;
        if (plainTarget) {
          const plain = await copyTo(plainTarget.dir, `plain${dirs}-${run}`);
          plainCopyMs = Math.min(plainCopyMs ?? Number.POSITIVE_INFINITY, plain.ms);
        }
        if (dirs === 1) {
          const a = await copyTo(target.dir, `archive${dirs}-${run}`, '-a');
          if (!archive || a.ms < archive.ms) archive = a;
        }
      }
      if (!copy) throw new Error('nothing measured');
      const doc = await client.exists(`/bench/write/cp${dirs}-0/d0/__zkfs__`);
      writes.push({ dirs, perDir, clientMs, copy, plainCopyMs, archive, docBytes: doc?.dataLength ?? 0 });
    }
    const watcher = await watchedCopy(zk.connectString, target.dir, join(tmpfs, 'src1', 'd0'));

    const met = (ok: boolean) => (ok ? 'target met' : 'TARGET MISSED');
    const rows: Row[] = [
      { label: 'floor: ZooKeeper client, list + getData', ms: floor, floor, tmpfs: tmpfsMs },
      { label: 'tmpfs copy: find | xargs cat', ms: tmpfsMs, floor, tmpfs: tmpfsMs },
      { label: 'client, list + multiRead (no target)', ms: batched, floor, tmpfs: tmpfsMs },
      ...(
        [
          ['zkfs', rw],
          ['zkfs --read-only', ro],
        ] as const
      ).flatMap(([name, runs]): Row[] => [
        {
          label: `${name} cold, new mount`,
          ms: runs.cold.ms,
          floor,
          tmpfs: tmpfsMs,
          verdict: `${met(runs.cold.ms <= 1.5 * floor)} (<= 1.5x floor)`,
        },
        {
          label: `${name} cold, unseen tree, mount running`,
          ms: runs.coldRunning.ms,
          floor,
          tmpfs: tmpfsMs,
          verdict: `${met(runs.coldRunning.ms <= 1.5 * floor)} (<= 1.5x floor)`,
        },
        {
          label: `${name} warm`,
          ms: runs.warm.ms,
          floor,
          tmpfs: tmpfsMs,
          verdict: `${met(runs.warm.ms < floor && runs.warm.ms <= 3 * tmpfsMs)} (< floor, <= 3x tmpfs)`,
        },
      ]),
      ...(plain
        ? [
            {
              label: 'zkfs --no-io-uring cold, new mount (no target)',
              ms: plain.cold.ms,
              floor,
              tmpfs: tmpfsMs,
            },
            { label: 'zkfs --no-io-uring warm (no target)', ms: plain.warm.ms, floor, tmpfs: tmpfsMs },
          ]
        : []),
      { label: 'zkfs warm, /dev/fuse, --busy-poll 0 (no target)', ms: unpolled, floor, tmpfs: tmpfsMs },
      {
        label: 'zkfs warm, /dev/fuse, no poll, one CPU (no target)',
        ms: placement.oneCpu,
        floor,
        tmpfs: tmpfsMs,
      },
      { label: `zkfs, --cache-size ${SMALL_CACHE}, full (no target)`, ms: small.ms, floor, tmpfs: tmpfsMs },
      { label: 'stub FUSE daemon, same tree, warm (no target)', ms: transport.stub, floor, tmpfs: tmpfsMs },
      ...(limits
        ? [
            {
              label: 'C FUSE daemon, an open per file, warm (no target)',
              ms: limits.opens,
              floor,
              tmpfs: tmpfsMs,
            },
            { label: 'C FUSE daemon, no opens, warm (no target)', ms: limits.noOpens, floor, tmpfs: tmpfsMs },
            ...(limits.ringOpens !== undefined
              ? [
                  {
                    label: 'C FUSE daemon, io_uring, an open per file (no target)',
                    ms: limits.ringOpens,
                    floor,
                    tmpfs: tmpfsMs,
                  },
                ]
              : []),
          ]
        : []),
      ...writes.flatMap((w): Row[] => [
        {
          label: `client: create + setData, ${w.dirs} x ${w.perDir} files`,
          ms: w.clientMs,
          floor: w.clientMs,
        },
        {
          label: `zkfs: cp -r, ${w.dirs} x ${w.perDir} 1 KiB files`,
          ms: w.copy.ms,
          floor: w.clientMs,
          verdict: `${met(w.copy.ms <= 2 * w.clientMs)} (<= 2x client)`,
        },
        ...(w.plainCopyMs === undefined
          ? []
          : [
              {
                label: `  the same, --no-io-uring (no target)`,
                ms: w.plainCopyMs,
                floor: w.clientMs,
              },
            ]),
        ...(w.archive === undefined
          ? []
          : [{ label: `  the same with cp -a (no target)`, ms: w.archive.ms, floor: w.clientMs }]),
      ]),
    ];
    console.log(
      `\n${'workload'.padEnd(52)}${'ms'.padStart(9)}${'/floor'.padStart(9)}${'/tmpfs'.padStart(9)}`,
    );
    for (const r of rows) {
      console.log(
        `${r.label.padEnd(52)}${r.ms.toFixed(0).padStart(9)}${ratio(r.ms, r.floor).padStart(9)}${ratio(r.ms, r.tmpfs).padStart(9)}  ${r.verdict ?? ''}`,
      );
    }
    const files = DIRS * FILES_PER_DIR;
    const per = (m: Measured, n: number) => (m.ops / n).toFixed(1);
    const each = (m: Measured) => ((m.ms * 1000) / Math.max(1, m.ops)).toFixed(0);
    console.log(
      [
        '',
        'where the time goes (requests that reached the daemon from the kernel, and requests it sent to ZooKeeper):',
        `  cold: ${m(cold.ops)} FUSE requests (${per(cold, files)} per file: ${mix(cold)}), ${m(cold.requests)} ZooKeeper requests (the floor sends ${m(files + 2 * DIRS + 1)}); ${each(cold)} us of wall time per FUSE request`,
        `  the mount reads a listing's children with multiRead, up to 128 per request; the floor reads one node per request, the client line with multiRead shows what that alone is worth`,
        `  warm: ${m(warm.ops)} FUSE requests (${per(warm, files)} per file: ${mix(warm)}), ${m(warm.requests)} ZooKeeper requests; ${each(warm)} us per FUSE request`,
        warm.reader === 'native'
          ? `  the native reader answered ${m(warm.native)} of them (opens of files the daemon opened or listed from memory, their releases, and queries for attributes zkfs never has) without entering JavaScript; cold, ${m(cold.native)} of ${m(cold.ops)}`
          : `  requests were read in JavaScript (${warm.reader}): no native reader was built (bin/build-native)`,
        rw.ringQueues > 0
          ? `  requests came over io_uring, on ${rw.ringQueues} queues (one per CPU), each served by a thread of the daemon kept on its CPU at idle priority (so the program it answers stays on that CPU); read from /dev/fuse (--no-io-uring) the same walks took ${plain ? `${plain.cold.ms.toFixed(0)} ms cold on a new mount and ${plain.warm.ms.toFixed(0)} ms warm` : 'what the lines above say'}`
          : "  requests were read from /dev/fuse: this kernel does not offer FUSE over io_uring (Linux 6.14 and later, the fuse module's enable_uring parameter)",
        `  reading /dev/fuse, the daemon polls for the next request for 100 us after each answer where trying both ways shows it pays (--busy-poll); here polling was faster`,
        `  in ${polling.won} of ${polling.trials} trials, so it ${polling.pays ? 'polled' : 'slept'} between them; with polling off, each request first wakes it up (${((unpolled * 1000) / Math.max(1, warm.ops)).toFixed(0)} us per request)`,
        `  read-only: cold ${m(ro.cold.ops)} FUSE requests (${per(ro.cold, files)} per file: ${mix(ro.cold)}), ${m(ro.cold.requests)} ZooKeeper requests; warm ${m(ro.warm.ops)} FUSE requests`,
        `  cold on a new mount includes the daemon's start: its code is compiled to machine code as it runs (the floor's client process has run long before it is timed)`,
        `  and its memory is new: the daemon took ${m(cold.faults)} page faults in that walk (${m(rw.coldRunning.faults)} on the unseen tree, mount running; ${m(warm.faults)} warm); a page fault costs ${faultUs.toFixed(1)} us`,
        `  on this machine (the first write of each page of a new 64 MiB buffer, best of three), so about ${m(Math.round((cold.faults * faultUs) / 1000))} ms of the daemon's CPU went on them`,
        `  --cache-size ${SMALL_CACHE}: less than the tree needs, so each walk evicts as it reads and reads again what it evicted: ${m(small.ops)} FUSE requests, ${m(small.requests)} ZooKeeper requests`,
        ...writes.map(
          (w) =>
            `  cp ${w.dirs} x ${w.perDir}: ${m(w.copy.ops)} FUSE requests (${per(w.copy, WRITE_FILES)} per file), ${m(w.copy.requests)} ZooKeeper requests (the client sends ${m(2 * WRITE_FILES + w.dirs + 1)}); each directory's metadata document (written with every file created in it, holding the marks of files still empty) ends at ${m(w.docBytes)} bytes`,
        ),
        ...writes.flatMap((w) =>
          w.archive === undefined
            ? []
            : [
                `  cp -a ${w.dirs} x ${w.perDir}: ${m(w.archive.ops)} FUSE requests (${per(w.archive, WRITE_FILES)} per file), ${m(w.archive.requests)} ZooKeeper requests (${(w.archive.requests / WRITE_FILES).toFixed(1)} per file): it sets each file's times and mode before closing it, which go with its data in one transaction with the directory's document`,
              ],
        ),
        `  another mount (a second host) listing the directory that 1,000 files were copied into took ${m(Math.round(watcher.cpuMs))} ms of CPU hearing of them,`,
        `  ${m(watcher.requests)} ZooKeeper requests (the directory's document read again, once per 10 ms of changes) and ${m(watcher.invalidations)} notifications to its kernel`,
        ...(writes.some((w) => w.plainCopyMs !== undefined)
          ? [
              `  cp over io_uring against /dev/fuse (--no-io-uring): ${writes.map((w) => `${w.copy.ms.toFixed(0)} against ${w.plainCopyMs?.toFixed(0)} ms`).join(', ')}; JavaScript answers most of a copy's requests, and each one it answers`,
              `  crosses two more threads over io_uring (the queue's thread hands it on, and takes the reply back to commit it)`,
            ]
          : []),
        `  cache after the runs (both trees): hit rate ${(cache.hitRate * 100).toFixed(1)}%, ${m(cache.entries)} entries, ${(cache.bytes / 1048576).toFixed(1)} MiB`,
        `  one thread waking another costs ${wakeUs.toFixed(0)} us on this machine (two threads handing a turn back and forth, best of three); reading /dev/fuse, a program waiting`,
        `  in open() on a read-write mount sleeps until the answer wakes it, so ${m(files)} opens add at least ${m(Math.round((files * wakeUs) / 1000))} ms to the read-only warm walk (${ro.warm.ms.toFixed(0)} ms):`,
        `  read that way, the read-write warm walk cannot take less than about ${m(Math.round(ro.warm.ms + (files * wakeUs) / 1000))} ms here, against a floor of ${floor.toFixed(0)} ms, and every read-write cold walk pays the same`,
        ...(rw.ringQueues > 0
          ? [
              `  over io_uring the answer comes from a thread on the program's own CPU, which hands it the turn instead of waking it from another: the read-write warm walk took ${warm.ms.toFixed(0)} ms`,
            ]
          : []),
        ...(tmpfsMs >= floor
          ? [
              `  the walk over tmpfs (no network, no FUSE) took ${ratio(tmpfsMs, floor)} the floor in this run: here no filesystem could walk faster than the floor`,
            ]
          : []),
        `  one CPU (reading /dev/fuse): the daemon and the walk pinned to CPU 0 (taskset; a diagnosis, a mount cannot choose where programs run) took ${placement.oneCpu.toFixed(0)} ms,`,
        `  against ${placement.free.toFixed(0)} ms placed by the scheduler, alternating on one mount: the difference is what waking the other CPU costs, twice per open`,
        `  stub: a daemon on zkfs's own FUSE layer answering the same tree from memory (no cache, no ZooKeeper) took ${transport.stub.toFixed(0)} ms warm`,
        `  (${ratio(transport.stub, tmpfsMs)} tmpfs), alternating with a zkfs mount's warm walk (${transport.zkfs.toFixed(0)} ms): the stub's time is the transport's (the kernel's`,
        `  round trip per request, the event loop turning once per request); zkfs's own work was ${Math.max(0, transport.zkfs - transport.stub).toFixed(0)} ms of the walk`,
        ...(limits
          ? [
              `  C stub: the smallest FUSE daemon (C, one thread, blocking reads, the tree in memory) took ${limits.opens.toFixed(0)} ms warm answering an open per`,
              `  file as a read-write mount does (${ratio(limits.opens, floor)} the floor), and ${limits.noOpens.toFixed(0)} ms answering none as a read-only mount does (${ratio(limits.noOpens, floor)}):`,
              `  that is the kernel's round trips alone${limits.opens >= floor ? ': a read-write FUSE mount doing no work at all was not warm faster than the floor in this run' : ''}${limits.noOpens >= floor ? ', nor a read-only one' : ''}`,
              ...(limits.ringOpens !== undefined
                ? [
                    `  over io_uring (a thread per CPU, kept on it at idle priority) the C stub's opens took ${limits.ringOpens.toFixed(0)} ms: each answered on its program's own CPU, one thread handing the turn`,
                    `  to the other, where reading /dev/fuse wakes a thread on the other CPU and is woken back from it`,
                  ]
                : []),
            ]
          : []),
        "  Every FUSE request is a round trip from the kernel to the daemon's event loop and back, usually between two CPUs;",
        '  tmpfs answers the same system calls inside the kernel, and the client floor needs no system call per file.',
      ].join('\n'),
    );
  } finally {
    await runCleanups().catch((error: unknown) => console.error(String(error)));
    await zk.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}
