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
import { Router } from './router.js';
import { startPluginServer } from './server.js';
import { SIMPLE_DRIVER, simpleBackend } from './simple-driver.js';
import type { VolumeBackend } from './volume-driver.js';
import { type ReconcileEntry, VolumeStore } from './volume-store.js';
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
  const store = await VolumeStore.open({
    backend,
    stateFile: paths.stateFile,
    mountRoot: paths.mountRoot,
    ctx,
  });
  // In the background: requests on a volume wait for its own turn, the rest are answered at once.
  const pending = store.names().length;
  let bound!: () => void;
  const after = new Promise<void>((resolve) => {
    bound = resolve;
  });
  const stopping = new AbortController();
  const reconciling = store.startReconcile({ after, stop: stopping.signal }).then((entries) => {
    const failed = entries.filter((e) => e.error !== undefined).length;
    if (pending > 0 && !stopping.signal.aborted) {
      ctx.log.info(
        `start-up reconciliation done: ${entries.length} volume(s)${failed > 0 ? `, ${failed} failed (see above)` : ''}`,
      );
    }
    return entries;
  });
  const server = await startPluginServer({
    router: new Router({ driver: store, log: ctx.log }),
    log: ctx.log,
    listen: { socketPath: paths.socket },
    maxBodyBytes: options.maxBodyBytes,
  });
  bound();
  ctx.log.info(
    `${options.driver} plugin "${paths.name}" ready on ${server.address} (${store.names().length} volume(s)${pending > 0 ? `, reconciling them with the mount table` : ''}, state ${paths.stateFile})`,
  );
  options.onListening?.(server.address);

  const stoppedBy = await new Promise<string>((resolve) => {
    const stop = (why: string) => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      options.signal?.removeEventListener('abort', onAbort);
      resolve(why);
    };
    const onTerm = () => stop('SIGTERM');
    const onInt = () => stop('SIGINT');
    const onAbort = () => stop('abort');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
    if (options.signal?.aborted) stop('abort');
    else options.signal?.addEventListener('abort', onAbort, { once: true });
  });
  ctx.log.info(`stopping on ${stoppedBy}: finishing requests in flight; volumes stay mounted`);
  // Volumes whose start-up turn has not come stay as they are; the next start looks at them.
  stopping.abort();
  await server.close();
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
