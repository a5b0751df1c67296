import { Command, Option } from 'commander';
import { type MountZkResult, mountZk } from '../../commands/mount-zk.js';
import { umountZk } from '../../commands/umount-zk.js';
import type { App } from '../app.js';
import { printResult, withSpinner } from '../output.js';

interface MountFlags {
  mode?: string;
  auth?: string;
  authFile?: string;
  readOnly?: boolean;
  maxFileSize?: string;
  busyPoll?: string;
  ioUring?: boolean;
  uid?: string;
  gid?: string;
  umask?: string;
  option: string[];
  foreground?: boolean;
  logFile?: string;
  create: boolean;
  connectTimeout?: string;
  cacheSize?: string;
  attrTimeout?: string;
  reconnectTimeout?: string;
  sessionTimeout?: string;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function renderMount(r: MountZkResult): string {
  if (r.foreground) return `${r.dir}: ${r.ended === 'stopped' ? 'stopped and unmounted' : 'unmounted'}`;
  const details = [
    r.mode,
    r.readOnly ? 'read-only' : undefined,
    `pid ${r.pid}`,
    r.logFile ? `log ${r.logFile}` : undefined,
  ];
  return `mounted ${r.hosts}${r.path} at ${r.dir} (${details.filter(Boolean).join(', ')})`;
}

export function mountZkCommand(getApp: () => App, name: string): Command {
  return new Command(name)
    .description('mount the ZooKeeper subtree PATH of the ensemble HOSTS at DIR (FUSE)')
    .argument('<hosts>', 'connection string, e.g. zk1:2181,zk2:2181 (ports required)')
    .argument('<path>', 'ZooKeeper path to mount, e.g. /app')
    .argument('<dir>', 'mount point')
    .addOption(new Option('--mode <mode>', 'how znodes appear: hybrid, dir or file').default('hybrid'))
    .option('--auth <user:password>', 'digest credentials (visible in ps; prefer --auth-file)')
    .option('--auth-file <file>', 'read user:password from FILE (- for standard input)')
    .option('--read-only', 'refuse every change (EROFS)')
    .option('--max-file-size <bytes>', 'largest file, units allowed (default 1048575, the server limit)')
    .option(
      '--busy-poll <microseconds>',
      'keep polling for the next request this long before sleeping, where that pays; 0 turns it off (default 100)',
    )
    .option('--no-io-uring', 'read FUSE requests from /dev/fuse even where the kernel offers io_uring')
    .option('--uid <uid>', 'owner of nodes without a stored owner (default: yours)')
    .option('--gid <gid>', 'group of nodes without a stored group (default: yours)')
    .option('--umask <mask>', 'permissions of nodes without stored ones (default 022)')
    .option(
      '-o, --option <opt>',
      'FUSE option: allow_other, allow_root, default_permissions, ro, noexec (nosuid, nodev: always on) (repeatable)',
      collect,
      [],
    )
    .option('--foreground', 'serve in this process until unmounted or signalled (logs to stderr)')
    .option('--log-file <file>', 'daemon log (default /var/log/zkfsctl/<dir>.log)')
    .option('--no-create', 'fail if PATH does not exist instead of creating it')
    .option('--connect-timeout <seconds>', 'give up connecting to ZooKeeper after this long (default 10)')
    .option(
      '--cache-size <bytes>',
      'memory for cached stats, listings and data, units allowed (default 64Mi)',
    )
    .option(
      '--attr-timeout <ms>',
      'how long the kernel may keep attributes and pages; changes drop them (default 10000)',
    )
    .option('--reconnect-timeout <seconds>', 'how long operations wait for a lost connection (default 30)')
    .option('--session-timeout <seconds>', 'ZooKeeper session timeout to ask for (default 30)')
    .action(async (hosts: string, path: string, dir: string, flags: MountFlags) => {
      const app = getApp();
      const options = {
        hosts,
        path,
        dir,
        mode: flags.mode,
        auth: flags.auth,
        authFile: flags.authFile,
        readOnly: flags.readOnly,
        maxFileSize: flags.maxFileSize,
        busyPoll: flags.busyPoll,
        ioUring: flags.ioUring,
        uid: flags.uid,
        gid: flags.gid,
        umask: flags.umask,
        options: flags.option,
        foreground: flags.foreground,
        logFile: flags.logFile,
        create: flags.create,
        connectTimeout: flags.connectTimeout,
        cacheSize: flags.cacheSize,
        attrTimeout: flags.attrTimeout,
        reconnectTimeout: flags.reconnectTimeout,
        sessionTimeout: flags.sessionTimeout,
      };
      if (!flags.foreground) {
        // Interrupted (Ctrl-C, timeout(1), a unit's start timeout) while the daemon comes up, the
        // command stops it too: left alone, it mounted moments after the command had failed.
        const interrupt = new AbortController();
        const onSignal = () => interrupt.abort();
        for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
        try {
          const result = await withSpinner(app.out, `mounting ${hosts}${path} at ${dir}`, (progress) =>
            mountZk({ ...options, signal: interrupt.signal }, app.context({ progress })),
          );
          printResult(app.out, result, renderMount);
        } finally {
          for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
        }
        return;
      }
      // SIGTERM, SIGINT and SIGHUP (the terminal of a foreground mount closed) end the mount cleanly
      // (flush, unmount, close the session); files still open are served until closed, for up to a
      // minute, or until a second signal. SIGHUP's default action left the mount dead and what was
      // written to open files unsaved.
      const stop = new AbortController();
      const stopNow = new AbortController();
      const onSignal = () => (stop.signal.aborted ? stopNow.abort() : stop.abort());
      for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
      try {
        const result = await mountZk(
          { ...options, signal: stop.signal, signalNow: stopNow.signal },
          app.context(),
        );
        printResult(app.out, result, renderMount);
      } finally {
        for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
      }
    });
}

/** The signals that end a foreground mount (a daemon is one) cleanly. */
const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

export function umountZkCommand(getApp: () => App, name: string): Command {
  return new Command(name)
    .description('unmount a ZooKeeper filesystem and stop its daemon')
    .argument('<dir>', 'mount point')
    .option('--lazy', 'detach now even if files are open; the daemon exits once they are closed')
    .action(async (dir: string, flags: { lazy?: boolean }) => {
      const app = getApp();
      const result = await withSpinner(app.out, `unmounting ${dir}`, (progress) =>
        umountZk({ dir, lazy: flags.lazy }, app.context({ progress })),
      );
      printResult(app.out, result, (r) =>
        r.daemonExited
          ? `unmounted ${r.dir}`
          : `detached ${r.dir}; its daemon exits once open files are closed`,
      );
    });
}
