/**
 * The detached watcher of one dynamic-mounts volume, started by
 * `simplectl mount` (commands/volume-watch.ts ensureWatcher) and stopped by
 * `simplectl umount` with SIGTERM. Not a user command:
 *
 *   node dist/cli/volume-watcher.js --dir DIR --state-dir STATE [--include GLOB]...
 *
 * Everything secret (a passphrase) is read from the 0600 state file, never
 * from argv. Logs go to standard error, which the parent points at a file in
 * STATE/watchers/. Exits 0 when stopped or when the volume is no longer mounted.
 */
import { parseArgs } from 'node:util';
import { createLogger, isLogLevel } from '../adapters/logger.js';
import { defaultContext } from '../commands/context.js';
import { watchVolume } from '../commands/volume-watch.js';
import { errorMessage } from '../core/errors.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      dir: { type: 'string' },
      'state-dir': { type: 'string' },
      include: { type: 'string', multiple: true },
      'log-level': { type: 'string' },
    },
    strict: true,
  });
  const log = createLogger({
    level: values['log-level'] && isLogLevel(values['log-level']) ? values['log-level'] : 'info',
    name: `simplectl-watcher[${process.pid}]`,
    timestamps: true,
  });
  if (!values.dir || !values['state-dir']) {
    log.error('usage: volume-watcher --dir DIR --state-dir STATE [--include GLOB]...');
    return 2;
  }
  // Kept, not once: execa's clean-up of a running child (a mount) re-raises a signal that finds no
  // other listener, which would end the watcher in the middle of that step. Listening from the
  // start: a umount right after the mount signals the watcher during its first pass, which the
  // signal's default action would cut short (a mapping opened, a disk mounted and not recorded).
  let watcher: Awaited<ReturnType<typeof watchVolume>> | undefined;
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping`);
    void watcher?.stop();
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, onSignal);
  watcher = await watchVolume(
    {
      dir: values.dir,
      stateDir: values['state-dir'],
      include: values.include ?? [],
      watcherPid: process.pid,
    },
    defaultContext({ log }),
  );
  // Told to stop during the first pass, which has finished by now.
  if (stopping) void watcher.stop();
  await watcher.done;
  log.info('stopped');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`simplectl-watcher: ${errorMessage(error)}\n`);
    process.exit(1);
  },
);
