/**
 * The plugin server as a process: it stops cleanly on SIGTERM (exit 0, socket
 * removed, state kept), starts again with its volumes, replaces the stale
 * socket a killed server left behind, and refuses to start a second server on
 * a live socket.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../fixtures/environment.js';
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
