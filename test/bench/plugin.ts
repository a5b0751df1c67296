/**
 * Get and List latency of the plugin server at a steady 200 requests/s, over
 * its unix socket with keep-alive connections, as the engine talks to it. The
 * baseline is a bare HTTP server on a unix socket answering a constant,
 * measured in the same run under the same load; results are ratios to it.
 * Latency counts from each request's scheduled send time, so a stall delays
 * every request behind it instead of hiding them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const RATE = 200;
const REQUESTS = 1000;
const VOLUMES = 20;
const REPO_ROOT = new URL('../..', import.meta.url).pathname;

const BASELINE_SERVER = `
const http = require('node:http');
const body = '{"Volume":{"Name":"v","CreatedAt":"2026-01-01T00:00:00.000Z","Status":{}},"Err":""}\\n';
http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'Content-Type': 'application/vnd.docker.plugins.v1.2+json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
}).listen(process.argv[1]);
`;

function post(agent: Agent, socketPath: string, path: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, path, method: 'POST', agent, headers: { 'Content-Length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function waitFor(socketPath: string, child: ChildProcess): Promise<void> {
  const agent = new Agent();
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error('server exited before answering');
    if (existsSync(socketPath)) {
      const ok = await post(agent, socketPath, '/Plugin.Activate', '').then(
        (s) => s === 200,
        () => false,
      );
      if (ok) return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing answers on ${socketPath}`);
}

interface Stats {
  p50: number;
  p99: number;
  max: number;
  errors: number;
}

/** Sends `makeBody(i)` to `path` at RATE per second, REQUESTS times; latencies in ms. */
async function load(socketPath: string, path: string, makeBody: (i: number) => string): Promise<Stats> {
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now() + 20;
  const pending: Promise<void>[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const due = start + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pending.push(
      post(agent, socketPath, path, makeBody(i)).then(
        (status) => {
          if (status !== 200) errors++;
          latencies.push(performance.now() - due);
        },
        () => {
          errors++;
        },
      ),
    );
  }
  await Promise.all(pending);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), max: latencies.at(-1) ?? NaN, errors };
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

export async function bench(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'volkit-bench-plugin-'));
  const children: ChildProcess[] = [];
  try {
    const baselineSocket = join(dir, 'baseline.sock');
    const baseline = spawn(process.execPath, ['-e', BASELINE_SERVER, baselineSocket], { stdio: 'ignore' });
    children.push(baseline);
    const pluginSocket = join(dir, 'plugin.sock');
    const plugin = spawn(
      join(REPO_ROOT, 'bin', 'zkfsctl'),
      [
        'serve-plugin',
        '--name',
        `volkit-bench-${process.pid}`,
        '--socket',
        pluginSocket,
        '--state-dir',
        join(dir, 'state'),
      ],
      { stdio: 'ignore' },
    );
    children.push(plugin);
    await Promise.all([waitFor(baselineSocket, baseline), waitFor(pluginSocket, plugin)]);
    const setup = new Agent();
    for (let i = 0; i < VOLUMES; i++) {
      const body = JSON.stringify({
        Name: `vol${i}`,
        Opts: { hosts: '127.0.0.1:2181', path: `/bench/${i}` },
      });
      if ((await post(setup, pluginSocket, '/VolumeDriver.Create', body)) !== 200)
        throw new Error('Create failed');
    }

    // Warm both servers up (JIT, connections) before measuring.
    for (const [socket, path] of [
      [baselineSocket, '/VolumeDriver.Get'],
      [pluginSocket, '/VolumeDriver.Get'],
    ] as const) {
      for (let i = 0; i < 200; i++) await post(setup, socket, path, `{"Name":"vol${i % VOLUMES}"}\n`);
    }

    const rows: [string, Stats][] = [];
    rows.push([
      'baseline: bare server, constant reply',
      await load(baselineSocket, '/VolumeDriver.Get', () => '{"Name":"v"}\n'),
    ]);
    rows.push([
      'Get',
      await load(pluginSocket, '/VolumeDriver.Get', (i) => `{"Name":"vol${i % VOLUMES}"}\n`),
    ]);
    rows.push([`List (${VOLUMES} volumes)`, await load(pluginSocket, '/VolumeDriver.List', () => '{}\n')]);

    const base = rows[0]![1];
    const fmt = (n: number) => n.toFixed(2).padStart(8);
    console.log(
      `\nplugin: latency at ${RATE} requests/s, ${REQUESTS} requests each, unix socket, keep-alive`,
    );
    console.log(
      `${'target'.padEnd(40)}${'p50 ms'.padStart(8)}${'p99 ms'.padStart(8)}${'max ms'.padStart(8)}  p99/baseline  errors`,
    );
    for (const [label, s] of rows) {
      const ratio = (s.p99 / base.p99).toFixed(2);
      console.log(
        `${label.padEnd(40)}${fmt(s.p50)}${fmt(s.p99)}${fmt(s.max)}  ${`${ratio}x`.padStart(12)}  ${s.errors}`,
      );
    }
  } finally {
    await Promise.all(children.map(stop));
    rmSync(dir, { recursive: true, force: true });
  }
}
