/**
 * A file deleted while a program holds it open, which on a local disk that
 * program goes on reading until it closes it: deleted by another client, by
 * `rm` through the mount, or replaced by `mv`, and read through each way a
 * file can be open (a handle from JavaScript, one from the native reader,
 * and the kernel's own on a read-only mount), also after the kernel has
 * dropped its pages and must ask the daemon again; and written to, which
 * then has nowhere to go, and close says so. A directory deleted while a
 * program works in it stays a directory to that program, empty, and it can
 * still leave it (`cd ..`). A file another client rewrote while the
 * session was gone reads whole before the kernel has heard of the change.
 * And a name looked up as the connection goes, and replaced before it is
 * back, is the new file once it is.
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readlinkSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ZkClient } from '../../src/adapters/zookeeper.js';
import { META_NODE } from '../../src/core/zkfs/paths.js';
import { missing } from '../fixtures/environment.js';
import {
  OP_ADD_WATCH,
  OP_GET_CHILDREN2,
  OP_GET_DATA,
  OP_MULTI,
  OP_SET_DATA,
  startZkProxy,
  type ZkProxy,
} from '../fixtures/zk-proxy.js';
import type { ZkServer } from '../fixtures/zk-server.js';
import {
  daemonPid,
  eventually,
  mountStatus,
  mountZkfs,
  nativeOpens,
  readAll,
  sees,
  startZkWithClient,
  type ZkfsMount,
} from '../fixtures/zkfs-mount.js';

/** stat(2) of argv[1]: says how it ended, then how many seconds it took. */
const STAT_TIMED = `
import os, sys, time
started = time.monotonic()
try:
    os.stat(sys.argv[1])
    print('ok')
except OSError as e:
    print(e.strerror)
print(round(time.monotonic() - started, 1))
`;

/** Makes f (O_EXCL), writes to it, says "written", and closes it once a line comes in; says how the close ended. */
const MAKE_WRITE_CLOSE = `
import os, sys
fd = os.open('f', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b'this host, written to a file since replaced')
print('written', flush=True)
sys.stdin.readline()
try:
    os.close(fd)
except OSError as e:
    print('close:', e.strerror)
    sys.exit(1)
print('closed')
`;

/** Opens n for reading, says "open", and once a line comes in makes it mode 600 through the descriptor; says how that ended. */
const OPEN_THEN_FCHMOD = `
import os, sys
fd = os.open('n', os.O_RDONLY)
print('open', flush=True)
sys.stdin.readline()
try:
    os.fchmod(fd, 0o600)
    print('changed')
except OSError as e:
    print('fchmod:', e.strerror)
os.close(fd)
`;

/** Opens log to append, says "open", and once a line comes in appends a line and closes it; says how that ended. */
const APPEND_WHEN_TOLD = `
import os, sys
fd = os.open('log', os.O_WRONLY | os.O_APPEND)
print('open', flush=True)
sys.stdin.readline()
try:
    os.write(fd, b'mine\\n')
    os.close(fd)
    print('closed')
except OSError as e:
    print(e.strerror)
`;

/** Makes argv[1] its working directory, says "ready", and once a line comes in says where it is, or why it cannot tell. */
const CWD_WHEN_TOLD = `
import os, sys
os.chdir(sys.argv[1])
print('ready', flush=True)
sys.stdin.readline()
try:
    print(os.getcwd())
except OSError as e:
    print(e.strerror)
`;

/** Writes to app.log, says "written", and closes it once a line comes in; says how the close ended. */
const WRITE_THEN_CLOSE = `
import os, sys
fd = os.open('app.log', os.O_WRONLY)
os.write(fd, b'this host, written before the rename')
print('written', flush=True)
sys.stdin.readline()
try:
    os.close(fd)
    print('closed')
except OSError as e:
    print('close:', e.strerror)
`;

/** Reads x, says "ready", and once a line comes in unlinks x; says why that failed, if it did, then "done". */
const UNLINK_WHEN_TOLD = `
import os, sys
print(open('x').read(), end='')
print('ready', flush=True)
sys.stdin.readline()
try:
    os.unlink('x')
except OSError as e:
    print(e.strerror)
print('done')
`;

/** Drops the kernel's clean pages: the next read through a descriptor asks the daemon. */
function dropPages(): void {
  writeFileSync('/proc/sys/vm/drop_caches', '1');
}

const CONTENT = 'written before the deletion\n';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until ZooKeeper holds each of `names` under `base`, and a while for what the mounts
 * write back at release (times): a transaction held at a proxy is then the one a test starts.
 */
async function settled(client: ZkClient, base: string, names: readonly string[]): Promise<void> {
  const there = async () => {
    const { children } = await client.getChildren(base);
    return names.every((name) => children.includes(name));
  };
  await eventually(there, `${names.join(', ')} written`, 5000);
  await sleep(500);
}

/** What reading a name in a deleted directory says, as on a local disk (not "Stale file handle"). */
const GONE = 'No such file or directory\n';

/**
 * A shell working in `dir`, which says it is ready, waits for a line on
 * its input and then looks at its working directory (type and links),
 * counts what it lists, says why a name in it cannot be read, and goes up
 * out of it: `look()` sends the line and resolves with what it printed
 * after `ready`. A test deletes the directory only once `ready` resolves:
 * a shell still starting then could not learn where it was.
 */
