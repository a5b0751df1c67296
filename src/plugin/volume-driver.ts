/**
 * The two seams of the plugin. `VolumeDriver` is what the protocol router
 * calls, one method per endpoint, in plain types: the router never sees
 * storage and a driver never sees HTTP. `VolumeBackend` is what the `simple`
 * and `zookeeper` drivers provide to the shared volume store: how to check
 * options and how to mount and unmount one volume, by calling the same
 * command handlers as the CLI.
 */
import type { CommandContext } from '../commands/context.js';
import type { VolumeRecord } from '../core/plugin-state.js';

export interface VolumeSummary {
  name: string;
  /** Set only while the volume is mounted. */
  mountpoint?: string;
}

export interface VolumeDetails extends VolumeSummary {
  createdAt: string;
  /** Shown by `docker volume inspect`; never holds secrets. */
  status: Record<string, unknown>;
}

export interface VolumeDriver {
  create(name: string, options: Record<string, string>): Promise<void>;
  remove(name: string): Promise<void>;
  /** Mounts for engine mount `id` (first reference mounts) and returns the mount point. */
  mount(name: string, id: string): Promise<string>;
  /** The mount point while mounted, else undefined. */
  path(name: string): Promise<string | undefined>;
  /** Releases engine mount `id` (last reference unmounts); an unknown ID is harmless. */
  unmount(name: string, id: string): Promise<void>;
  get(name: string): Promise<VolumeDetails>;
  list(): Promise<VolumeSummary[]>;
  capabilities(): { scope: 'local' | 'global' };
  /** Create option keys whose values are secrets (ZooKeeper `auth`): masked in debug logs. */
  readonly secretOptions: readonly string[];
  /**
   * Create option keys whose values debug logs may show. Every other value is
   * masked, also under keys the driver refuses (a secret option misspelt).
   * Absent: none is shown.
   */
  readonly plainOptions?: readonly string[];
  /** Secret values currently held, to be redacted from every reply and log line. */
  secrets(): readonly string[];
  /**
   * Secrets one request carries in its name or options, found even for a
   * volume not held or a malformed request, so nothing about it shows them.
   */
  secretsIn?(name: string, options: Readonly<Record<string, string>>): readonly string[];
  /** The name as logs may show it (a simple volume's name can hold a passphrase). */
  displayName?(name: string): string;
}

export interface VolumeBackend {
  /** The Docker driver name this backend serves by default ("simple", "zookeeper"). */
  readonly driver: string;
  /** Option keys whose values are secrets: kept only in the 0600 state file, masked in logs. */
  readonly secretOptions: readonly string[];
  /** Option keys taken whose values are no secret: debug logs show them (VolumeDriver.plainOptions). */
  readonly plainOptions?: readonly string[];
  /** The name with any secret inside it masked, for logs. */
  displayName?(name: string): string;
  /**
   * Every secret a volume carries (in its options or inside its name), to
   * redact everywhere. Must not throw on a malformed name or options.
   */
  secretsOf(name: string, options: Readonly<Record<string, string>>): string[];
  /** Checks a Create request; returns the options to store, filled with defaults. Throws UsageError. */
  normalizeOptions(name: string, options: Readonly<Record<string, string>>): Record<string, string>;
  /** Mounts `volume` at `dir` (an existing empty directory) and returns when it is usable. */
  mount(volume: VolumeRecord, dir: string, ctx: CommandContext): Promise<void>;
  /**
   * Brings a volume already mounted at `dir` back to what its mount promises,
   * where that can lapse while it stays mounted: the simple driver's
   * dynamic-mounts watcher (stopped by an Unmount that failed, or gone with a
   * restart of the plugin) and disks of its own found unmounted.
   */
  refresh?(volume: VolumeRecord, dir: string, ctx: CommandContext): Promise<void>;
  /** Unmounts what `mount` mounted at `dir`. */
  unmount(volume: VolumeRecord, dir: string, ctx: CommandContext): Promise<void>;
  /** False when the mount at `dir` lost the process serving it (a FUSE daemon that died). */
  alive?(dir: string): Promise<boolean>;
  /** Takes down a mount that `alive` found dead, so it can be mounted again. */
  discard?(volume: VolumeRecord, dir: string, ctx: CommandContext): Promise<void>;
  /** Lets go of what the volume held besides its mount (the simple driver frees its disks). */
  forget?(volume: VolumeRecord, ctx: CommandContext): Promise<void>;
  /** Driver facts for `docker volume inspect`, without secrets. */
  status(volume: VolumeRecord): Record<string, unknown>;
}
