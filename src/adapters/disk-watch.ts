/**
 * Notices when block devices appear, disappear or change, and calls back so
 * the caller can rescan. Two sources feed it: kernel uevents (adapters/uevents.ts),
 * for an answer within a fraction of a second, and a cheap poll of
 * /sys/class/block every interval, which is the fallback when no uevent helper
 * exists and also catches what raises no uevent at all: `losetup -d` on a loop
 * device still in use only sets its autoclear flag.
 *
 * SIMPLECTL_WATCH=poll (or `mode: 'poll'`) forces polling only.
 */
import { readdir, readFile } from 'node:fs/promises';
import type { Logger } from './logger.js';
import { silentLogger } from './logger.js';
import { listenBlockUevents, type UeventListener, type UeventSource } from './uevents.js';

const SYS_BLOCK = '/sys/class/block';

/** What sysfs says about one block device; enough to notice attach, detach and media change. */
export interface BlockDeviceFacts {
  name: string;
  /** Size in 512-byte sectors (0: no medium, e.g. a detached loop device). */
  sectors: number;
  /** Increments whenever new media appears on the device (kernel ≥ 5.15); undefined when absent. */
  diskseq?: number;
  /** A loop device whose detach was requested while busy: gone as soon as it is released. */
  detaching: boolean;
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/** Facts about one device, or undefined when sysfs does not list it. */
export async function blockDeviceFacts(name: string): Promise<BlockDeviceFacts | undefined> {
  const base = `${SYS_BLOCK}/${name}`;
  const size = await readText(`${base}/size`);
  if (size === undefined) return undefined;
  const diskseq = await readText(`${base}/diskseq`);
  const autoclear = await readText(`${base}/loop/autoclear`);
  const backing = autoclear === '1' ? await readText(`${base}/loop/backing_file`) : undefined;
  return {
    name,
    sectors: Number(size) || 0,
    ...(diskseq !== undefined && diskseq !== '' ? { diskseq: Number(diskseq) } : {}),
    // autoclear alone is normal for `mount -o loop`; with a backing file still set and our
    // partitions mounted it means "detach requested". Callers decide with what they hold.
    detaching: autoclear === '1' && backing !== undefined,
  };
}

/** True when the device is there with media and not on its way out. */
export function isPresent(facts: BlockDeviceFacts | undefined): facts is BlockDeviceFacts {
  return facts !== undefined && facts.sectors > 0 && !facts.detaching;
}

/** A string that changes whenever any block device appears, goes, or changes media or size. */
export async function blockSignature(): Promise<string> {
  let names: string[];
  try {
    names = (await readdir(SYS_BLOCK)).sort();
  } catch {
    return '';
  }
  const parts = await Promise.all(
    names.map(async (name) => {
      const f = await blockDeviceFacts(name);
      return f ? `${name}:${f.sectors}:${f.diskseq ?? ''}:${f.detaching ? 'd' : ''}` : name;
    }),
  );
  return parts.join(' ');
}

export type WatchMode = 'auto' | 'poll';

export interface DiskWatchOptions {
  /** 'auto' uses uevents when possible plus polling; 'poll' polls only. Default: SIMPLECTL_WATCH or 'auto'. */
  mode?: WatchMode;
  /** Poll interval (default 1000 ms). */
  intervalMs?: number;
  /** Uevents arrive in bursts (a disk and its partitions): wait this long for quiet (default 200 ms). */
  settleMs?: number;
  logger?: Logger;
  /** Force a uevent helper (tests). */
  ueventSource?: UeventSource;
}

export interface DiskWatch {
  /** 'uevent+poll' or 'poll': what actually runs. */
  readonly source: string;
  stop(): Promise<void>;
}

/** The watch mode asked for by the environment (SIMPLECTL_WATCH=poll|auto). */
export function watchModeFromEnv(env: NodeJS.ProcessEnv = process.env): WatchMode {
  return env.SIMPLECTL_WATCH === 'poll' ? 'poll' : 'auto';
}

/**
 * Calls `onChange` (never concurrently with itself) after block devices change.
 * A change seen while `onChange` runs triggers one more call once it returns.
 */
export async function watchDisks(
  onChange: (reason: string) => Promise<void>,
  options: DiskWatchOptions = {},
): Promise<DiskWatch> {
  const log = options.logger ?? silentLogger;
  const mode = options.mode ?? watchModeFromEnv();
  const intervalMs = options.intervalMs ?? 1000;
  const settleMs = options.settleMs ?? 200;
  let stopped = false;
  let running: Promise<void> | undefined;
  let pendingReason: string | undefined;
  let settleTimer: NodeJS.Timeout | undefined;
  let signature = await blockSignature();

  const fire = (reason: string): void => {
    if (stopped) return;
    if (running) {
      pendingReason = reason;
      return;
    }
    running = (async () => {
      try {
        await onChange(reason);
      } catch (error) {
        log.error(`watch: ${error instanceof Error ? error.message : String(error)}`);
      }
    })().finally(() => {
      running = undefined;
      if (pendingReason !== undefined) {
        const again = pendingReason;
        pendingReason = undefined;
        fire(again);
      }
    });
  };

  let listener: UeventListener | undefined;
  if (mode === 'auto') {
    listener = await listenBlockUevents(
      (event) => {
        if (settleTimer) clearTimeout(settleTimer);
        settleTimer = setTimeout(() => {
          settleTimer = undefined;
          void blockSignature().then((s) => {
            signature = s;
            fire(`uevent ${event.action} ${event.devname}`);
          });
        }, settleMs);
      },
      {
        logger: log,
        ...(options.ueventSource ? { source: options.ueventSource } : {}),
        onExit: () => {
          listener = undefined;
        },
      },
    );
    if (!listener) log.info('watch: no uevent helper (udevadm or busybox uevent); polling sysfs only');
  }

  const poll = setInterval(() => {
    void blockSignature().then((s) => {
      if (s !== signature) {
        signature = s;
        fire('sysfs changed');
      }
    });
  }, intervalMs);

  return {
    source: listener ? `uevent(${listener.source})+poll` : 'poll',
    stop: async () => {
      stopped = true;
      clearInterval(poll);
      if (settleTimer) clearTimeout(settleTimer);
      await listener?.stop();
      await running;
    },
  };
}
