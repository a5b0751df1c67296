/**
 * The `zkfsctl mount` options that trade memory and waiting against
 * coherence and availability, checked and defaulted once at the door:
 *
 * - cache size: memory for the watch-driven cache (stats, listings, data);
 * - attribute timeout: how long the kernel may reuse attributes, names and
 *   pages without asking the daemon. The daemon tells it to drop what a
 *   watch reports changed (adapters/zkfs/kernel-notify.ts), so this only
 *   matters while the watch is down, or if the kernel refuses the notices;
 * - reconnect timeout: how long an operation waits for a lost connection
 *   (or an expired session) to come back before it fails with ETIMEDOUT;
 * - session timeout: asked of ZooKeeper (servers clamp it to 2–20 ticks).
 */
import { UsageError } from '../errors.js';
import { parseSize, SizeError } from '../units.js';
import { DEFAULT_CACHE_BYTES } from './cache-policy.js';

export const DEFAULT_ATTR_TIMEOUT_MS = 10_000;
export const DEFAULT_RECONNECT_TIMEOUT_S = 30;
export const DEFAULT_SESSION_TIMEOUT_S = 30;

export interface RawCoherenceOptions {
  cacheSize?: string | number | undefined;
  attrTimeout?: string | number | undefined;
  reconnectTimeout?: string | number | undefined;
  sessionTimeout?: string | number | undefined;
}

export interface CoherenceOptions {
  cacheBytes: number;
  attrTimeoutMs: number;
  reconnectTimeoutMs: number;
  sessionTimeoutMs: number;
}

function parseNumber(option: string, value: string | number, unit: string, max: number): number {
  const n =
    typeof value === 'number' ? value : /^\d+(\.\d+)?$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isFinite(n) || n < 0 || n > max) {
    throw new UsageError(`--${option} '${value}' is not a number of ${unit} between 0 and ${max}`);
  }
  return n;
}

export function parseCacheSize(value: string | number): number {
  let bytes: number;
  try {
    bytes = typeof value === 'number' ? value : parseSize(value);
  } catch (error) {
    if (error instanceof SizeError) throw new UsageError(`--cache-size: ${error.message}`);
    throw error;
  }
  if (!Number.isInteger(bytes) || bytes < 0 || bytes > 2 ** 40) {
    throw new UsageError(`--cache-size ${value} is out of range (0 to 1Ti bytes)`);
  }
  return bytes;
}

/** Checks the options and fills in the defaults. */
export function resolveCoherenceOptions(raw: RawCoherenceOptions): CoherenceOptions {
  const sessionS =
    raw.sessionTimeout === undefined
      ? DEFAULT_SESSION_TIMEOUT_S
      : parseNumber('session-timeout', raw.sessionTimeout, 'seconds', 3600);
  if (sessionS < 1) throw new UsageError(`--session-timeout ${raw.sessionTimeout} is shorter than 1 second`);
  return {
    cacheBytes: raw.cacheSize === undefined ? DEFAULT_CACHE_BYTES : parseCacheSize(raw.cacheSize),
    attrTimeoutMs:
      raw.attrTimeout === undefined
        ? DEFAULT_ATTR_TIMEOUT_MS
        : Math.round(parseNumber('attr-timeout', raw.attrTimeout, 'milliseconds', 3_600_000)),
    reconnectTimeoutMs: Math.round(
      (raw.reconnectTimeout === undefined
        ? DEFAULT_RECONNECT_TIMEOUT_S
        : parseNumber('reconnect-timeout', raw.reconnectTimeout, 'seconds', 86_400)) * 1000,
    ),
    sessionTimeoutMs: Math.round(sessionS * 1000),
  };
}
