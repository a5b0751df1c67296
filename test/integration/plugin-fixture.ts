/**
 * Runs the project's own plugin server (the built `serve-plugin` binary) as
 * an operator would, with every path under the run's scratch root except the
 * socket when Docker must find it: dockerd only looks in /run/docker/plugins,
 * so those sockets get a unique name per run and are removed at cleanup.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { onCleanup } from '../fixtures/cleanup.js';
import type { Dockerd } from '../fixtures/dockerd.js';
import { REPO_ROOT, scratchDir } from '../fixtures/environment.js';

export const DOCKER_PLUGIN_DIR = '/run/docker/plugins';

export interface PluginReply {
  status: number;
  json: Record<string, unknown>;
}

export interface PluginProcess {
  name: string;
  socket: string;
  stateDir: string;
  mountRoot: string;
  logFile: string;
  pid(): number | undefined;
  /** POSTs like the engine: Accept header, no Content-Type, body ending in a newline. */
  post(path: string, body?: unknown): Promise<PluginReply>;
  /** Sends a signal and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again with the same state, socket and options. */
  start(): Promise<void>;
  logs(): string;
}

export interface PluginOptions {
  tool: 'zkfsctl' | 'simplectl';
  driver?: 'simple' | 'zookeeper';
  /** Bind in /run/docker/plugins so a dockerd finds it (default: a socket in the scratch dir). */
  forDocker?: boolean;
  include?: string[];
  /** More serve-plugin options. */
  args?: string[];
  env?: Record<string, string>;
}

/** A driver name no other run or real plugin uses. */
export function uniquePluginName(prefix: string): string {
  return `${prefix}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function startPluginProcess(options: PluginOptions): Promise<PluginProcess> {
  const dir = scratchDir('plugin');
  const name = uniquePluginName(options.driver === 'simple' ? 'volkit-simple' : 'volkit-zk');
  const socket = options.forDocker ? join(DOCKER_PLUGIN_DIR, `${name}.sock`) : join(dir, `${name}.sock`);
  const stateDir = join(dir, 'state');
  const mountRoot = join(dir, 'volumes');
  const logFile = join(dir, 'plugin.log');
  const agent = new Agent({ keepAlive: false });
  let child: ChildProcess | undefined;

  const args = ['--log-level', 'debug', 'serve-plugin'];
  if (options.tool === 'simplectl') args.push('--driver', options.driver ?? 'simple');
  args.push('--name', name, '--socket', socket, '--state-dir', stateDir, '--mount-root', mountRoot);
  if (options.include?.length) args.push('--include', ...options.include);
  args.push(...(options.args ?? []));

  const post: PluginProcess['post'] = (path, body = {}) =>
    new Promise((resolve, reject) => {
      const text = typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
      const req = request(
        {
          socketPath: socket,
          path,
          method: 'POST',
          agent,
          headers: {
            Accept: 'application/vnd.docker.plugins.v1.2+json',
            'Content-Length': Buffer.byteLength(text),
          },
        },
        (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (d) => {
            data += d;
          });
          res.on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, json: JSON.parse(data) });
            } catch (error) {
              reject(new Error(`reply to ${path} is not JSON: ${data} (${String(error)})`));
            }
          });
        },
      );
      req.setTimeout(60_000, () => req.destroy(new Error(`no reply to ${path} within 60 s`)));
      req.on('error', reject);
      req.end(text);
    });

  const kill: PluginProcess['kill'] = async (signal = 'SIGTERM') => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill(signal);
    });
  };

  const start = async () => {
    if (child) throw new Error('plugin server already running');
    const log = openSync(logFile, 'a');
    child = spawn(join(REPO_ROOT, 'bin', options.tool), args, {
      stdio: ['ignore', log, log],
      env: { ...process.env, NO_COLOR: '1', ...options.env },
    });
    const c = child;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`plugin server exited early: ${readFileSync(logFile, 'utf8').slice(-3000)}`);
      }
      if (existsSync(socket)) {
        const ok = await post('/Plugin.Activate', '').then(
          (r) => r.status === 200,
          () => false,
        );
        if (ok) return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`plugin server not answering on ${socket} within 30 s; see ${logFile}`);
  };

  onCleanup(`plugin server ${name}`, async () => {
    await kill('SIGTERM');
    // A SIGKILLed server cannot remove its socket; this one may live outside the scratch root.
    rmSync(socket, { force: true });
  });
  await start();
  return {
    name,
    socket,
    stateDir,
    mountRoot,
    logFile,
    pid: () => child?.pid,
    post,
    kill,
    start,
    logs: () => readFileSync(logFile, 'utf8'),
  };
}

/** True when something is mounted exactly at `dir` (read from the mount table, never the path). */
export function mountedAt(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}

export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Outstanding mount references of a volume, as the plugin reports them in Get. */
export async function refsOf(plugin: PluginProcess, name: string): Promise<number> {
  const r = await plugin.post('/VolumeDriver.Get', { Name: name });
  return (r.json.Volume as { Status: { mounts: number } }).Status.mounts;
}

/** Kills the plugin server with SIGKILL (a crash) and starts it again on the same state and socket. */
export async function crashAndRestart(plugin: PluginProcess): Promise<void> {
  await plugin.kill('SIGKILL');
  await plugin.start();
}

/** Waits until nothing is mounted at a volume's mount point any more, then returns its outstanding references. */
export async function refsOnceReleased(
  plugin: PluginProcess,
  name: string,
  mountpoint: string,
): Promise<number> {
  await waitUntil('the volume to be released', () => !mountedAt(mountpoint));
  return refsOf(plugin, name);
}

/** Reads one znode's data straight from ZooKeeper. */
export function readZnode(connectString: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = zookeeper.createClient(connectString, { sessionTimeout: 5000 });
    const timer = setTimeout(() => {
      client.close();
      reject(new Error('no ZooKeeper session within 10 s'));
    }, 10_000);
    client.once('connected', () => {
      client.getData(path, (error, data) => {
        clearTimeout(timer);
        client.close();
        if (error) reject(error);
        else resolve(data ? data.toString('utf8') : '');
      });
    });
    client.connect();
  });
}

/** `docker run` of `sh -c SCRIPT` in IMAGE with VOLUME at /data, no network: removed after, or detached as NAME. */
export function runArgs(image: string, volume: string, script: string, name?: string): string[] {
  const lifetime = name ? ['-d', '--name', name] : ['--rm'];
  return ['run', ...lifetime, '--network', 'none', '-v', `${volume}:/data`, image, 'sh', '-c', script];
}

/**
 * For a volume a running container holds, on a plugin started with
 * `--release-unheld 2`: checks that it stays held past that timeout, then
 * kills the engine (its containers die with it) and starts it again, and
 * waits until the plugin has released the volume. Resolves with the
 * plugin's log from the crash on.
 */
export async function releasedAfterEngineCrash(
  engine: Dockerd,
  plugin: PluginProcess,
  volume: string,
  mountpoint: string,
): Promise<string> {
  // Several checks a second apart, all past the timeout: the running container keeps it.
  await new Promise((r) => setTimeout(r, 5000));
  if ((await refsOf(plugin, volume)) !== 1 || !mountedAt(mountpoint)) {
    throw new Error(`volume ${volume} was released while a container held it`);
  }
  const beforeCrash = plugin.logs().length;
  await engine.crash();
  await engine.restart();
  await waitUntil('the plugin to release the volume', () => !mountedAt(mountpoint), 30_000);
  return plugin.logs().slice(beforeCrash);
}
