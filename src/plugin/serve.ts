/**
 * Runs a Docker volume plugin until SIGTERM/SIGINT (or `signal`): loads the
 * saved volumes, serves the protocol on the plugin socket and, meanwhile,
 * reconciles the volumes with the mount table. Stopping never unmounts
 * anything: containers keep their volumes, and the next start picks the
 * references up again.
 */
import { join } from 'node:path';
import { resolveStateDir } from '../adapters/volume-state.js';
import type { CommandContext } from '../commands/context.js';
import { UsageError } from '../core/errors.js';
import { PLUGIN_DRIVERS, type PluginDriver, pluginPaths } from '../core/plugin-paths.js';
import { DEFAULT_RELEASE_UNHELD_S } from '../core/refs.js';
import { Router } from './router.js';
import { startPluginServer } from './server.js';
import { SIMPLE_DRIVER, simpleBackend } from './simple-driver.js';
import type { VolumeBackend } from './volume-driver.js';
import { type ReconcileEntry, VolumeStore } from './volume-store.js';
import { startVolumeSweep } from './volume-sweep.js';
import { ZK_DRIVER, zkBackend } from './zk-driver.js';

export interface ServePluginOptions {
  driver: PluginDriver;
  /** Plugin name = socket basename = `docker volume create -d NAME`; defaults to the driver. */
  name?: string;
  socket?: string;
  stateDir?: string;
  mountRoot?: string;
  /** simple: device name globs also considered (e.g. loop devices). */
  include?: readonly string[];
  /** Largest request body accepted. */
  maxBodyBytes?: number;
  /** Seconds without a Mount before references nothing uses are released (0 never; default 120). */
  releaseUnheldS?: number;
  /** Stops serving when aborted; SIGTERM and SIGINT also stop it. */
  signal?: AbortSignal;
  /** Called once the socket accepts requests. */
  onListening?: (address: string) => void;
}

export interface ServePluginResult {
  driver: PluginDriver;
  name: string;
  address: string;
  stateFile: string;
  mountRoot: string;
  reconciled: ReconcileEntry[];
  /** What stopped the server. */
  stoppedBy: string;
}

export function pluginBackend(
  driver: string,
  stateDir: string,
  include: readonly string[] = [],
): VolumeBackend {
  if (driver === ZK_DRIVER) {
    if (include.length > 0) throw new UsageError('--include applies to the simple driver only');
    return zkBackend({ logDir: join(stateDir, 'logs') });
  }
  if (driver === SIMPLE_DRIVER) return simpleBackend({ stateDir: resolveStateDir(), include });
  throw new UsageError(`unknown driver ${JSON.stringify(driver)} (expected ${PLUGIN_DRIVERS.join(' or ')})`);
}

export async function servePlugin(
  options: ServePluginOptions,
  ctx: CommandContext,
): Promise<ServePluginResult> {
  const paths = pluginPaths({ ...options, name: options.name ?? options.driver });
  const backend = pluginBackend(options.driver, paths.stateDir, options.include);
  // Heard from the start: the socket answers before start-up has finished, and a SIGTERM then
  // (systemd's stop, a supervisor that saw the socket answer) must stop it in order, not kill it.
  const stop = stopRequest(options.signal);
  try {
    return await serve(options, ctx, paths, backend, stop);
  } finally {
    stop.dispose();
  }
}

interface StopRequest {
  /** Resolves with what asked the server to stop. */
  requested: Promise<string>;
  /** Aborted as soon as a stop is asked for. */
  signal: AbortSignal;
  /** Stops listening for SIGTERM, SIGINT and the abort signal. */
  dispose: () => void;
}

/**
 * Listens for SIGTERM and SIGINT until disposed, not only for the first one:
 * execa's clean-up of running children (signal-exit) re-raises a signal
 * that finds no listener but its own, and a listener that removed itself
 * on the first signal left it just that, so a stop while a child ran (a
 * `fusermount` at start-up) killed the server on the spot. A second signal
 * ends it at once, as it would a program without handlers.
 */
function stopRequest(signal: AbortSignal | undefined): StopRequest {
  let resolve!: (why: string) => void;
  const asked = new AbortController();
  const requested = new Promise<string>((r) => {
    resolve = r;
  });
  const dispose = () => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    signal?.removeEventListener('abort', onAbort);
  };
  const stop = (why: string) => {
    if (asked.signal.aborted) return;
    asked.abort();
    resolve(why);
  };
  const onSignal = (name: NodeJS.Signals) => {
    if (!asked.signal.aborted) return stop(name);
    dispose();
    process.kill(process.pid, name);
  };
  const onAbort = () => stop('abort');
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  if (signal?.aborted) stop('abort');
  else signal?.addEventListener('abort', onAbort, { once: true });
  return { requested, signal: asked.signal, dispose };
}

async function serve(
  options: ServePluginOptions,
  ctx: CommandContext,
  paths: ReturnType<typeof pluginPaths>,
  backend: VolumeBackend,
  stop: StopRequest,
): Promise<ServePluginResult> {
  const releaseUnheldMs = (options.releaseUnheldS ?? DEFAULT_RELEASE_UNHELD_S) * 1000;
  const store = await VolumeStore.open({
    backend,
    stateFile: paths.stateFile,
    mountRoot: paths.mountRoot,
    ctx,
    releaseUnheldMs,
  });
  // In the background: requests on a volume wait for its own turn, the rest are answered at once.
  const pending = store.names().length;
  let bound!: () => void;
  const after = new Promise<void>((resolve) => {
    bound = resolve;
  });
  // Once a stop is asked for, even before the server listens, no volume starts its turn.
  const reconciling = store.startReconcile({ after, stop: stop.signal }).then((entries) => {
    const failed = entries.filter((e) => e.error !== undefined).length;
    if (pending > 0 && !stop.signal.aborted) {
      ctx.log.info(
        `start-up reconciliation done: ${entries.length} volume(s)${failed > 0 ? `, ${failed} failed (see above)` : ''}`,
      );
    }
    return entries;
  });
  const router = new Router({ driver: store, log: ctx.log });
  const server = await startPluginServer({
    router,
    log: ctx.log,
    listen: { socketPath: paths.socket },
    maxBodyBytes: options.maxBodyBytes,
  });
  bound();
  const sweep = startVolumeSweep({ store, router, releaseUnheldMs, log: ctx.log });
  ctx.log.info(
    `${options.driver} plugin "${paths.name}" ready on ${server.address} (${store.names().length} volume(s)${pending > 0 ? `, reconciling them with the mount table` : ''}, state ${paths.stateFile})`,
  );
  options.onListening?.(server.address);

  const stoppedBy = await stop.requested;
  ctx.log.info(`stopping on ${stoppedBy}: finishing requests in flight; volumes stay mounted`);
  await server.close();
  await sweep.stop();
  if (store.reconcilingNames().length > 0) {
    // Exiting in the middle of a remount could leave a daemon starting for a mount no one records.
    ctx.log.info(`waiting for start-up reconciliation of ${store.reconcilingNames().join(', ')}`);
  }
  const reconciled = await reconciling;
  const deferred = reconciled.filter((e) => e.deferred).map((e) => e.name);
  if (deferred.length > 0) {
    ctx.log.info(
      `left ${deferred.length} volume(s) for the next start to reconcile with the mount table: ${deferred.join(', ')}`,
    );
  }
  await store.flush();
  return {
    driver: options.driver,
    name: paths.name,
    address: server.address,
    stateFile: paths.stateFile,
    mountRoot: paths.mountRoot,
    reconciled,
    stoppedBy,
  };
}
