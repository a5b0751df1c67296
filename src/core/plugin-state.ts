/**
 * What a volume plugin remembers between runs: each volume's options, when it
 * was created and who holds it (per-ID refs). Pure transitions over an
 * immutable shape; the plugin persists the result atomically after each one.
 */
import { OperationError, UsageError } from './errors.js';
import { type MountRefs, sanitizeRefs } from './refs.js';

export const STATE_VERSION = 1;

export interface VolumeRecord {
  name: string;
  /** Options as the driver normalised them at Create; may hold secrets (the file is 0600). */
  options: Readonly<Record<string, string>>;
  /** ISO 8601 time of the Create call. */
  createdAt: string;
  refs: MountRefs;
  /**
   * The volume's directory under the mount root when it is not the name
   * itself: a name holding a secret gets another, so that the secret never
   * shows in the (world-readable) mount table or a Mountpoint reply.
   */
  dir?: string;
}

export interface PluginState {
  version: typeof STATE_VERSION;
  volumes: Readonly<Record<string, VolumeRecord>>;
}

/** Docker's own volume-name rule, minus anything that could leave the mount root. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const MAX_NAME_LENGTH = 255;

/**
 * Returns `name` when it is safe as a volume name and a path component;
 * throws UsageError naming the problem. `hide` masks what the name holds
 * that no message may show (a passphrase), before it is cut or quoted:
 * either would leave the secret no longer whole, and shown.
 */
export function validateVolumeName(name: unknown, hide: (name: string) => string = (n) => n): string {
  if (typeof name !== 'string' || name === '') throw new UsageError('volume name is missing');
  const masked = hide(name);
  const shown = JSON.stringify(masked.length > 80 ? `${masked.slice(0, 80)}…` : masked);
  if (name.length > MAX_NAME_LENGTH) {
    throw new UsageError(`invalid volume name ${shown}: longer than ${MAX_NAME_LENGTH} characters`);
  }
  if (name.includes('/')) throw new UsageError(`invalid volume name ${shown}: contains '/'`);
  if (name.includes('..')) throw new UsageError(`invalid volume name ${shown}: contains '..'`);
  if (!NAME_PATTERN.test(name)) {
    throw new UsageError(
      `invalid volume name ${shown}: use letters, digits, '_', '.' and '-', starting with a letter or digit`,
    );
  }
  return name;
}

/** Validates a Mount/Unmount ID from the engine. */
export function validateMountId(id: unknown): string {
  if (typeof id !== 'string' || id === '') throw new UsageError('mount ID is missing');
  if (id.length > 256) throw new UsageError('mount ID is longer than 256 characters');
  return id;
}

export function emptyState(): PluginState {
  return { version: STATE_VERSION, volumes: {} };
}

/** Checks and normalises state read back from disk; `source` names the file in errors. */
export function parseState(value: unknown, source: string): PluginState {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new OperationError(`state file ${source} does not hold an object; fix or remove it`);
  }
  const raw = value as { version?: unknown; volumes?: unknown };
  if (raw.version !== STATE_VERSION) {
    throw new OperationError(
      `state file ${source} has version ${JSON.stringify(raw.version)}, expected ${STATE_VERSION}`,
    );
  }
  const volumes: Record<string, VolumeRecord> = {};
  const entries = typeof raw.volumes === 'object' && raw.volumes !== null ? Object.entries(raw.volumes) : [];
  for (const [name, record] of entries) {
    const r = (record ?? {}) as Partial<Record<keyof VolumeRecord, unknown>>;
    savedName(name, source);
    const options: Record<string, string> = {};
    if (typeof r.options === 'object' && r.options !== null) {
      for (const [k, v] of Object.entries(r.options)) if (typeof v === 'string') options[k] = v;
    }
    volumes[name] = {
      name,
      options,
      createdAt: typeof r.createdAt === 'string' ? r.createdAt : new Date(0).toISOString(),
      refs: sanitizeRefs(r.refs),
      ...(typeof r.dir === 'string' ? { dir: savedName(r.dir, source) } : {}),
    };
  }
  return { version: STATE_VERSION, volumes };
}

/** A name read back from the state file: a bad one is the file's fault, not a usage error. */
function savedName(name: string, source: string): string {
  try {
    return validateVolumeName(name);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    throw new OperationError(`state file ${source}: ${error.message}; fix or remove it`);
  }
}

/** The engine asked about a volume this plugin does not have (it asks before every Create). */
export class NoSuchVolumeError extends OperationError {
  override readonly name: string = 'NoSuchVolumeError';

  constructor(volume: string) {
    super(`no such volume: ${volume}`);
  }
}

/** The volume called `name`, if any: never what every object has (a volume may be called constructor). */
export function recordOf(state: PluginState, name: string): VolumeRecord | undefined {
  return Object.hasOwn(state.volumes, name) ? state.volumes[name] : undefined;
}

/** The volume called `name`, or a NoSuchVolumeError. */
export function getVolume(state: PluginState, name: string): VolumeRecord {
  const volume = recordOf(state, name);
  if (!volume) throw new NoSuchVolumeError(name);
  return volume;
}

function sameOptions(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

export interface AddVolumeResult {
  state: PluginState;
  /** False when the same volume with the same options already existed (Create is idempotent). */
  created: boolean;
}

/**
 * Records a new volume; creating it again with the same options is a no-op
 * (it keeps its directory), with others an error. `dir` is its directory
 * under the mount root when that is not `name` (see VolumeRecord.dir).
 */
export function addVolume(
  state: PluginState,
  name: string,
  options: Readonly<Record<string, string>>,
  now: Date,
  dir?: string,
): AddVolumeResult {
  const existing = recordOf(state, name);
  if (existing) {
    if (sameOptions(existing.options, options)) return { state, created: false };
    throw new UsageError(`volume ${name} already exists with different options`);
  }
  const record: VolumeRecord = {
    name,
    options: { ...options },
    createdAt: now.toISOString(),
    refs: {},
    ...(dir !== undefined ? { dir: validateVolumeName(dir) } : {}),
  };
  return { state: { ...state, volumes: { ...state.volumes, [name]: record } }, created: true };
}

/** Forgets a volume. */
export function removeVolume(state: PluginState, name: string): PluginState {
  getVolume(state, name);
  const volumes = { ...state.volumes };
  delete volumes[name];
  return { ...state, volumes };
}

/** Replaces a volume's references. */
export function withRefs(state: PluginState, name: string, refs: MountRefs): PluginState {
  const volume = getVolume(state, name);
  return { ...state, volumes: { ...state.volumes, [name]: { ...volume, refs } } };
}
