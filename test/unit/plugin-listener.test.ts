/**
 * Where the plugin listens: a socket path (mode 0660, stale sockets replaced,
 * live ones and non-sockets left alone) or the fd systemd passes. The systemd
 * case runs a real child process that receives a listening socket as fd 3,
 * exactly as systemd hands it over, with a request already waiting in its
 * backlog: that first request must be answered, not lost.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listenPlugin, systemdListenFd } from '../../src/adapters/plugin-listener.js';

const dir = mkdtempSync(join(tmpdir(), 'volkit-plugin-listener-'));
const repo = new URL('../..', import.meta.url).pathname;

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function listening(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(path, () => resolve(s));
  });
}

function post(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'POST', headers: { 'Content-Length': 0 } }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('systemd socket activation', () => {
  it.each([
    [{ LISTEN_PID: '42', LISTEN_FDS: '1' }, 42, 3],
    [{ LISTEN_PID: '42', LISTEN_FDS: '2' }, 42, 3],
    [{ LISTEN_PID: '43', LISTEN_FDS: '1' }, 42, undefined],
    [{ LISTEN_PID: '42', LISTEN_FDS: '0' }, 42, undefined],
    [{ LISTEN_PID: '42', LISTEN_FDS: 'x' }, 42, undefined],
    [{ LISTEN_FDS: '1' }, 42, undefined],
    [{}, 42, undefined],
  ])('env %j for pid %i gives fd %s', (env, pid, fd) => {
    expect(systemdListenFd(env, pid)).toBe(fd);
  });

  it('serves the first request on the fd it was handed, queued before it started', async () => {
    const bindPath = join(dir, 'bind.sock');
    const socketPath = join(dir, 'activated.sock');
    const parent = await listening(bindPath);
    // The parent must not accept: move the socket's name away, keep only the fd for the child.
    renameSync(bindPath, socketPath);
    const fd = (parent as unknown as { _handle: { fd: number } })._handle.fd;
    const child = join(dir, 'child.mts');
    writeFileSync(
      child,
      `
import { createLogger } from '${repo}src/adapters/logger.js';
import { Router } from '${repo}src/plugin/router.js';
import { startPluginServer } from '${repo}src/plugin/server.js';
const log = createLogger({ level: 'error' });
const driver = {
  secretOptions: [], secrets: () => [], capabilities: () => ({ scope: 'local' }),
  list: async () => [{ name: 'pid-' + process.pid }],
};
const server = await startPluginServer({ router: new Router({ driver, log }), log,
  listen: { socketPath: '${join(dir, 'never.sock')}' } });
process.stdout.write(JSON.stringify({ kind: server.kind, address: server.address,
  leftover: process.env.LISTEN_FDS ?? null }) + '\\n');
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
`,
    );
    const proc = spawn(
      'sh',
      ['-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" --import tsx "$1"', process.execPath, child],
      { stdio: ['ignore', 'pipe', 'pipe', fd], cwd: repo },
    );
    try {
      // Sent before the child has even loaded: it waits in the listen backlog.
      const first = post(socketPath, '/Plugin.Activate');
      let out = '';
      proc.stdout?.on('data', (d) => {
        out += d;
      });
      await new Promise<void>((resolve) => parent.close(() => resolve()));
      expect(await first).toEqual({ status: 200, body: '{"Implements":["VolumeDriver"]}\n' });
      const list = await post(socketPath, '/VolumeDriver.List');
      expect(JSON.parse(list.body)).toEqual({ Volumes: [{ Name: `pid-${proc.pid}` }], Err: '' });
      await new Promise((r) => setTimeout(r, 50));
      expect(JSON.parse(out)).toEqual({ kind: 'systemd', address: 'fd 3', leftover: null });
    } finally {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
  });
});

describe('socket path', () => {
  it('binds with mode 0660 and removes its socket on close', async () => {
    const path = join(dir, 'new', 'sub', 'plugin.sock');
    const server = createServer();
    const bound = await listenPlugin(server, { socketPath: path, env: {} });
    expect(bound).toMatchObject({ kind: 'path', address: path });
    expect(statSync(path).mode & 0o777).toBe(0o660);
    await bound.close();
    expect(() => statSync(path)).toThrow();
  });

  it('ignores LISTEN_FDS meant for another process', async () => {
    const path = join(dir, 'other-pid.sock');
    const env = { LISTEN_PID: String(process.pid + 1), LISTEN_FDS: '1' };
    const bound = await listenPlugin(createServer(), { socketPath: path, env });
    expect(bound.kind).toBe('path');
    expect(env.LISTEN_FDS).toBe('1');
    await bound.close();
  });

  it('replaces a stale socket left by a dead server', async () => {
    const path = join(dir, 'stale.sock');
    const old = await listening(path);
    renameSync(path, `${path}.keep`);
    await new Promise<void>((r) => old.close(() => r()));
    renameSync(`${path}.keep`, path); // a socket file nobody listens on any more
    const bound = await listenPlugin(createServer(), { socketPath: path, env: {} });
    expect(bound.kind).toBe('path');
    await bound.close();
  });

  it('refuses to take over a socket another server is serving', async () => {
    const path = join(dir, 'live.sock');
    const live = await listening(path);
    await expect(listenPlugin(createServer(), { socketPath: path, env: {} })).rejects.toThrow(
      `another process is already serving on ${path}`,
    );
    await new Promise<void>((r) => live.close(() => r()));
  });

  it('never replaces a file that is not a socket', async () => {
    const path = join(dir, 'regular.sock');
    writeFileSync(path, 'precious');
    await expect(listenPlugin(createServer(), { socketPath: path, env: {} })).rejects.toThrow(
      'exists and is not a socket',
    );
    expect(statSync(path).size).toBe(8);
  });
});
