/**
 * The plugin server as a process: it stops cleanly on SIGTERM (exit 0, socket
 * removed, state kept), starts again with its volumes, replaces the stale
 * socket a killed server left behind, and refuses to start a second server on
 * a live socket. A stop asked for during start-up, even before the socket
 * listens, is an orderly stop too.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/adapters/logger.js';
import { defaultContext } from '../../src/commands/context.js';
import { servePlugin } from '../../src/plugin/serve.js';
import { VolumeStore } from '../../src/plugin/volume-store.js';
import { zkBackend } from '../../src/plugin/zk-driver.js';
import { REPO_ROOT, scratchDir } from '../fixtures/environment.js';
import { startPluginProcess } from './plugin-fixture.js';

describe('plugin server process', () => {
  it('stops on SIGTERM keeping its state, and starts again with its volumes', async () => {
    const plugin = await startPluginProcess({ tool: 'zkfsctl' });
    expect(statSync(plugin.socket).mode & 0o777).toBe(0o660);
    const created = await plugin.post('/VolumeDriver.Create', {
      Name: 'kept',
      Opts: { hosts: '127.0.0.1:2181' },
    });
    expect(created).toEqual({ status: 200, json: { Err: '' } });

    await plugin.kill('SIGTERM');
    expect(existsSync(plugin.socket)).toBe(false);
    expect(plugin.logs()).toContain('stopping on SIGTERM');
    expect(statSync(join(plugin.stateDir, 'plugin-state.json')).mode & 0o777).toBe(0o600);

    await plugin.start();
    expect((await plugin.post('/VolumeDriver.List', {})).json).toEqual({
      Volumes: [{ Name: 'kept' }],
      Err: '',
    });
  });

  it('replaces the socket of a killed server, and will not start beside a live one', async () => {
    const plugin = await startPluginProcess({ tool: 'zkfsctl' });
    await plugin.kill('SIGKILL');
    expect(existsSync(plugin.socket)).toBe(true); // a killed server cannot clean up
    await plugin.start();
    expect((await plugin.post('/Plugin.Activate', '')).status).toBe(200);

    const second = spawnSync(
      join(REPO_ROOT, 'bin', 'zkfsctl'),
      [
        'serve-plugin',
        '--name',
        plugin.name,
        '--socket',
        plugin.socket,
        '--state-dir',
        join(plugin.stateDir, 'other'),
      ],
      { encoding: 'utf8', timeout: 30_000, env: { ...process.env, NO_COLOR: '1' } },
    );
    expect(second.status).toBe(1);
    expect(second.stderr).toContain(`another process is already serving on ${plugin.socket}`);
    expect((await plugin.post('/Plugin.Activate', '')).status).toBe(200);
  });

  it('stops in order on a SIGTERM that comes as soon as its socket exists', async () => {
    // The socket answers before start-up has finished; a SIGTERM then (systemd's stop, or a
    // supervisor that saw the socket) killed the server outright, its volumes left unreconciled.
    for (let round = 0; round < 5; round++) {
      const dir = scratchDir('early-term');
      const socket = join(dir, 'early.sock');
      const child = spawn(
        join(REPO_ROOT, 'bin', 'zkfsctl'),
        ['serve-plugin', '--name', 'early', '--socket', socket, '--state-dir', join(dir, 'state')],
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
      );
      let output = '';
      child.stdout.on('data', (d) => {
        output += d;
      });
      child.stderr.on('data', (d) => {
        output += d;
      });
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
        child.once('exit', (code, signal) => resolve({ code, signal })),
      );
      // One SIGTERM only: the chmod after bind reports the name again, and a second one ends the stop.
      const watcher = watch(dir, (_event, name) => {
        if (name !== 'early.sock') return;
        watcher.close();
        child.kill('SIGTERM');
      });
      const { code, signal } = await exited;
      expect({ round, code, signal }).toEqual({ round, code: 0, signal: null });
      expect(output).toContain('early: stopped on SIGTERM');
      expect(existsSync(socket)).toBe(false);
    }
  });

  it('stops in order on a SIGTERM that comes while a child process it started still runs', async () => {
    // execa's clean-up of running children re-raises a signal that finds no listener but its own;
    // the server's listener removed itself on the signal, so a stop during a `fusermount` at
    // start-up killed the server on the spot. A real server and a real execa child, in a process
    // of their own.
    const dir = scratchDir('child-term');
    const script = join(dir, 'serve.mjs');
    writeFileSync(
      script,
      [
        `import { execa } from ${JSON.stringify(join(REPO_ROOT, 'node_modules', 'execa', 'index.js'))};`,
        `import { defaultContext } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'commands', 'context.js'))};`,
        `import { servePlugin } from ${JSON.stringify(join(REPO_ROOT, 'dist', 'plugin', 'serve.js'))};`,
        'let child;',
        'const served = servePlugin({',
        `  driver: 'zookeeper', name: 'kid', socket: ${JSON.stringify(join(dir, 'kid.sock'))},`,
        `  stateDir: ${JSON.stringify(join(dir, 'state'))}, mountRoot: ${JSON.stringify(join(dir, 'volumes'))},`,
        "  onListening: () => { child = execa('sleep', ['30']); child.catch(() => {}); console.log('child running'); },",
        '}, defaultContext());',
        'const result = await served;',
        "console.log('stopped on ' + result.stoppedBy + ', child ' + (child.exitCode === null ? 'running' : 'gone'));",
        'child.kill();',
      ].join('\n'),
    );
    const server = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const running = new Promise<void>((resolve) => {
      const take = (d: Buffer) => {
        output += d;
        if (output.includes('child running')) resolve();
      };
      server.stdout.on('data', take);
      server.stderr.on('data', take);
    });
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      server.once('exit', (code, signal) => resolve({ code, signal })),
    );
    await running;
    server.kill('SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(output).toContain('stopped on SIGTERM, child running');
  });

  it('asked to stop before it listens, leaves every volume for the next start', async () => {
    const dir = scratchDir('stop-at-start');
    const paths = { stateDir: join(dir, 'state'), mountRoot: join(dir, 'volumes') };
    const stateFile = join(paths.stateDir, 'plugin-state.json');
    const store = await VolumeStore.open({
      backend: zkBackend({ logDir: join(dir, 'logs') }),
      stateFile,
      mountRoot: paths.mountRoot,
      ctx: defaultContext(),
    });
    for (const name of ['a', 'b']) await store.create(name, { hosts: '127.0.0.1:2181' });
    await store.flush();

    const lines: string[] = [];
    const log = createLogger({ level: 'info', write: (l) => lines.push(l) });
    const result = await servePlugin(
      {
        driver: 'zookeeper',
        name: 'stopped',
        socket: join(dir, 'stopped.sock'),
        ...paths,
        signal: AbortSignal.abort(),
      },
      defaultContext({ log }),
    );
    expect(result.stoppedBy).toBe('abort');
    expect(result.reconciled).toEqual([
      { name: 'a', action: 'none', deferred: true },
      { name: 'b', action: 'none', deferred: true },
    ]);
    expect(lines.join('')).toContain(
      'left 2 volume(s) for the next start to reconcile with the mount table: a, b',
    );
    expect(existsSync(join(dir, 'stopped.sock'))).toBe(false);
    expect(process.listenerCount('SIGTERM')).toBe(0);
  });

  it('refuses a bad plugin name and a driver option meant for the other driver', async () => {
    const bad = spawnSync(join(REPO_ROOT, 'bin', 'simplectl'), ['serve-plugin', '--name', '../evil'], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('invalid plugin name "../evil"');
    const include = spawnSync(
      join(REPO_ROOT, 'bin', 'simplectl'),
      ['serve-plugin', '--driver', 'zookeeper', '--include', 'loop1', '--socket', '/nonexistent/x.sock'],
      { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } },
    );
    expect(include.status).toBe(2);
    expect(include.stderr).toContain('--include applies to the simple driver only');
  });
});
