/**
 * Kernel uevents for block devices, read from the kernel's netlink socket by a
 * helper program (Node cannot open netlink sockets itself):
 * `udevadm monitor --kernel` where udev's tools are installed (it reads the
 * kernel socket directly and does not need udevd running), else BusyBox's
 * `uevent` applet. Events are only hints that something changed: callers
 * rescan, so a missed or duplicated event costs at most one poll interval.
 *
 * The helper is a long-running child (the one place besides daemons allowed to
 * spawn directly). It is killed on stop(); if this process dies first, the
 * helper dies of SIGPIPE at its next event.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { hasCommand, run } from './exec.js';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';

export interface Uevent {
  action: string;
  subsystem: string;
  /** Kernel device name, e.g. "loop3" or "sdb1" (may be empty for events without one). */
  devname: string;
}

export type UeventSource = 'udevadm' | 'busybox';

export interface UeventListener {
  readonly source: UeventSource;
  stop(): Promise<void>;
}

/** The marker BusyBox's helper prints before each event's fields. */
const BUSYBOX_MARK = 'simplectl-uevent';

/** Parses one line of `udevadm monitor --kernel` output: `KERNEL[123.456] add /devices/... (block)`. */
export function parseUdevadmLine(line: string): Uevent | undefined {
  const m = /^KERNEL\[[^\]]*\]\s+(\S+)\s+(\S+)\s+\(([^)]*)\)/.exec(line.trim());
  if (!m) return undefined;
  const devpath = m[2] ?? '';
  return { action: m[1] ?? '', subsystem: m[3] ?? '', devname: devpath.slice(devpath.lastIndexOf('/') + 1) };
}

/** Parses one line printed by the BusyBox helper script: `simplectl-uevent ACTION SUBSYSTEM DEVNAME`. */
export function parseBusyboxLine(line: string): Uevent | undefined {
  const fields = line.trim().split(/\s+/);
  if (fields[0] !== BUSYBOX_MARK || fields.length < 3) return undefined;
  return { action: fields[1] ?? '', subsystem: fields[2] ?? '', devname: fields[3] ?? '' };
}

async function busyboxHasUevent(): Promise<boolean> {
  if (!(await hasCommand('busybox'))) return false;
  const applets = await run('busybox', ['--list']).catch(() => undefined);
  return applets?.stdout.split('\n').includes('uevent') ?? false;
}

/** Which helper this host has, preferring udevadm; undefined when neither is available. */
export async function detectUeventSource(): Promise<UeventSource | undefined> {
  if (await hasCommand('udevadm')) return 'udevadm';
  if (await busyboxHasUevent()) return 'busybox';
  return undefined;
}

export interface ListenOptions {
  /** Force a helper instead of detecting one. */
  source?: UeventSource;
  logger?: Logger;
  /** Called when the helper exits by itself (callers fall back to polling). */
  onExit?: (reason: string) => void;
}

/**
 * Starts listening for block-device uevents and calls `onEvent` for each.
 * Resolves once the helper runs, or to undefined when no helper is available.
 */
export async function listenBlockUevents(
  onEvent: (event: Uevent) => void,
  options: ListenOptions = {},
): Promise<UeventListener | undefined> {
  const log = options.logger ?? silentLogger;
  const source = options.source ?? (await detectUeventSource());
  if (!source) return undefined;
  const [command, args, parse]: [string, string[], (line: string) => Uevent | undefined] =
    source === 'udevadm'
      ? ['udevadm', ['monitor', '--kernel', '--subsystem-match=block'], parseUdevadmLine]
      : [
          'busybox',
          // One fixed script per event; the kernel's fields arrive in its environment.
          ['uevent', 'sh', '-c', `echo "${BUSYBOX_MARK} $ACTION $SUBSYSTEM $DEVNAME"`],
          parseBusyboxLine,
        ];
  const child: ChildProcess = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stopping = false;
  const started = await new Promise<boolean>((resolve) => {
    child.once('spawn', () => resolve(true));
    child.once('error', (error) => {
      log.debug(`uevents: cannot start ${command}: ${error.message}`);
      resolve(false);
    });
  });
  if (!started) return undefined;
  log.debug(`uevents: listening with ${command} (pid ${child.pid})`);
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    const event = parse(line);
    if (event && event.subsystem === 'block') onEvent(event);
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      lines.close();
      if (!stopping) {
        const reason = `${command} exited (${signal ?? `code ${code}`})${stderr.trim() ? `: ${stderr.trim()}` : ''}`;
        log.warn(`uevents: ${reason}`);
        options.onExit?.(reason);
      }
      resolve();
    });
  });
  return {
    source,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      stopping = true;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000);
      await exited;
      clearTimeout(timer);
    },
  };
}