function shellIn(dir: string): { ready: Promise<void>; look(): Promise<string> } {
  const script = `echo ready; read -r _; stat -c '%F %h' .; ls -a | wc -l; cat missing 2>&1 | sed 's/^.*: //'; cd .. && pwd -P`;
  const child = spawn('bash', ['-c', script], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    if (out.startsWith('ready\n')) markReady();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let looked: Promise<string> | undefined;
  return {
    ready,
    look() {
      if (!looked) {
        child.stdin.end('\n');
        looked = exited.then(() => out.replace(/^ready\n/, ''));
      }
      return looked;
    },
  };
}

interface Reader {
  name: string;
  args: string[];
  env: Record<string, string>;
  /** Re-open the file until the native reader answers the open. */
  native: boolean;
}

const READERS: Reader[] = [
  { name: 'a handle from JavaScript', args: [], env: { VOLKIT_FUSE_READER: 'event-loop' }, native: false },
  { name: 'a handle from the native reader', args: [], env: {}, native: true },
  { name: "the kernel's own handle on a read-only mount", args: ['--read-only'], env: {}, native: false },
];

describe.skipIf(missing({ fuse: true }))('zkfs: a deleted file stays readable while it is open', () => {
  let zk: ZkServer;
  let client: ZkClient;
  let serial = 0;

  beforeAll(async () => {
    ({ zk, client } = await startZkWithClient());
    await client.create('/orphans', Buffer.alloc(0));
  });

  /** A mount of a new directory holding `f` (CONTENT), `f` open for reading through it. */
  async function openedFile(
    reader: Reader,
    args: string[] = [],
  ): Promise<{ m: ZkfsMount; base: string; fd: number }> {
    const base = `/orphans/t${serial++}`;
    await client.create(base, Buffer.alloc(0));
    await client.create(`${base}/f`, Buffer.from(CONTENT));
    const m = await mountZkfs(zk.connectString, base, { args: [...reader.args, ...args], env: reader.env });
    let before = 0;
    if (reader.native) {
      for (let pass = 0; pass < 3; pass++) expect(await m.ok('cat f')).toBe(CONTENT);
      before = await nativeOpens(m);
    }
    const fd = openSync(join(m.dir, 'f'), 'r');
    if (reader.native) expect(await nativeOpens(m)).toBe(before + 1);
    expect(readAll(fd)).toBe(CONTENT);
    return { m, base, fd };
  }

  /**
   * Makes `changes` while `m`'s daemon is frozen past its session's timeout,
   * so that it hears of none of them (the server closes the session and its
   * watch), then lets it go on and waits for its new session's watch.
   */
  async function whileExpired(m: ZkfsMount, changes: () => Promise<void>): Promise<void> {
    const granted = (await mountStatus(m.dir)).session.timeoutMs;
    const pid = daemonPid(m.dir);
    process.kill(pid, 'SIGSTOP');
    try {
      await sleep(granted + 4000);
      await changes();
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await eventually(async () => {
      const s = await mountStatus(m.dir);
      return s.session.expiries >= 1 && s.cache.mode === 'watch';
    }, 'a new session with its watch');
  }

  /** `f` made again under its name is another file; the deleted one, open as `fd` (inode `ino`), stays as it was. */
  async function madeAgain(m: ZkfsMount, base: string, fd: number, ino: number): Promise<void> {
    await client.create(`${base}/f`, Buffer.from('made again\n'));
    await sees(m, 'cat f', 'made again\n');
    expect(statSync(join(m.dir, 'f')).ino).not.toBe(ino);
    dropPages();
    expect(readAll(fd)).toBe(CONTENT);
  }

  it.each(READERS)('after another client deletes it, through $name', async (reader) => {
    const { m, base, fd } = await openedFile(reader);
    try {
      await client.remove(`${base}/f`, -1);
      await sees(m, 'ls; cat f 2>&1 || true', 'cat: f: No such file or directory\n');
      dropPages();
      expect(readAll(fd)).toBe(CONTENT);
      const st = fstatSync(fd);
      expect(st.size).toBe(CONTENT.length);
      expect(st.isFile()).toBe(true);
      expect(st.nlink).toBe(0);

      await madeAgain(m, base, fd, st.ino);
    } finally {
      closeSync(fd);
    }
    expect(await m.ok('cat f')).toBe('made again\n');
    await m.unmount();
  });

  it.each(READERS)(
    'after another client deletes it, or deletes and makes it again, while the mount has lost its session (no watch), through $name',
    async (reader) => {
      const { m, base, fd } = await openedFile(reader, ['--session-timeout', '2']);
      let shell: ReturnType<typeof shellIn> | undefined;
      let inner: number | undefined;
      let replaced: number | undefined;
      try {
        // And a shell works in a directory deleted alike, where a file is open too; and another
        // open file is deleted and made again, with other content, under the same name.
        await client.create(`${base}/sub`, Buffer.alloc(0));
        await client.create(`${base}/sub/g`, Buffer.from('inside\n'));
        await client.create(`${base}/h`, Buffer.from('the first h\n'));
        await sees(m, 'ls; cat sub/g h', 'f\nh\nsub\ninside\nthe first h\n');
        shell = shellIn(join(m.dir, 'sub'));
        await shell.ready;
        inner = openSync(join(m.dir, 'sub/g'), 'r');
        replaced = openSync(join(m.dir, 'h'), 'r');
        expect(readAll(replaced)).toBe('the first h\n');
        const firstH = fstatSync(replaced).ino;
        await whileExpired(m, async () => {
          await client.remove(`${base}/f`, -1);
          await client.remove(`${base}/sub/g`, -1);
          await client.remove(`${base}/sub`, -1);
          await client.remove(`${base}/h`, -1);
          await client.create(`${base}/h`, Buffer.from('another h\n'));
        });
        await sees(m, 'ls; cat h; cat f 2>&1 || true', 'h\nanother h\ncat: f: No such file or directory\n');
        dropPages();
        expect(readAll(fd)).toBe(CONTENT);
        const st = fstatSync(fd);
        expect(st.size).toBe(CONTENT.length);
        expect(st.nlink).toBe(0);
        expect(readAll(inner)).toBe('inside\n');
        expect(await shell.look()).toBe(`directory 0\n0\n${GONE}${m.dir}\n`);
        // The program holding the first h reads the first h; the name is a new file.
        expect(readAll(replaced)).toBe('the first h\n');
        expect(fstatSync(replaced).nlink).toBe(0);
        expect(statSync(join(m.dir, 'h')).ino).not.toBe(firstH);
        expect(m.log()).toMatch(
          /4 names the kernel held were deleted while the watch was down \(1 of them made again\)/,
        );
        await madeAgain(m, base, fd, st.ino);
      } finally {
        closeSync(fd);
        if (inner !== undefined) closeSync(inner);
        if (replaced !== undefined) closeSync(replaced);
        // Out of the mount whatever happened, or it cannot be unmounted.
        await shell?.look();
      }
      await m.unmount();
    },
  );

  it('tells a file made again while the watch was down from the one a program holds, though memory kept neither', async () => {
    // No cache: when the session goes, memory holds no stat of the file open here.
    const { m, base, fd } = await openedFile(READERS[0] as Reader, [
      '--session-timeout',
      '2',
      '--cache-size',
      '0',
    ]);
    try {
      const first = fstatSync(fd).ino;
      await whileExpired(m, async () => {
        await client.remove(`${base}/f`, -1);
        await client.create(`${base}/f`, Buffer.from('made again, longer than the first\n'));
      });
      await eventually(
        async () =>
          /1 names the kernel held were deleted while the watch was down \(1 of them made again\)/.test(
            m.log(),
          ),
        'the gap checked',
      );
      expect(await m.ok('cat f')).toBe('made again, longer than the first\n');
      expect(statSync(join(m.dir, 'f')).ino).not.toBe(first);
      dropPages();
      expect(readAll(fd)).toBe(CONTENT);
      expect(fstatSync(fd).nlink).toBe(0);
    } finally {
      closeSync(fd);
    }
    await m.unmount();
  });

  it.each([
    { name: 'nothing is made under its name', again: undefined },
    // Both at data version 0: the version check alone would let the write land in the new file.
    { name: 'another client makes it again before the close', again: 'made again elsewhere\n' },
  ])(
    'keeps what a program writes to a file another client deleted readable to it, and fails its close with EIO ($name)',
    async ({ again }) => {
      const base = `/orphans/t${serial++}`;
      await client.create(base, Buffer.alloc(0));
      await client.create(`${base}/f`, Buffer.from(CONTENT));
      const m = await mountZkfs(zk.connectString, base);
      const fd = openSync(join(m.dir, 'f'), 'r+');
      let closed = false;
      try {
        await client.remove(`${base}/f`, -1);
        await sees(m, 'ls', '');
        const more = 'and written after it, longer than before\n';
        writeSync(fd, more, 0);
        const st = fstatSync(fd);
        expect(st.size).toBe(more.length);
        expect(st.nlink).toBe(0);
        dropPages();
        expect(readAll(fd)).toBe(more);
        if (again) {
          await client.create(`${base}/f`, Buffer.from(again));
          await sees(m, 'cat f', again);
        }
        // Nowhere to write it: close says so rather than reporting success.
        closed = true;
        expect(() => closeSync(fd)).toThrow(expect.objectContaining({ code: 'EIO' }));
      } finally {
        if (!closed) closeSync(fd);
      }
      if (again) expect((await client.getData(`${base}/f`)).data.toString()).toBe(again);
      else expect(await client.exists(`${base}/f`)).toBeNull();
      await m.unmount();
    },
  );

  it.each(READERS.filter((r) => !r.args.includes('--read-only')))(
    'after rm or mv over it through the mount, through $name',
    async (reader) => {
      const removed = await openedFile(reader);
      const replaced = await openedFile(reader);
      try {
        await removed.m.ok('rm f');
        await replaced.m.ok('echo replacement > g && mv g f');
        dropPages();
        expect(readAll(removed.fd)).toBe(CONTENT);
        expect(readAll(replaced.fd)).toBe(CONTENT);
        expect(fstatSync(removed.fd).nlink).toBe(0);
        expect(await replaced.m.ok('cat f')).toBe('replacement\n');
        expect(await removed.m.ok('ls')).toBe('');
      } finally {
        closeSync(removed.fd);
        closeSync(replaced.fd);
      }
      expect((await client.getData(`${replaced.base}/f`)).data.toString()).toBe('replacement\n');
      await removed.m.unmount();
      await replaced.m.unmount();
    },
  );
  it('keeps a directory another client deletes usable to a program working in it', async () => {
    const base = `/orphans/t${serial++}`;
    await client.create(base, Buffer.alloc(0));
    await client.create(`${base}/sub`, Buffer.alloc(0));
    const m = await mountZkfs(zk.connectString, base);
    const shell = shellIn(join(m.dir, 'sub'));
    await shell.ready;
    await client.remove(`${base}/sub`, -1);
    await sees(m, 'ls', '');
    dropPages();
    // As on a local disk: still a directory, with no link, listing nothing; and the way out works.
    expect(await shell.look()).toBe(`directory 0\n0\n${GONE}${m.dir}\n`);
    await m.unmount();
  });

  it('keeps a directory removed or replaced through the mount usable to a program working in it', async () => {
    const base = `/orphans/t${serial++}`;
    await client.create(base, Buffer.alloc(0));
    const m = await mountZkfs(zk.connectString, base);
    await m.ok('mkdir removed replaced other');
    const inRemoved = shellIn(join(m.dir, 'removed'));
    const inReplaced = shellIn(join(m.dir, 'replaced'));
    await Promise.all([inRemoved.ready, inReplaced.ready]);
    await m.ok('rmdir removed && mv -T other replaced');
    expect(await inRemoved.look()).toBe(`directory 0\n0\n${GONE}${m.dir}\n`);
    expect(await inReplaced.look()).toBe(`directory 0\n0\n${GONE}${m.dir}\n`);
    expect(await m.ok('ls')).toBe('replaced\n');
    await m.unmount();
  });

  /** Cuts mount `m` off from ZooKeeper at `proxy`, and waits until it knows. */
  const cutOff = async (proxy: ZkProxy, m: ZkfsMount): Promise<void> => {
    proxy.refuse();
    await eventually(
      async () => (await mountStatus(m.dir)).session.state === 'disconnected',
      'the connection lost',
    );
  };

  /**
   * Lets the request `proxy` holds go on, and once `landed()` says ZooKeeper applied it, cuts
   * mount `m` off before its reply reaches it: a write whose reply was lost with the connection.
   */
  const loseReply = async (
    proxy: ZkProxy,
    m: ZkfsMount,
    landed: () => Promise<boolean>,
    what: string,
  ): Promise<void> => {
    await proxy.holding();
    proxy.holdReplies();
    proxy.releaseRequests();
    await eventually(landed, what, 5000);
    await cutOff(proxy, m);
  };

  /** Has mount `m` fall back to time-limited caching: `proxy` cuts the connection at each addWatch. */
  const withoutWatch = async (proxy: ZkProxy, m: ZkfsMount): Promise<void> => {
    proxy.cutOn(OP_ADD_WATCH);
    await cutOff(proxy, m);
    proxy.accept();
    await eventually(async () => (await mountStatus(m.dir)).cache.mode === 'ttl', 'time-limited caching');
  };

  /**
   * Runs MAKE_WRITE_CLOSE in mount `m`, in a process of its own: a descriptor of f held here
   * would be closed in each child this test spawns (zkfsctl status), as it execs, and that
   * close would wait for the connection too. `steps` says when it has written and tells it to
   * close f; should a step fail, the program is stopped (it holds f open on the mount).
   */
  const makeWriteClose = async (
    m: ZkfsMount,
    steps: (program: { written(): Promise<void>; close(): void }) => Promise<void>,
  ): Promise<{ exitCode: number | undefined; stdout: string }> => {
    const writer = execa('python3', ['-c', MAKE_WRITE_CLOSE], {
      cwd: m.dir,
      reject: false,
      stdin: 'pipe',
      timeout: 60_000,
    });
    let said = '';
    writer.stdout?.on('data', (c: Buffer) => {
      said += c.toString();
    });
    try {
      await steps({
        written: () => eventually(async () => said.includes('written'), 'the program wrote'),
        close: () => writer.stdin?.write('\n'),
      });
    } catch (error) {
      writer.kill();
      throw error;
    }
    const { exitCode, stdout } = await writer;
    return { exitCode, stdout };
  };

  /** A fresh tree, mounted (a) through a proxy that can hold this host's transactions and replies. */
  const throughProxy = async (
    args: string[] = [],
  ): Promise<{ proxy: ZkProxy; base: string; a: ZkfsMount }> => {
    const proxy = await startZkProxy(zk.clientPorts[0] as number);
    const base = `/orphans/t${serial++}`;
    await client.create(base, Buffer.alloc(0));
    return { proxy, base, a: await mountZkfs(proxy.connectString, base, { args }) };
  };

  /**
   * A python `script` started in `cwd` on mount `m`, once it has printed `word` (it waits for a
   * line on its input next); `told` sends that line and resolves once the daemon has counted
   * one more `op` request (in `zkfsctl status`), so that a test knows the request is in.
   */
  const programSaying = async (m: ZkfsMount, script: string, cwd: string, word: string, op: string) => {
    const program = execa('python3', ['-c', script], { cwd, reject: false, timeout: 60_000 });
    const said = new Promise<boolean>((resolve) => {
      program.stdout?.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes(word)) resolve(true);
      });
      void program.then(() => resolve(false));
    });
    expect(await said).toBe(true);
    const count = async () => (await mountStatus(m.dir)).operations.byName?.[op] ?? 0;
    const told = async () => {
      const before = await count();
      program.stdin?.write('\n');
      program.stdin?.end();
      await eventually(async () => (await count()) > before, `the ${op} sent`);
    };
    return { program, told };
  };

  /** A mount through a proxy (`args`) where a program holds n open, cut off while another client replaces n. */
  const holdingReplaced = async (args: string[] = []) => {
    const { proxy, base, a: m } = await throughProxy(args);
    await client.create(`${base}/n`, Buffer.from('the old file\n'));
    await sees(m, 'stat -c %a n', '644\n');
    const { program, told } = await programSaying(m, OPEN_THEN_FCHMOD, m.dir, 'open', 'setattr');
    await cutOff(proxy, m);
    await client.remove(`${base}/n`, -1);
    await client.create(`${base}/n`, Buffer.from('the new file\n'));
    return { proxy, base, m, program, fchmod: told };
  };

  /**
   * `n` (the old file) is looked up on a mount through a proxy (by `stat`, or listed by `ls -l`)
   * while its connection goes, and another client replaces it with a shorter file before the
   * connection is back. The lookup is begun while the connection is there (its read of n
   * answered, and its read of the directory's document, which comes after, lost with the
   * connection), or with no connection. Begun connected, the kernel took n as the old file, and
   * its reads by path got the new one's content at the old size, padded with zeros (found by
   * `npm run stress`'s readers, just after a leader was killed); begun with no connection, its
   * reads go out after the watch is back, and it never did.
   */
  const ACROSS_A_GAP = [
    { how: 'stat', connected: true, kind: 'read-only', args: ['--read-only'] },
    { how: 'stat', connected: true, kind: 'read-write', args: [] },
    { how: 'stat', connected: false, kind: 'read-only', args: ['--read-only'] },
    { how: 'stat', connected: false, kind: 'read-write', args: [] },
    { how: 'ls -l', connected: true, kind: 'read-only', args: ['--read-only'] },
  ];
  it.each(ACROSS_A_GAP)(
    'a name looked up by $how across a connection loss (begun connected: $connected), and replaced meanwhile, shows the new file ($kind)',
    async ({ how, connected, args }) => {
      const OLD = 'the old file, longer than the new one\n';
      const NEW = 'the new file\n';
      // No cache: the lookup reads the directory's document after n's stat, each time.
      const { proxy, base, a: m } = await throughProxy([...args, '--cache-size', '0']);
      await client.create(`${base}/n`, Buffer.from(OLD));
      // The kernel asks for the directory's attributes again (n's creation changed them) first.
      await sees(m, 'stat -c %h .', '1\n');
      // The kernel has not looked n up: no picture of what it held when the watch goes has it.
      // Not run in the mount: spawn() waits for the child's exec, and so for its chdir there.
      const look = () => {
        const child =
          how === 'stat' ? execa('stat', ['-c', '%s', join(m.dir, 'n')]) : execa('ls', ['-l', m.dir]);
        child.catch(() => {});
        return child;
      };
      let looked: ReturnType<typeof look> | undefined;
      if (connected) {
        // A listing reads every entry's stat with the document first, then each entry alone.
        proxy.holdRequests(OP_GET_DATA, '__zkfs__', how === 'stat' ? 0 : 1);
        looked = look();
        await proxy.holding();
      }
      await cutOff(proxy, m);
      if (!connected) {
        looked = look();
        await sleep(200);
      }
      await client.remove(`${base}/n`, -1);
      await client.create(`${base}/n`, Buffer.from(NEW));
      proxy.releaseRequests();
      proxy.accept();
      // The lookup itself answers with the file it found once the watch was back.
      const shown = (await looked)?.stdout;
      if (how === 'stat') expect(shown).toBe(String(NEW.length));
      else expect(shown).toMatch(new RegExp(` ${NEW.length} .* n$`, 'm'));
      await eventually(async () => (await mountStatus(m.dir)).cache.mode === 'watch', 'the watch back');
      // Not the old size (the kernel keeps attributes 10 s), nor the new content as the old node.
      expect(await m.ok('stat -c %s n; cat n')).toBe(`${NEW.length}\n${NEW}`);
      await m.unmount();
    },
  );

  it('a file open across a connection loss, replaced meanwhile, and opened again as the watch comes back, is the new file to the new opener', async () => {
    // A program holds n open, so the kernel keeps its node when it drops its names once the watch
    // is back. Another opens n again while the mount still checks which names the kernel held
    // were replaced meanwhile (a proxy holds those checks' listing back). Handed out then, the
    // node the first holds took the new file's size, and was then found replaced: the second
    // read the old file's bytes.
    const OLD = 'the old file\n';
    const NEW = 'the new file, longer than the old one\n';
    const { proxy, base, a: m } = await throughProxy(['--read-only']);
    await client.create(`${base}/n`, Buffer.from(OLD));
    await sees(m, 'cat n', OLD);
    const held = openSync(join(m.dir, 'n'), 'r');
    try {
      await cutOff(proxy, m);
      await client.remove(`${base}/n`, -1);
      await client.create(`${base}/n`, Buffer.from(NEW));
      proxy.holdRequests(OP_GET_CHILDREN2, base);
      proxy.accept();
      await proxy.holding();
      // Not run in the mount: spawn() waits for the child's exec, and so for its chdir there.
      const again = execa('sh', ['-c', `exec 3< ${join(m.dir, 'n')}; sleep 1; cat <&3`]);
      again.catch(() => {});
      await sleep(300);
      proxy.releaseRequests();
      expect((await again).stdout).toBe(NEW.trimEnd());
      dropPages();
      expect(readAll(held)).toBe(OLD);
    } finally {
      closeSync(held);
    }
    await m.unmount();
  });

  it.each([
    { when: 'as the watch comes back', downMs: 0 },
    // Longer than a read waits for the checks (5 s): a session that expires is out for longer.
    { when: 'while the connection is down, for longer than a read waits for the checks', downMs: 6000 },
  ])(
    "leaves the mode of another host's file alone when a program holding the file it replaced fchmods it $when",
    async ({ downMs }) => {
      // fchmod(2) names the node the program holds, not a path. Sent before the mount had
      // checked which names the kernel held were replaced while the connection was down (a
      // proxy holds those checks' listing back), it reached the new file by the old one's name
      // and set its mode. Now it waits for the checks and finds its file gone.
      const { proxy, base, m, program, fchmod } = await holdingReplaced();
      try {
        if (downMs > 0) {
          await fchmod();
          await sleep(downMs);
        }
        proxy.holdRequests(OP_GET_CHILDREN2, base);
        proxy.accept();
        await proxy.holding();
        if (downMs === 0) await fchmod();
        await sleep(300);
      } finally {
        proxy.releaseRequests();
        proxy.accept();
      }
      expect((await program).stdout).toBe('open\nfchmod: Stale file handle');
      expect(await m.ok('stat -c %a n; cat n')).toBe('644\nthe new file\n');
      await m.unmount();
    },
  );

  it.each([
    // Back after --reconnect-timeout and a read's 5 s wait, before the checks' own grace ran out.
    { outcome: 'ESTALE once the connection is back', downMs: 6000, said: 'fchmod: Stale file handle' },
    { outcome: 'ETIMEDOUT when it is not', downMs: 12_000, said: 'fchmod: Connection timed out' },
  ])(
    'fails an fchmod waiting for the checks past --reconnect-timeout with $outcome, and never changes the new file',
    async ({ downMs, said }) => {
      // The wait for the checks used to end at its first 5 s turn past the deadline; the change
      // then waited for the connection, and went out with it, ahead of the checks.
      const { proxy, m, program, fchmod } = await holdingReplaced(['--reconnect-timeout', '3']);
      try {
        await fchmod();
        await sleep(downMs);
      } finally {
        proxy.accept();
      }
      expect((await program).stdout).toBe(`open\n${said}`);
      if (said.includes('timed out')) expect(m.log()).toContain('were still being checked after 8 s');
      // Once the connection is back (a change sent with it would land before this matches): the
      // new file, its mode as it was.
      await sees(m, 'stat -c %a n; cat n', '644\nthe new file\n');
      await m.unmount();
    },
  );

  it("does not remove a file from another host's directory that replaced the one a program works in while the connection was down", async () => {
    // The program's unlink named x in its working directory, the node the kernel holds. The
    // kernel, holding that directory's attributes and x's name from before the connection went
    // (for --attr-timeout), let it through without asking anything first, while the connection
    // was down; it went out as the connection came back, ahead of the checks that find that
    // directory deleted and made again, and removed the new directory's x. Now the unlink waits
    // for them, and finds its directory gone, as on a local disk.
    const { proxy, base, a: m } = await throughProxy(['--attr-timeout', '60000']);
    await client.create(`${base}/d`, Buffer.alloc(0));
    await client.create(`${base}/d/x`, Buffer.from('the old x\n'));
    const { program, told } = await programSaying(m, UNLINK_WHEN_TOLD, join(m.dir, 'd'), 'ready', 'unlink');
    try {
      await cutOff(proxy, m);
      await client.remove(`${base}/d/x`, -1);
      await client.remove(`${base}/d`, -1);
      await client.create(`${base}/d`, Buffer.alloc(0));
      await client.create(`${base}/d/x`, Buffer.from('the new x\n'));
      await told();
    } finally {
      proxy.accept();
    }
    expect((await program).stdout).toBe('the old x\nready\nNo such file or directory\ndone');
    expect((await client.getData(`${base}/d/x`)).data.toString()).toBe('the new x\n');
    await m.unmount();
  });

  it('answers at once when its watch cannot be set again after a connection loss, not after waiting for checks that never come', async () => {
    // The server drops the connection at each addWatch (as one older than 3.6 may): the mount
    // goes on with time-limited caching. Names the kernel held when the watch went are checked
    // then; before, their reads waited 5 s each for checks made only once a watch was back.
    const { proxy, base, a: m } = await throughProxy(['--read-only']);
    await client.create(`${base}/f`, Buffer.from(CONTENT));
    await sees(m, 'cat f', CONTENT);
    await withoutWatch(proxy, m);
    dropPages();
    const started = Date.now();
    expect(await m.ok('cat f')).toBe(CONTENT);
    expect(Date.now() - started).toBeLessThan(4000);
    await m.unmount();
  });

  it.each([
    { where: 'the first file of its directory', first: true },
    { where: 'a file beside others', first: false },
  ])(
    "does not write a file it made over another host's file that replaced it while the connection was down ($where)",
    async ({ first }) => {
      // This host makes f and writes to it; the connection goes; another host replaces f (a new
      // node, at data version 0 as the made file was); the program closes f, and the connection
      // comes back. The write-back, sent as it came back, ahead of the checks of the names the
      // kernel held, landed on the other host's file at version 0: its content was lost. (The
      // first file made in a directory makes its metadata document too.)
      const { proxy, base, a: m } = await throughProxy();
      if (!first) await m.ok('echo other > g');
      const ended = await makeWriteClose(m, async (program) => {
        await program.written();
        await cutOff(proxy, m);
        await client.remove(`${base}/f`, -1);
        await client.create(`${base}/f`, Buffer.from('the other host'));
        const flushes = async () => (await mountStatus(m.dir)).operations.byName?.flush ?? 0;
        const before = await flushes();
        program.close();
        // The close's write-back is on its way, waiting for the connection, before it comes back.
        await eventually(async () => (await flushes()) > before, 'the close sent');
        proxy.accept();
      });
      // As for a file another host deleted while it was open here: the close fails, the other's file stays.
      expect(ended).toEqual({ exitCode: 1, stdout: 'written\nclose: Input/output error' });
      expect((await client.getData(`${base}/f`)).data.toString()).toBe('the other host');
      expect(m.log()).toContain('write to /f lost: another client deleted it while it was open');
      await m.unmount();
    },
  );

  it("does not write a file it made over another host's file that replaced it after the create's reply was lost", async () => {
    // The create lands, its reply is lost with the connection, and another host replaces f before
    // the connection is back. The create, found applied, tells nothing of the node it made (a stat
    // read then may be of the other host's), and the kernel held no f when the watch went, so no
    // check looks at it: the close's write-back went over the other host's file, at version 0.
    const { proxy, base, a: m } = await throughProxy();
    await m.ok('echo other > g');
    proxy.holdRequests(OP_MULTI);
    const ended = await makeWriteClose(m, async (program) => {
      await loseReply(proxy, m, async () => (await client.exists(`${base}/f`)) !== null, 'the create landed');
      await client.remove(`${base}/f`, -1);
      await client.create(`${base}/f`, Buffer.from('the other host'));
      proxy.releaseReplies();
      proxy.accept();
      await program.written();
      await eventually(async () => (await mountStatus(m.dir)).cache.mode === 'watch', 'the watch back');
      program.close();
    });
    expect(ended).toEqual({ exitCode: 1, stdout: 'written\nclose: Input/output error' });
    expect((await client.getData(`${base}/f`)).data.toString()).toBe('the other host');
    await m.unmount();
  });

  it.each([
    { command: 'rm f', made: Buffer.from('mine'), again: Buffer.from('the other host'), shows: 'cat f' },
    { command: 'rmdir f', made: Buffer.alloc(0), again: Buffer.alloc(0), shows: 'ls' },
  ])(
    "does not remove another host's node made under the name after the reply to $command was lost",
    async (c) => {
      // The removal lands, its reply is lost with the connection, and another host makes f again
      // before the connection is back. A node with nothing stored of it in its directory's document
      // was removed with no proof, and a version that another node has too (0): sent again, that
      // removed the other host's node.
      const { proxy, base, a: m } = await throughProxy();
      await client.create(`${base}/f`, c.made);
      // A directory made by another tool, holding only its own metadata document.
      if (c.command.startsWith('rmdir')) await client.create(`${base}/f/${META_NODE}`, Buffer.alloc(0));
      expect((await m.ok('ls')).trim()).toBe('f');
      proxy.holdRequests(OP_MULTI);
      const removal = m.sh(c.command);
      await loseReply(
        proxy,
        m,
        async () => (await client.exists(`${base}/f`)) === null,
        'the removal landed',
      );
      await client.create(`${base}/f`, c.again);
      proxy.releaseReplies();
      proxy.accept();
      const r = await removal;
      expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({ exitCode: 0, stderr: '' });
      expect((await client.getData(`${base}/f`)).data).toEqual(c.again);
      await sees(m, c.shows, c.command.startsWith('rmdir') ? 'f\n' : 'the other host');
      await m.unmount();
    },
  );

  it('fails an operation at --reconnect-timeout from its start, also when the server stalls once back', async () => {
    // The connection comes back just before the operation's time is up, and the server takes its
    // request but does not answer (pings pass): each request had the whole timeout of its own
    // again, so a stat failed 7 s later than the option says (22.8 s).
    const { proxy, base, a: m } = await throughProxy(['--reconnect-timeout', '10']);
    await client.create(`${base}/x`, Buffer.from('x'));
    await cutOff(proxy, m);
    // One system call, from outside the mount: its first request that fails ends it.
    const statting = execa('python3', ['-c', STAT_TIMED, join(m.dir, 'x')], {
      reject: false,
      timeout: 60_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 7000));
    proxy.holdReplies();
    proxy.accept();
    const [outcome, seconds] = (await statting).stdout.split('\n');
    proxy.releaseReplies();
    expect(outcome).toBe('Connection timed out');
    // 10 s, and up to 5 s before it for the checks of the names the kernel held across the loss.
    expect(Number(seconds)).toBeGreaterThanOrEqual(9.5);
    expect(Number(seconds)).toBeLessThan(17.5);
    await m.unmount();
  });

  /**
   * truncate(2) of f (made as "mine, as made") to 4 bytes on a mount through a proxy: the cut
   * lands, its reply is lost with the connection, and another client does `meanwhile` before the
   * mount is back. How the truncate ended, and f after.
   */
  const truncateLosingReply = async (meanwhile: (f: string) => Promise<void>) => {
    const { proxy, base, a: m } = await throughProxy();
    const f = `${base}/f`;
    await client.create(f, Buffer.from('mine, as made'));
    expect(await m.ok('cat f')).toBe('mine, as made');
    proxy.holdRequests(OP_SET_DATA);
    const cutting = execa('python3', ['-c', `import os; os.truncate('${join(m.dir, 'f')}', 4)`], {
      reject: false,
      timeout: 60_000,
    });
    await loseReply(proxy, m, async () => (await client.getData(f)).data.length === 4, 'the cut landed');
    await meanwhile(f);
    proxy.releaseReplies();
    proxy.accept();
    const r = await cutting;
    const after = { exitCode: r.exitCode, stderr: r.stderr, f: (await client.getData(f)).data.toString() };
    await m.unmount();
    return after;
  };

  it("does not cut another host's file that replaced the name after the reply to a truncate was lost", async () => {
    // Another host replaces f (at data version 0, as the first file was): sent again at that
    // version, the cut landed in the new file.
    const after = await truncateLosingReply(async (f) => {
      await client.remove(f, -1);
      await client.create(f, Buffer.from('the other host'));
    });
    expect(after).toEqual({ exitCode: 0, stderr: '', f: 'the other host' });
  });

  it("does not cut another host's write made after a truncate whose reply was lost", async () => {
    // Another host writes f: sent again, the cut failed on the version, and was made again over
    // that write.
    const after = await truncateLosingReply(async (f) => {
      await client.setData(f, Buffer.from('mine, then the other host'), -1);
    });
    expect(after).toEqual({ exitCode: 0, stderr: '', f: 'mine, then the other host' });
  });

  it('keeps the working directory of a program in the mount where it is across a connection loss', async () => {
    // The watch was down, so every name the kernel held was dropped: a directory dropped that
    // way is unhashed, and getcwd(2) of a program working in it failed (git, pwd, a shell's prompt).
    const { proxy, base, a: m } = await throughProxy();
    await client.create(`${base}/sub`, Buffer.alloc(0));
    await client.create(`${base}/sub/x`, Buffer.from('x'));
    const sub = join(m.dir, 'sub');
    expect(await m.ok('cat sub/x')).toBe('x');
    const program = execa('python3', ['-c', CWD_WHEN_TOLD, sub], {
      cwd: '/',
      reject: false,
      timeout: 60_000,
    });
    const ready = new Promise<void>((resolve) => {
      program.stdout?.on('data', (c: Buffer) => {
        if (c.toString().includes('ready')) resolve();
      });
    });
    try {
      await ready;
      const before = (await mountStatus(m.dir)).kernel.invalidations;
      await cutOff(proxy, m);
      proxy.accept();
      // The kernel told that every name it held may have changed: sub, and x in it.
      await eventually(
        async () => (await mountStatus(m.dir)).kernel.invalidations >= before + 2,
        'the kernel told',
        20_000,
      );
      expect(readlinkSync(`/proc/${program.pid}/cwd`)).toBe(sub);
    } catch (error) {
      program.kill();
      throw error;
    }
    program.stdin?.write('\n');
    program.stdin?.end();
    const r = await program;
    expect(r.stdout).toBe(`ready\n${sub}`);
    expect(await m.ok('cat sub/x')).toBe('x');
    await m.unmount();
  });

  // A program writes app.log, which is renamed here: its bytes go to the node the rename made, at
  // version 0. The connection drops, and another host may replace app.log.1 (at version 0 too):
  // the close sent the bytes at that version over the other host's file.
  it.each([
    { replaced: false, closed: 'closed', left: 'this host, written before the rename' },
    { replaced: true, closed: 'close: Input/output error', left: 'the other host\n' },
  ])(
    'writes a file renamed here while open once the connection is back: replaced meanwhile, $replaced',
    async ({ replaced, closed, left }) => {
      const { proxy, base, a: m } = await throughProxy();
      await client.create(`${base}/app.log`, Buffer.from('old\n'));
      expect(await m.ok('cat app.log')).toBe('old\n');
      const { program, told } = await programSaying(m, WRITE_THEN_CLOSE, m.dir, 'written', 'flush');
      await m.ok('mv app.log app.log.1');
      await cutOff(proxy, m);
      if (replaced) {
        await client.remove(`${base}/app.log.1`, -1);
        await client.create(`${base}/app.log.1`, Buffer.from('the other host\n'));
      }
      await told();
      proxy.accept();
      const r = await program;
      expect(r.stdout).toBe(`written\n${closed}`);
      expect((await client.getData(`${base}/app.log.1`)).data.toString()).toBe(left);
      await m.unmount();
    },
  );

  it("does not write over another host's file that replaced the name after the reply to an append was lost", async () => {
    // A program holds log to append; another host replaces log, so the line goes to the file now
    // under the name. That write lands, its reply is lost with the connection, and another host
    // replaces log again (at data version 0, as the one written was): sent again at that version,
    // the line and the replaced file's content went over the new file.
    const { proxy, base, a: m } = await throughProxy();
    await client.create(`${base}/log`, Buffer.from('rotated away\n'));
    expect(await m.ok('cat log')).toBe('rotated away\n');
    const { program, told } = await programSaying(m, APPEND_WHEN_TOLD, m.dir, 'open', 'flush');
    await client.remove(`${base}/log`, -1);
    await client.create(`${base}/log`, Buffer.from('second\n'));
    await sees(m, 'cat log', 'second\n');
    proxy.holdRequests(OP_SET_DATA);
    const telling = told();
    await loseReply(
      proxy,
      m,
      async () => (await client.getData(`${base}/log`)).data.toString() === 'second\nmine\n',
      'the append landed',
    );
    await client.remove(`${base}/log`, -1);
    await client.create(`${base}/log`, Buffer.from('third\n'));
    proxy.releaseReplies();
    proxy.accept();
    await telling;
    const r = await program;
    expect({ exitCode: r.exitCode, stdout: r.stdout }).toEqual({ exitCode: 0, stdout: 'open\nclosed' });
    expect((await client.getData(`${base}/log`)).data.toString()).toBe('third\nmine\n');
    await m.unmount();
  });

  it('waits for a slow reply while connected, whatever --reconnect-timeout says (0 included)', async () => {
    const { proxy, base, a: m } = await throughProxy(['--reconnect-timeout', '0']);
    await client.create(`${base}/slow`, Buffer.from('slow'));
    proxy.holdReplies();
    // From outside the mount: a program started in it would be stat'ed there first, by this process.
    const reading = execa('cat', [join(m.dir, 'slow')], { reject: false, timeout: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    proxy.releaseReplies();
    const r = await reading;
    expect({ stdout: r.stdout, stderr: r.stderr }).toEqual({ stdout: 'slow', stderr: '' });
    await m.unmount();
  });

  it('makes a file with O_EXCL whose reply was lost, though the connection drops again while it checks', async () => {
    // The create lands and its reply is lost; sent again, it fails (the name exists), and the
    // mount reads its directory's document to see whether the first send made it. That read lost
    // to a second drop was taken for "not made": EEXIST, for a file this host made.
    const { proxy, base, a: m } = await throughProxy();
    await m.ok('mkdir d');
    proxy.holdRequests(OP_MULTI);
    const making = execa(
      'python3',
      ['-c', "import os; os.open('d/f', os.O_WRONLY | os.O_CREAT | os.O_EXCL)"],
      {
        cwd: m.dir,
        reject: false,
        timeout: 60_000,
      },
    );
    await proxy.holding();
    proxy.holdReplies();
    proxy.releaseRequests();
    await eventually(async () => (await client.exists(`${base}/d/f`)) !== null, 'the create landed', 5000);
    proxy.holdRequests(OP_GET_DATA, '/d/__zkfs__');
    await cutOff(proxy, m);
    proxy.releaseReplies();
    proxy.accept();
    await proxy.holding(); // the check's read of the document, after the create sent again failed
    await cutOff(proxy, m);
    proxy.releaseRequests();
    proxy.accept();
    const r = await making;
    expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect(await m.ok('ls d')).toBe('f\n');
    await m.unmount();
  });

  it("does not empty a directory's data again over another host's write after the reply to rm _zoo_data_ was lost", async () => {
    // The emptying lands, its reply is lost with the connection, and another host writes the
    // directory's data before the connection is back: sent again with no version, the emptying
    // wiped that write, whose close had succeeded.
    const { proxy, base, a: m } = await throughProxy();
    await client.create(`${base}/d`, Buffer.from('old'));
    await client.create(`${base}/d/child`, Buffer.alloc(0));
    expect(await m.ok('cat d/_zoo_data_')).toBe('old');
    proxy.holdRequests(OP_SET_DATA);
    const removal = m.sh('rm d/_zoo_data_');
    await loseReply(
      proxy,
      m,
      async () => (await client.getData(`${base}/d`)).data.length === 0,
      'the emptying landed',
    );
    await client.setData(`${base}/d`, Buffer.from('new'), -1);
    proxy.releaseReplies();
    proxy.accept();
    const r = await removal;
    expect({ exitCode: r.exitCode, stderr: r.stderr }).toEqual({ exitCode: 0, stderr: '' });
    expect((await client.getData(`${base}/d`)).data.toString()).toBe('new');
    await sees(m, 'cat d/_zoo_data_', 'new');
    await m.unmount();
  });

  it.each([
    { kind: 'read-write', args: [] },
    { kind: 'read-only', args: ['--read-only'] },
  ])(
    "shows another host's change within the time limit once the watch cannot be set ($kind)",
    async ({ args }) => {
      // With no watch, nothing tells the kernel of changes: it kept what it was told for
      // --attr-timeout (10 s), and a read-only mount's kernel, which opens and reads files without
      // asking the daemon, showed another host's write 10 s late, not within the second the log says.
      const { proxy, base, a: m } = await throughProxy(args);
      await client.create(`${base}/f`, Buffer.from('one'));
      await withoutWatch(proxy, m);
      expect(m.log()).toContain('changes by others show within 1000 ms');
      expect((await mountStatus(m.dir)).kernel.attrTimeoutMs).toBe(1000);
      expect(await m.ok('cat f; stat -c %s f')).toBe('one3\n');
      await client.setData(`${base}/f`, Buffer.from('three'), -1);
      const started = Date.now();
      await sees(m, 'cat f', 'three');
      // The second memory keeps values, and as long for the kernel, with room for a loaded machine.
      expect(Date.now() - started).toBeLessThan(3000);
      await m.unmount();
    },
  );

  it('sets its watch again once the server takes it, after falling back to time-limited caching', async () => {
    // Three connections dropped at addWatch made the mount give the watch up for good: changes by
    // others showed only after the time limit (a second) for the rest of its life, even once the
    // servers took the watch again (a flaky network, an ensemble upgraded from before 3.6).
    const { proxy, base, a: m } = await throughProxy();
    await client.create(`${base}/f`, Buffer.from('one'));
    await withoutWatch(proxy, m);
    expect(m.log()).toContain('the watch is tried again in 10 s');
    proxy.cutOn(undefined);
    await eventually(async () => (await mountStatus(m.dir)).cache.mode === 'watch', 'the watch back', 20_000);
    expect(m.log()).toContain('the persistent watch is in place again');
    expect(await m.ok('cat f')).toBe('one');
    await client.setData(`${base}/f`, Buffer.from('two'), -1);
    await sees(m, 'cat f', 'two');
    // Exact again: past the time limit, memory still answers, with no request to ZooKeeper, a
    // lookup and read of f once the kernel has let its node go.
    await sleep(1500);
    writeFileSync('/proc/sys/vm/drop_caches', '3');
    const before = (await mountStatus(m.dir)).session.requests;
    expect(await m.ok('cat f')).toBe('two');
    expect((await mountStatus(m.dir)).session.requests).toBe(before);
    await m.unmount();
  });

  it('an open of a file rm is removing while another host replaces it reads the old file, as on a local disk', async () => {
    // Another host's `mv new f` lands just before this host's `rm f`, whose transaction then
    // fails on the directory's document and is made again. Its notices come while that
    // transaction is out, so they count as the removal's own. An open of f meanwhile, by the node
    // the kernel holds (11 bytes), read the new file through it: a program sizing its read by
    // fstat got its first 11 bytes (found by `npm run stress`).
    const { proxy, base, a: m } = await throughProxy();
    await m.ok('printf "old content" > f');
    expect(await m.ok('cat f')).toBe('old content');
    proxy.holdRequests(OP_MULTI);
    const rm = m.sh('rm f');
    await proxy.holding();
    const doc = await client.getData(`${base}/__zkfs__`);
    await client.multi([
      { op: 'delete', path: `${base}/f`, version: -1 },
      { op: 'create', path: `${base}/f`, data: Buffer.from('new and longer content'), acl: [] },
      { op: 'setData', path: `${base}/__zkfs__`, data: doc.data, version: doc.stat.version },
    ]);
    proxy.holdReplies();
    proxy.releaseRequests();
    await sleep(300); // the notices heard, the removal's reply held
    const cat = m.sh('cat f');
    await sleep(300);
    proxy.releaseReplies();
    // As on a local disk, where the open finds the file rm is unlinking: the old file, whole.
    expect((await cat).stdout).toBe('old content');
    expect((await rm).exitCode).toBe(0);
    expect(await client.exists(`${base}/f`)).toBeNull();
    await m.unmount();
  });

  it("reads another host's file whole when it replaced a name right after this host's rename to it", async () => {
    // This host's `mv src f`, then another host's `mv tmp f`, whose notices come in one read with
    // the first rename's reply, before that rename gives the kernel's node (src's, 11 bytes) the
    // name f: f must be looked up again, or reads of it get the other file cut to 11 bytes.
    const { proxy, base, a } = await throughProxy();
    const b = await mountZkfs(zk.connectString, base);
    // The same times for both: f's entry in the directory's document is then the same after
    // either rename, and its diff tells the kernel nothing.
    await a.ok('printf "old content" > src && touch -d @1000000000 src && cat src');
    await b.ok('printf "new and longer content" > tmp && touch -d @1000000000 tmp');
    await settled(client, base, ['src', 'tmp']);
    // The rename's reads go through; its transaction lands, and its reply waits.
    proxy.holdRequests(OP_MULTI);
    const mv = a.sh('mv src f');
    await proxy.holding();
    proxy.holdReplies();
    proxy.releaseRequests();
    await eventually(async () => (await client.exists(`${base}/f`)) !== null, 'the rename landed', 5000);
    await b.ok('mv tmp f');
    await sleep(300); // its notices wait behind the held reply
    proxy.releaseReplies();
    expect((await mv).exitCode).toBe(0);
    expect(await a.ok('cat f; echo; stat -c %s f')).toBe('new and longer content\n22\n');
    await b.unmount();
    await a.unmount();
  });

  it('reads the file a rename here moved when another host replaced its source as the rename was sent', async () => {
    // This host's `mv src f` loses the race for the directory's document to another host's
    // `mv tmp src`, and is made again, moving the other host's file. The other host's notices
    // came while the first attempt was out, and counted as its own: the kernel's node of the old
    // src, its pages cached, was then called f, and `cat f` read the old file, unless an
    // invalidation came first (here two others hold the notifier, waiting for the directory
    // the rename holds).
    const { proxy, base, a } = await throughProxy();
    const b = await mountZkfs(zk.connectString, base);
    // Of one size and one time: only an invalidation drops the kernel's pages of the old file.
    await a.ok(
      'printf "old content" > src && touch -d @1000000000 src && printf 1 > k1 && printf 2 > k2 && cat src k1 k2',
    );
    await b.ok('printf "new content" > tmp && touch -d @1000000000 tmp');
    await settled(client, base, ['src', 'k1', 'k2', 'tmp']);
    proxy.holdRequests(OP_MULTI);
    const mv = a.sh('mv src f');
    await proxy.holding();
    await b.ok('rm k1 k2 && mv tmp src');
    await sleep(300); // the notices heard while the rename is out
    proxy.releaseRequests();
    expect((await mv).exitCode).toBe(0);
    expect((await client.getData(`${base}/f`)).data.toString()).toBe('new content');
    expect(await a.ok('cat f; echo; ls')).toBe('new content\nf\n');
    await b.unmount();
    await a.unmount();
  });

  it.each([
    { kind: 'read-write', args: [], now: 'new and longer content' },
    { kind: 'read-only', args: ['--read-only'], now: 'new and longer content' },
    // A shorter file: the kernel cuts its size to the short read itself, and must not be kept from it.
    { kind: 'read-write, shorter', args: [], now: 'new' },
    { kind: 'read-only, shorter', args: ['--read-only'], now: 'new' },
  ])(
    'a file another client rewrote while the session was gone reads whole while the kernel is told to drop all it held ($kind)',
    async ({ args, now }) => {
      // Once the watch is back, the kernel is told to drop every name it holds, a few at a time:
      // here 3,000 held before f. A read of f meanwhile got its new content from ZooKeeper, and
      // the kernel, still holding f at 11 bytes with no pages, cut the read there: cat printed
      // "new and lon" (as `npm run stress` once found a file cut short). A read-write mount is
      // asked to open f, a read-only one (whose opens the kernel makes itself) only to read it.
      const base = `/orphans/t${serial++}`;
      await client.create(base, Buffer.alloc(0));
      for (let i = 0; i < 3000; i += 500) {
        const batch = Array.from({ length: 500 }, (_, j) => ({
          op: 'create' as const,
          path: `${base}/f${i + j}`,
          data: Buffer.from('x'),
          acl: [],
        }));
        await client.multi(batch);
      }
      const m = await mountZkfs(zk.connectString, base, { args: ['--session-timeout', '2', ...args] });
      expect(await m.ok('ls -l | wc -l')).toBe('3001\n');
      // Made after the listing, so that the kernel holds it last.
      await client.create(`${base}/f`, Buffer.from('old content'));
      // Its attributes read after its data: a read leaves the kernel's atime stale, which the next
      // fstat() would read afresh with the size.
      expect(await m.ok('cat f; echo; stat f > /dev/null; stat -c %s f')).toBe('old content\n11\n');
      const granted = (await mountStatus(m.dir)).session.timeoutMs;
      const pid = daemonPid(m.dir);
      process.kill(pid, 'SIGSTOP');
      try {
        await sleep(granted + 2500); // past the session's timeout, within the kernel's 10 s
        await client.setData(`${base}/f`, Buffer.from(now), -1);
        dropPages(); // f's old content: reads ask the daemon
      } finally {
        process.kill(pid, 'SIGCONT');
      }
      const reads = (await m.ok('for i in $(seq 300); do cat f; echo; done')).split('\n').slice(0, -1);
      const torn = reads.filter((r) => r !== 'old content' && r !== now);
      expect(torn).toEqual([]);
      expect(reads.at(-1)).toBe(now);
      await m.unmount();
    },
    60_000,
  );
});
