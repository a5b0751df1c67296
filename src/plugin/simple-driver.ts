/**
 * The `simple` driver: the volume name is a disk query
 * (`label.fast_min-disks.2`, shared/reference.md §1), `-o` options add
 * settings a name cannot hold (a passphrase with spaces), and mounting is the
 * same handler as `simplectl mount`, sharing the host's disk assignments
 * (SIMPLECTL_STATE_DIR) with the CLI.
 */
import type { CommandContext } from '../commands/context.js';
import { volumeMount } from '../commands/volume-mount.js';
import { volumeRelease, volumeUmount } from '../commands/volume-umount.js';
import type { VolumeRecord } from '../core/plugin-state.js';
import { parseQuery, QUERY_FIELDS, querySecrets, redactQuery, wantsEncryption } from '../core/query.js';
import type { VolumeBackend } from './volume-driver.js';

export const SIMPLE_DRIVER = 'simple';
const SECRET_KEYS = QUERY_FIELDS.filter((f) => f.kind === 'secret').map((f) => f.key);

export interface SimpleBackendOptions {
  /** The disk-assignment state directory shared with the CLI. */
  stateDir: string;
  /** Device name globs also considered (loop devices in tests), as `--include` of the CLI. */
  include: readonly string[];
}

export function simpleBackend(options: SimpleBackendOptions): VolumeBackend {
  const mountVolume = async (volume: VolumeRecord, dir: string, ctx: CommandContext): Promise<void> => {
    await volumeMount(
      {
        query: volume.name,
        dir,
        options: { ...volume.options },
        stateDir: options.stateDir,
        include: [...options.include],
      },
      ctx,
    );
  };
  return {
    driver: SIMPLE_DRIVER,
    secretOptions: SECRET_KEYS,
    plainOptions: QUERY_FIELDS.filter((f) => f.kind !== 'secret').map((f) => f.key),
    displayName: redactQuery,
    secretsOf: (name, opts) => querySecrets(name, opts),
    normalizeOptions: (name, opts) => {
      parseQuery(name, opts); // throws a UsageError naming the bad setting
      return { ...opts };
    },
    mount: mountVolume,
    // A second mount of a mounted volume restarts its watcher and mounts its own disks back.
    refresh: mountVolume,
    unmount: async (_volume: VolumeRecord, dir: string, ctx: CommandContext) => {
      await volumeUmount({ dir, stateDir: options.stateDir }, ctx);
    },
    // `docker volume rm`: the disks stop being this volume's and may go to others.
    forget: async (volume: VolumeRecord, ctx: CommandContext) => {
      await volumeRelease({ name: volume.name, stateDir: options.stateDir }, ctx);
    },
    status: (volume) => {
      const q = parseQuery(volume.name, volume.options);
      return {
        label: q.label,
        minDisks: q.minDisks,
        maxDisks: q.maxDisks,
        filesystem: q.filesystem ?? 'any',
        encrypted: wantsEncryption(q),
      };
    },
  };
}
