/**
 * The filesystem operations against a real ZooKeeper, without FUSE: fast
 * checks of every rule, including what raw ZooKeeper ends up holding.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/adapters/logger.js';
import { ZkVfs } from '../../src/adapters/zkfs/vfs.js';
import { ZkClient } from '../../src/adapters/zookeeper.js';
import type { ZkfsMode } from '../../src/core/zkfs/modes.js';
import { startZk, type ZkServer } from '../fixtures/zk-server.js';

let zk: ZkServer;
let client: ZkClient;
const logged: string[] = [];
const log = createLogger({ level: 'warn', write: (l) => logged.push(l) });

beforeAll(async () => {
  zk = await startZk();
  client = await ZkClient.connect({ connectString: zk.connectString });
});
afterAll(async () => {
  await client?.close();
});

let counter = 0;
async function mount(
  mode: ZkfsMode,
  extra: { maxFileSize?: number; readOnly?: boolean; root?: string } = {},
) {
  const root = extra.root ?? `/t${++counter}`;
  if (!(await client.exists(root))) await client.create(root, Buffer.alloc(0));
  return new ZkVfs({
    client,
    root,
    mode,
    readOnly: extra.readOnly ?? false,
    maxFileSize: extra.maxFileSize ?? 1048575,
    defaults: { uid: 0, gid: 0, umask: 0o022 },
    log,
    cacheTtlMs: 0,
  });
}

async function errno(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

async function writeFile(vfs: ZkVfs, path: string, data: Buffer | string): Promise<void> {
  const { fh } = await vfs.create(path, 0o644);
  vfs.write(fh, Buffer.from(data), 0);
  await vfs.flush(fh);
  await vfs.release(fh);
}

async function readFile(vfs: ZkVfs, path: string): Promise<Buffer> {
  const fh = await vfs.open(path, 0);
  const data = await vfs.read(fh, 1 << 21, 0);
  await vfs.release(fh);
  return data;
}

describe('hybrid mode', () => {
  it('stores files byte for byte and keeps empty files files (type stored in ZooKeeper)', async () => {
    const vfs = await mount('hybrid');
    const bytes = Buffer.from([0, 1, 2, 0, 255, 10, 13]);
    await writeFile(vfs, '/bin', bytes);
    expect(await readFile(vfs, '/bin')).toEqual(bytes);
    expect((await client.getData(`${vfs.ctx.root}/bin`)).data).toEqual(bytes);
    await writeFile(vfs, '/empty', '');
    expect((await vfs.getattr('/empty')).mode & 0o170000).toBe(0o100000);
    // A second mount of the same tree agrees.
    const other = await mount('hybrid', { root: vfs.ctx.root });
    expect((await other.getattr('/empty')).mode & 0o170000).toBe(0o100000);
    expect((await other.readdir('/')).sort()).toEqual(['.', '..', 'bin', 'empty']);
  });

  it('reports size and times from the stat', async () => {
    const vfs = await mount('hybrid');
    await writeFile(vfs, '/f', 'hello');
    const st = await vfs.getattr('/f');
    const zst = await client.exists(`${vfs.ctx.root}/f`);
    expect(st.size).toBe(5);
    expect(st.mtimeMs).toBe(zst!.mtimeMs);
  });

  it('refuses a write that would overwrite a newer version, and says why', async () => {
    const vfs = await mount('hybrid');
    await writeFile(vfs, '/c', 'one');
    const fh = await vfs.open('/c', 2);
    await client.setData(`${vfs.ctx.root}/c`, Buffer.from('other host'), -1);
    vfs.write(fh, Buffer.from('mine'), 0);
    expect(await errno(vfs.flush(fh))).toBe('EIO');
    await vfs.release(fh);
    expect((await client.getData(`${vfs.ctx.root}/c`)).data.toString()).toBe('other host');
    expect(logged.join('\n')).toMatch(/another client changed it/);
  });

  it('enforces the size limit with EFBIG and keeps the old content', async () => {
    const vfs = await mount('hybrid', { maxFileSize: 10 });
    await writeFile(vfs, '/s', '12345');
    const fh = await vfs.open('/s', 2);
    expect(await errno(Promise.resolve().then(() => vfs.write(fh, Buffer.from('x'.repeat(11)), 0)))).toBe(
      'EFBIG',
    );
    expect(await errno(vfs.truncate('/s', 11))).toBe('EFBIG');
    await vfs.release(fh);
    expect((await readFile(vfs, '/s')).toString()).toBe('12345');
  });

  it('makes and removes directories, with ENOTEMPTY and ENOENT where due', async () => {
    const vfs = await mount('hybrid');
    await vfs.mkdir('/d', 0o755);
    await writeFile(vfs, '/d/f', 'x');
    expect(await errno(vfs.rmdir('/d'))).toBe('ENOTEMPTY');
    expect(await errno(vfs.mkdir('/d', 0o755))).toBe('EEXIST');
    await vfs.unlink('/d/f');
    await vfs.rmdir('/d');
    expect(await errno(vfs.getattr('/d'))).toBe('ENOENT');
    expect(await client.exists(`${vfs.ctx.root}/d`)).toBeNull();
  });

  it('renames a whole tree atomically, keeping data, modes and mtimes', async () => {
    const vfs = await mount('hybrid');
    await vfs.mkdir('/a', 0o750);
    await vfs.mkdir('/a/b', 0o755);
    await writeFile(vfs, '/a/b/f', 'deep');
    await vfs.chmod('/a/b/f', 0o600);
    await vfs.utimens('/a/b/f', 1_000_000, 2_000_000);
    await vfs.symlink('b/f', '/a/link');
    await vfs.rename('/a', '/z');
    expect(await errno(vfs.getattr('/a'))).toBe('ENOENT');
    expect((await readFile(vfs, '/z/b/f')).toString()).toBe('deep');
    const st = await vfs.getattr('/z/b/f');
    expect(st.mode & 0o7777).toBe(0o600);
    expect(st.mtimeMs).toBe(2_000_000);
    expect((await vfs.getattr('/z')).mode & 0o7777).toBe(0o750);
    expect(await vfs.readlink('/z/link')).toBe('b/f');
    expect((await client.getData(`${vfs.ctx.root}/__symlinks__`)).data.toString()).toBe('/z/link=b/f');
  });

  it('replaces an existing file on rename and refuses to replace a non-empty directory', async () => {
    const vfs = await mount('hybrid');
    await writeFile(vfs, '/new', 'v2');
    await writeFile(vfs, '/old', 'v1');
    await vfs.rename('/new', '/old');
    expect((await readFile(vfs, '/old')).toString()).toBe('v2');
    await vfs.mkdir('/d1', 0o755);
    await vfs.mkdir('/d2', 0o755);
    await writeFile(vfs, '/d2/x', 'x');
    expect(await errno(vfs.rename('/d1', '/d2'))).toBe('ENOTEMPTY');
    expect(await errno(vfs.rename('/old', '/d1'))).toBe('EISDIR');
    expect(await errno(vfs.rename('/d1', '/old'))).toBe('ENOTDIR');
    await vfs.unlink('/d2/x');
    await vfs.rename('/d1', '/d2');
    expect(await errno(vfs.getattr('/d1'))).toBe('ENOENT');
  });

  it('refuses too large a rename with EXDEV', async () => {
    const vfs = await mount('hybrid');
    await vfs.mkdir('/big', 0o755);
    for (let i = 0; i < 3; i++) await writeFile(vfs, `/big/f${i}`, Buffer.alloc(400_000, i));
    expect(await errno(vfs.rename('/big', '/big2'))).toBe('EXDEV');
    expect((await vfs.readdir('/big')).length).toBe(5);
  });

  it('shows _zoo_data_ for a directory with data and writes it back', async () => {
    const vfs = await mount('hybrid');
    await client.create(`${vfs.ctx.root}/p`, Buffer.from('parent data'));
    await client.create(`${vfs.ctx.root}/p/c`, Buffer.from('child'));
    expect((await vfs.readdir('/p')).sort()).toEqual(['.', '..', '_zoo_data_', 'c']);
    expect((await readFile(vfs, '/p/_zoo_data_')).toString()).toBe('parent data');
    const fh = await vfs.open('/p/_zoo_data_', 1);
    await vfs.ftruncate(fh, 0);
    vfs.write(fh, Buffer.from('new'), 0);
    await vfs.release(fh);
    expect((await client.getData(`${vfs.ctx.root}/p`)).data.toString()).toBe('new');
  });

  it('writes a cut alone at fsync, though a close leaves it for the release', async () => {
    // A close of a duplicate descriptor must not publish an emptied file (the shell's `>`), but a
    // program that cut its file and asked for it to be stored (fsync) is told it is.
    const vfs = await mount('hybrid');
    await writeFile(vfs, '/cut', 'old content');
    const fh = await vfs.open('/cut', 1); // O_WRONLY
    await vfs.ftruncate(fh, 3);
    await vfs.flush(fh);
    expect((await client.getData(`${vfs.ctx.root}/cut`)).data.toString()).toBe('old content');
    await vfs.fsync(fh);
    expect((await client.getData(`${vfs.ctx.root}/cut`)).data.toString()).toBe('old');
    await vfs.ftruncate(fh, 0);
    await vfs.fsync(fh);
    expect((await client.getData(`${vfs.ctx.root}/cut`)).data.toString()).toBe('');
    await vfs.release(fh);
    expect((await client.getData(`${vfs.ctx.root}/cut`)).data.toString()).toBe('');
    expect((await vfs.getattr('/cut')).mode & 0o170000).toBe(0o100000);
  });

  it('exposes the znode stat as read-only extended attributes', async () => {
    const vfs = await mount('hybrid');
    await writeFile(vfs, '/x', 'abc');
    const stat = await client.exists(`${vfs.ctx.root}/x`);
    expect((await vfs.getxattr('/x', 'user.zk.version'))?.toString()).toBe(String(stat!.version));
    expect((await vfs.getxattr('/x', 'user.zk.czxid'))?.toString()).toBe(`0x${stat!.czxid.toString(16)}`);
    expect(await vfs.listxattr('/x')).toEqual([]);
    expect(await vfs.getxattr('/x', 'user.other')).toBeUndefined();
    expect(await errno(vfs.setxattr('/x', 'user.zk.version'))).toBe('ENOTSUP');
  });

  it('refuses writes on a read-only mount with EROFS', async () => {
    const vfs = await mount('hybrid', { readOnly: true });
    expect(await errno(vfs.mkdir('/d', 0o755))).toBe('EROFS');
    expect(await errno(vfs.create('/f', 0o644))).toBe('EROFS');
  });

  it('keeps concurrent symlinks from two mounts (version-checked table)', async () => {
    const a = await mount('hybrid');
    const b = await mount('hybrid', { root: a.ctx.root });
    await Promise.all([...Array(6).keys()].map((i) => (i % 2 ? a : b).symlink(`t${i}`, `/l${i}`)));
    const names = (await a.readdir('/')).filter((n) => n.startsWith('l')).sort();
    expect(names).toEqual(['l0', 'l1', 'l2', 'l3', 'l4', 'l5']);
  });
});

describe('dir mode', () => {
  it('shows every znode as a directory with _zoo_data_ and refuses other files', async () => {
    const vfs = await mount('dir');
    await client.create(`${vfs.ctx.root}/leaf`, Buffer.from('data'));
    expect((await vfs.getattr('/leaf')).mode & 0o170000).toBe(0o040000);
    expect((await vfs.readdir('/leaf')).sort()).toEqual(['.', '..', '_zoo_data_']);
    expect((await readFile(vfs, '/leaf/_zoo_data_')).toString()).toBe('data');
    expect(await errno(vfs.create('/leaf/file', 0o644))).toBe('ENOTSUP');
    await writeFile(vfs, '/leaf/_zoo_data_', 'changed');
    expect((await client.getData(`${vfs.ctx.root}/leaf`)).data.toString()).toBe('changed');
  });
});

describe('file mode', () => {
  it('shows leaves as files and parents as directories, and keeps mkdir directories', async () => {
    const vfs = await mount('file');
    await client.create(`${vfs.ctx.root}/parent`, Buffer.from('pd'));
    await client.create(`${vfs.ctx.root}/parent/leaf`, Buffer.alloc(0));
    expect((await vfs.getattr('/parent')).mode & 0o170000).toBe(0o040000);
    expect((await vfs.getattr('/parent/leaf')).mode & 0o170000).toBe(0o100000);
    expect((await vfs.readdir('/parent')).sort()).toEqual(['.', '..', '_zoo_data_', 'leaf']);
    await vfs.mkdir('/made', 0o755);
    expect((await vfs.getattr('/made')).mode & 0o170000).toBe(0o040000);
  });
});
