/**
 * Two mounts of the same tree (two hosts, as far as ZooKeeper can tell):
 * each sees the other's changes, agrees on file types, and a write that
 * would overwrite the other's newer data is refused.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missing } from '../fixtures/environment.js';
import { startZk, type ZkServer } from '../fixtures/zk-server.js';
import {
  dataPath,
  mountTwice,
  mountZkfs,
  sees,
  startBlockedWrite,
  ZKFS_MODES,
  type ZkfsMount,
} from '../fixtures/zkfs-mount.js';

let zk: ZkServer;

beforeAll(async () => {
  zk = await startZk();
});

describe.skipIf(missing({ fuse: true })).each(ZKFS_MODES)('two mounts in %s mode', (mode) => {
  let a: ZkfsMount;
  let b: ZkfsMount;
  const file = (name: string) => dataPath(mode, name);
  const make = (name: string) => (mode === 'dir' ? `mkdir -p ${name} && ` : '');

  beforeAll(async () => {
    [a, b] = await mountTwice(zk.connectString, `/shared-${mode}`, { mode });
  });
  afterAll(async () => {
    await a?.unmount();
    await b?.unmount();
  });

  it('sees new files, changed contents, renames and removals', async () => {
    await a.ok(`${make('f')}printf 'from a' > ${file('f')}`);
    await sees(b, `cat ${file('f')}`, 'from a');
    await b.ok(`printf ' and b' >> ${file('f')}`);
    await sees(a, `cat ${file('f')}`, 'from a and b');
    await a.ok('mkdir -p d/e && mv f d/e/g');
    await sees(b, `cat ${file('d/e/g')}; ls | grep -vx _zoo_data_`, 'from a and bd\n');
    await a.ok('rm -r d');
    await sees(b, 'ls | grep -vx _zoo_data_', '');
  });

  it('sees symbolic links and stored attributes', async () => {
    // In dir mode the attributes belong to the directory; _zoo_data_ has none of its own.
    await a.ok(
      `${make('t')}printf t > ${file('t')} && ln -s t link && chmod 640 t && touch -d @1600000000 t`,
    );
    await sees(b, 'readlink link', 't\n');
    await sees(b, "stat -c '%a %Y' t", '640 1600000000\n');
  });

  it('refuses a write based on a version the other mount has replaced', async () => {
    await a.ok(`${make('race')}printf base > ${file('race')}`);
    await sees(b, `cat ${file('race')}`, 'base');
    const dd = await startBlockedWrite(b, file('race'), 5);
    await a.ok(`printf 'a won' > ${file('race')}`);
    const r = await dd.finish('b too');
    expect(r.stderr).toContain('Input/output error');
    await sees(b, `cat ${file('race')}`, 'a won');
    expect(b.log()).toContain('another client changed it');
  });
});

describe.skipIf(missing({ fuse: true }))('file types across hosts (hybrid)', () => {
  it('shows an empty file made on one mount as a file on the other, and an empty directory as a directory', async () => {
    const a = await mountZkfs(zk.connectString, '/types');
    await a.ok('touch empty && mkdir emptydir');
    const b = await mountZkfs(zk.connectString, '/types');
    expect(await b.ok('stat -c %F empty emptydir')).toBe('regular empty file\ndirectory\n');
    await b.ok('echo now > empty');
    await sees(a, 'cat empty', 'now\n');
  });
});

describe.skipIf(missing({ fuse: true }))('two hosts creating files in one directory at once', () => {
  it('creates every file, however often the other host rewrote the directory metadata first', async () => {
    const [a, b] = await mountTwice(zk.connectString, '/busy');
    await a.ok('mkdir d');
    await sees(b, 'ls -d d', 'd\n');
    // Eight writers per host, one file after another each: every create rewrites d's metadata
    // document, so most are raced by the other host. A race lost eight times running was an EIO.
    const writers = (m: ZkfsMount, host: string) =>
      m.sh(
        `for w in 1 2 3 4 5 6 7 8; do (for i in $(seq 1 60); do echo ${host}$w-$i > d/${host}$w-$i || echo FAILED; done) & done; wait`,
      );
    const [ra, rb] = await Promise.all([writers(a, 'a'), writers(b, 'b')]);
    expect(ra.stderr + rb.stderr).toBe('');
    expect(ra.stdout + rb.stdout).not.toContain('FAILED');
    for (const m of [a, b]) {
      expect((await m.ok('ls d | wc -l')).trim()).toBe('960');
      expect(await m.ok('cat d/a8-60 d/b1-1')).toBe('a8-60\nb1-1\n');
      expect(await m.ok('find d -type f | wc -l')).toBe('960\n');
    }
    await a.unmount();
    await b.unmount();
  });
});

describe.skipIf(missing({ fuse: true }))('two hosts writing a new name at once', () => {
  it('opens the file the other host made meanwhile, as open(O_CREAT) does, rather than failing with EEXIST', async () => {
    const [a, b] = await mountTwice(zk.connectString, '/same');
    // `echo > f` opens with O_CREAT but not O_EXCL; whichever host creates f second found it made
    // by the other and failed with "File exists" (about one round in ten).
    const rounds = 60;
    const r = await a.sh(`for i in $(seq 1 ${rounds}); do echo a > f$i & echo b > ${b.dir}/f$i & wait; done`);
    expect(r.stderr).not.toContain('File exists');
    for (const m of [a, b]) expect((await m.ok('ls | wc -l')).trim()).toBe(String(rounds));
    // O_EXCL still refuses a name that exists: bash's noclobber opens with it.
    const clobber = await b.sh('set -o noclobber; echo b > f1');
    expect(clobber.exitCode).not.toBe(0);
    expect(clobber.stderr).toContain('cannot overwrite existing file');
    await a.unmount();
    await b.unmount();
  });
});

/** Replaces f in its working directory for argv[1] ms as fast as it can, as `mv .new f` does; prints how many times. */
const REPLACER = `
const fs = require('fs');
const end = Date.now() + Number(process.argv[1]);
let i = 0;
try {
  while (Date.now() < end) {
    i++;
    fs.writeFileSync('.new', 'version ' + i + '\\n');
    fs.renameSync('.new', 'f');
  }
} finally {
  fs.writeFileSync('done', '');
}
console.log(i);
`;

/** Reads f whole until \`done\` appears; prints how often, and each failure or text not one whole version. */
const READER = `
const fs = require('fs');
let reads = 0;
const bad = [];
while (!fs.existsSync('done')) {
  reads++;
  try {
    const text = fs.readFileSync('f', 'utf8');
    if (!/^version \\d+\\n$/.test(text)) bad.push(JSON.stringify(text));
  } catch (e) {
    bad.push(e.code);
  }
}
console.log(JSON.stringify({ reads, bad }));
`;

/** Keeps a CPU busy until \`done\` appears. */
const BUSY = `
const fs = require('fs');
for (let n = 0; ; n++) if (n % 100000 === 0 && fs.existsSync('done')) break;
`;

describe.skipIf(missing({ fuse: true }))('a file replaced by a rename over it', () => {
  // As editors and certbot write a file: a new one beside it, renamed over it. One transaction
  // deletes f and makes it again, but its notifications come one by one (on the renaming mount
  // too, before the rename's reply), and in between a mount took f for gone (ENOENT), or opened
  // the old node after it left (ENOENT too).
  const replace = (m: ZkfsMount) =>
    m.sh('for i in $(seq 1 150); do echo version $i > .new && mv .new f || echo FAILED; done; touch done');

  it('reads, throughout, as the old file or the new one on the host renaming it, however fast it opens it', async () => {
    const a = await mountZkfs(zk.connectString, '/replaced-here');
    await a.ok('echo version 0 > f');
    let writing = true;
    const writer = replace(a).finally(() => {
      writing = false;
    });
    // Opens as fast as a program can make them: a shell loop forking cat is too slow to hit the gap.
    let reads = 0;
    const bad: string[] = [];
    while (writing) {
      reads++;
      try {
        const text = await readFile(join(a.dir, 'f'), 'utf8');
        if (!text.startsWith('version ')) bad.push(text);
      } catch (error) {
        bad.push(String((error as NodeJS.ErrnoException).code));
      }
    }
    expect((await writer).stdout).not.toContain('FAILED');
    expect(bad).toEqual([]);
    expect(reads).toBeGreaterThan(100);
    await a.unmount();
  });

  it('reads, throughout, as the old file or the new one on another host', async () => {
    const [a, b] = await mountTwice(zk.connectString, '/replaced');
    await a.ok('echo version 0 > f');
    await sees(b, 'cat f', 'version 0\n');
    // Three programs reading f as fast as they can, and a shell loop forking cat, while a replaces it
    // as fast as it can: a reader opened the old node just as b heard it was gone, which failed
    // (ESTALE, or ENOENT from its fstat) a few times in a few thousand reads.
    const node = (m: ZkfsMount, script: string, arg?: string) =>
      execa(process.execPath, ['-e', script, ...(arg ? [arg] : [])], {
        cwd: m.dir,
        reject: false,
        timeout: 60_000,
      });
    const readers = [node(b, READER), node(b, READER), node(b, READER)];
    // A busy CPU widens the moments in which that happened, as on a loaded host.
    const busy = node(b, BUSY);
    const shell = b.sh(
      `n=0; while [ ! -e done ]; do c=$(cat f 2>&1); n=$((n+1)); case "$c" in "version "*[0-9]) ;; *) echo "BAD $c";; esac; done; echo "reads $n"`,
    );
    const w = await node(a, REPLACER, '8000');
    expect(w.stderr).toBe('');
    const replaced = Number(w.stdout);
    expect(replaced).toBeGreaterThan(20);
    for (const r of await Promise.all(readers)) {
      const { reads, bad } = JSON.parse(r.stdout) as { reads: number; bad: string[] };
      expect(bad).toEqual([]);
      expect(reads).toBeGreaterThan(100);
    }
    await busy;
    const r = await shell;
    expect(r.stdout).not.toContain('BAD');
    expect(Number(/reads (\d+)/.exec(r.stdout)?.[1])).toBeGreaterThan(20);
    await sees(b, 'cat f', `version ${replaced}\n`);
    await a.unmount();
    await b.unmount();
  });
});
