/**
 * The shared half of both drivers: volumes and their options, per-ID mount
 * references, the mount point of each volume under the mount root, and the
 * state file. A backend (simple or zookeeper) only says how to check options
 * and how to mount and unmount one volume. Every change is saved atomically
 * before it is acknowledged; whether something is mounted always comes from
 * the kernel's mount table, never from saved state.
 */
import { randomBytes } from 'node:crypto';
import { rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirs } from '../adapters/make-dirs.js';
import { type MountUse, readMountUse, usersOf } from '../adapters/mount-holders.js';
import { type MountEntry, mountAt, mountsUnder, readMountTable } from '../adapters/mountinfo.js';
import { canonicalDir } from '../adapters/real-path.js';
import { readJson, writeJsonAtomic } from '../adapters/state-file.js';
import type { CommandContext } from '../commands/context.js';
import { errorMessage, OperationError } from '../core/errors.js';
import {
  addVolume,
  emptyState,
  getVolume,
  type PluginState,
  parseState,
  recordOf,
  removeVolume,
  type VolumeRecord,
  withRefs,
} from '../core/plugin-state.js';
import {
  addRef,
  type MountRefs,
  type MountSeen,
  type ReconcileAction,
  reconcileAction,
  releaseRef,
  totalRefs,
  unheldRefs,
} from '../core/refs.js';
import type { VolumeBackend, VolumeDetails, VolumeDriver, VolumeSummary } from './volume-driver.js';

export interface VolumeStoreOptions {
  backend: VolumeBackend;
  /** JSON state file (0600: it may hold ZooKeeper auth). */
  stateFile: string;
  /** Volumes are mounted at `<mountRoot>/<name>`. */
  mountRoot: string;
  ctx: CommandContext;
  now?: () => Date;
  readMounts?: () => Promise<MountEntry[]>;
  /** Milliseconds without a Mount before releaseUnheld() may release a volume's references; 0 never. */
  releaseUnheldMs?: number;
}

export interface ReconcileEntry {
  name: string;
  action: ReconcileAction;
  /** Why the action failed; the volume is left as it was. */
  error?: string;
  /** Not looked at: the plugin was stopped before its turn came; the next start reconciles it. */
  deferred?: true;
}

/** Volumes reconciled at once at start-up; each may spawn a FUSE daemon. */
const RECONCILE_CONCURRENCY = 8;

export class VolumeStore implements VolumeDriver {
  readonly secretOptions: readonly string[];
  readonly plainOptions: readonly string[] | undefined;
  private state: PluginState;
  private saving: Promise<void> = Promise.resolve();
  /** Volumes whose start-up reconciliation is not over: calling the entry waits for it. */
  private readonly reconciling = new Map<string, () => Promise<ReconcileEntry>>();
  private readonly reconcileRunning = new Set<string>();
  private readonly backend: VolumeBackend;
  private readonly stateFile: string;
  private readonly mountRoot: string;
  private readonly ctx: CommandContext;
  private readonly now: () => Date;
  private readonly readMounts: () => Promise<MountEntry[]>;
  private readonly releaseUnheldMs: number;
  private readonly startedAt: number;
  /**
   * When any volume was last asked to Mount, or last answered one, by this
   * process, and how many Mounts are under way: the engine mounts all of a
   * container's volumes before it starts it, so a volume's mount is used by
   * nothing until the last of them is answered.
   */
  private lastMount = 0;
  private mountsUnderWay = 0;
  private warnedBlind = false;
  /** Volumes whose serving process was found dead and reported, until they are served again or mounted. */
  private readonly reportedDead = new Set<string>();
  /** Volumes left mounted after their last Unmount whose unmount unmountUnused already said failed. */
  private readonly stuckMounted = new Set<string>();

  private constructor(options: VolumeStoreOptions, state: PluginState) {
    this.backend = options.backend;
    this.secretOptions = options.backend.secretOptions;
    this.plainOptions = options.backend.plainOptions;
    this.stateFile = options.stateFile;
    this.mountRoot = options.mountRoot;
    this.ctx = options.ctx;
    this.now = options.now ?? (() => new Date());
    this.readMounts = options.readMounts ?? readMountTable;
    this.releaseUnheldMs = options.releaseUnheldMs ?? 0;
    this.startedAt = this.now().getTime();
    this.state = state;
    for (const secret of this.secrets()) this.ctx.log.addSecret(secret);
  }

  /** Loads the state file (an absent file is an empty state). */
  static async open(options: VolumeStoreOptions): Promise<VolumeStore> {
    const raw = await readJson<unknown>(options.stateFile, emptyState());
    // Mount points are compared with the mount table, which holds real paths (/var/run is /run).
    const mountRoot = await canonicalDir(options.mountRoot);
    return new VolumeStore({ ...options, mountRoot }, parseState(raw, options.stateFile));
  }

  /** Where volume `name` is mounted. */
  mountpointOf(name: string): string {
    return join(this.mountRoot, recordOf(this.state, name)?.dir ?? name);
  }

  /** Names of the volumes held, sorted. */
  names(): string[] {
    return Object.keys(this.state.volumes).sort();
  }

  capabilities(): { scope: 'local' } {
    return { scope: 'local' };
  }

  displayName(name: string): string {
    return this.backend.displayName?.(name) ?? name;
  }

  secrets(): string[] {
    return Object.values(this.state.volumes).flatMap((v) => this.backend.secretsOf(v.name, v.options));
  }

  secretsIn(name: string, options: Readonly<Record<string, string>>): string[] {
    return this.backend.secretsOf(name, options);
  }

  async create(name: string, options: Record<string, string>): Promise<void> {
    await this.reconciled(name);
    const normalized = this.backend.normalizeOptions(name, options);
    for (const secret of this.backend.secretsOf(name, normalized)) this.ctx.log.addSecret(secret);
    let created = false;
    await this.update(name, (state) => {
      const result = addVolume(state, name, normalized, this.now(), this.secretFreeDir(name));
      created = result.created;
      return result.state;
    });
    this.ctx.log.debug(
      created ? `created volume ${name}` : `volume ${name} already exists with these options`,
    );
  }

  async remove(name: string): Promise<void> {
    await this.reconciled(name);
    const volume = getVolume(this.state, name);
    const dir = this.mountpointOf(name);
    const held = totalRefs(volume.refs);
    if (held > 0) {
      // The engine only removes volumes none of its containers uses: a user now is another
      // engine's container or a process on the host, which the removal would cut off.
      const users = await this.usersNow(dir);
      if (users) {
        throw new OperationError(
          `volume ${name} is in use: ${users} user(s) of its mount besides this engine's containers ` +
            '(another engine sharing this plugin, or a process inside it); not removed',
        );
      }
      // Nothing uses it: these IDs are ones the engine never released.
      this.ctx.log.warn(
        `removing volume ${name} still holding ${held} mount reference(s) the engine never released (${Object.keys(volume.refs).join(', ')})`,
      );
    }
    if (await this.isMounted(dir)) await this.teardown(volume, dir);
    await this.backend.forget?.(volume, this.ctx);
    await this.update(name, (state) => removeVolume(state, name));
    this.stuckMounted.delete(name);
    // rmdir, never a recursive delete: whatever is in there is not ours to destroy.
    await rmdir(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') this.ctx.log.warn(`could not remove mount point ${dir}: ${error.message}`);
    });
  }

  async mount(name: string, id: string): Promise<string> {
    await this.reconciled(name);
    const volume = getVolume(this.state, name);
    const { refs, first } = addRef(volume.refs, id);
    this.lastMount = this.now().getTime();
    this.mountsUnderWay++;
    try {
      return await this.mountFor(name, id, volume, refs, first);
    } finally {
      this.mountsUnderWay--;
      // Its container starts after this reply: a slow mount must not use up its quiet time.
      this.lastMount = this.now().getTime();
    }
  }

  private async mountFor(
    name: string,
    id: string,
    volume: VolumeRecord,
    refs: MountRefs,
    first: boolean,
  ): Promise<string> {
    const dir = this.mountpointOf(name);
    let mountedHere = false;
    if (!(await this.isServed(volume, dir))) {
      if (!first) this.ctx.log.warn(`volume ${name} is in use but not mounted; mounting it again`);
      await this.mountAt(volume, dir);
      mountedHere = true;
    } else {
      await this.refresh(volume, dir);
    }
    try {
      await this.update(name, (state) => withRefs(state, name, refs));
    } catch (error) {
      if (mountedHere) {
        await this.backend.unmount(volume, dir, this.ctx).catch((e: unknown) => {
          this.ctx.log.error(`could not undo the mount of ${name} at ${dir}: ${errorMessage(e)}`);
        });
      }
      throw error;
    }
    // Served now (a dead mount was mounted afresh above): a death from here on is a new one, and
    // so is an unmount that fails after it.
    this.reportedDead.delete(name);
    this.stuckMounted.delete(name);
    this.ctx.log.debug(`volume ${name} mounted for ${id}; ${totalRefs(refs)} reference(s)`);
    return dir;
  }

  /**
   * backend.refresh of a volume that stays mounted; a failure is logged, not
   * thrown: the volume is served, and its containers are better off with it.
   */
  private async refresh(volume: VolumeRecord, dir: string): Promise<void> {
    await this.backend.refresh?.(volume, dir, this.ctx).catch((error: unknown) => {
      this.ctx.log.warn(`volume ${volume.name} stays mounted as it is: ${errorMessage(error)}`);
    });
  }

  async path(name: string): Promise<string | undefined> {
    await this.reconciled(name);
    getVolume(this.state, name);
    const dir = this.mountpointOf(name);
    return (await this.isServedAt(dir)) ? dir : undefined;
  }

  async unmount(name: string, id: string): Promise<void> {
    await this.reconciled(name);
    const volume = getVolume(this.state, name);
    const released = releaseRef(volume.refs, id);
    if (!released.known) {
      this.ctx.log.warn(`Unmount of volume ${name} by unknown mount ID ${id} ignored`);
      return;
    }
    // Saved first: if the unmount below fails, start-up reconciliation finishes it.
    await this.update(name, (state) => withRefs(state, name, released.refs));
    const dir = this.mountpointOf(name);
    if (released.last && (await this.isMounted(dir))) await this.teardown(volume, dir);
    this.ctx.log.debug(`volume ${name} released by ${id}; ${totalRefs(released.refs)} reference(s) left`);
  }

  /**
   * Logs, once, that the process serving the mount of `name` died while
   * mount references hold it (a FUSE daemon that crashed): containers using
   * it get ENOTCONN until they are restarted, and its next Mount mounts it
   * afresh. Callers serialize this with the volume's requests. True when it
   * logged.
   */
  async reportDead(name: string): Promise<boolean> {
    const volume = recordOf(this.state, name);
    if (volume === undefined || this.reconciling.has(name) || totalRefs(volume.refs) === 0) return false;
    const dir = this.mountpointOf(name);
    if (mountAt(await this.readMounts(), dir) === undefined || (await this.backendAlive(dir))) {
      this.reportedDead.delete(name);
      return false;
    }
    if (this.reportedDead.has(name)) return false;
    this.reportedDead.add(name);
    this.ctx.log.error(
      `volume ${name}: the process serving its mount at ${dir} died; the ${totalRefs(volume.refs)} ` +
        'container mount(s) using it get "Transport endpoint is not connected" until they are restarted, ' +
        'and its next Mount mounts it afresh',
    );
    return true;
  }

  /**
   * Takes down the mount of `name` when no mount reference holds it: its
   * last Unmount could not (a process worked in it, a mount was inside it),
   * and nothing else would until its next Mount or Remove, its disks mounted
   * and their mappings open meanwhile. A failure is logged once. Callers
   * serialize this with the volume's requests. True when it unmounted it.
   */
  async unmountUnused(name: string): Promise<boolean> {
    const volume = recordOf(this.state, name);
    if (volume === undefined || this.reconciling.has(name)) return false;
    const dir = this.mountpointOf(name);
    if (totalRefs(volume.refs) > 0 || !(await this.isMounted(dir))) {
      this.stuckMounted.delete(name);
      return false;
    }
    try {
      await this.teardown(volume, dir);
    } catch (error) {
      if (!this.stuckMounted.has(name)) {
        this.stuckMounted.add(name);
        this.ctx.log.warn(
          `volume ${name} stays mounted at ${dir} with no container using it: ${errorMessage(error)}; trying again now and then`,
        );
      }
      return false;
    }
    this.stuckMounted.delete(name);
    this.ctx.log.info(`volume ${name}: unmounted ${dir}, which its last Unmount could not do`);
    return true;
  }

  /**
   * What unheldRefs needs of `name` but its users, and its mount; undefined
   * when nothing else keeps the references either (reading what every
   * process uses, the costly part, is worth it only then).
   */
  private async unheldCandidate(
    name: string,
  ): Promise<{ volume: VolumeRecord; mount: MountEntry; mounts: MountEntry[]; quietMs: number } | undefined> {
    const volume = recordOf(this.state, name);
    // A volume start-up has not looked at yet is start-up's to settle.
    if (volume === undefined || this.reconciling.has(name)) return undefined;
    const quietMs =
      this.mountsUnderWay > 0 ? 0 : this.now().getTime() - Math.max(this.startedAt, this.lastMount);
    // The mount table is read only for a volume the rest of the rule does not keep already.
    const check = { refs: volume.refs, mounted: true, quietMs, timeoutMs: this.releaseUnheldMs, holders: 0 };
    if (!unheldRefs(check)) return undefined;
    const table = await this.readMounts();
    const mount = mountAt(table, this.mountpointOf(name));
    return mount && { volume, mount, mounts: mountsUnder(table, mount.mountPoint), quietMs };
  }

  /** Whether `name` may hold references the engine will never release, before asking who uses it. */
  async mayBeUnheld(name: string): Promise<boolean> {
    return (await this.unheldCandidate(name)) !== undefined;
  }

  /**
   * Releases the references of `name` that the engine will never release
   * (see unheldRefs: it was killed and restarted while containers held the
   * volume), and unmounts it. Callers serialize this with the volume's
   * requests; `readUse` reads what every process uses, and a sweep over
   * many volumes may read it once for all, before it waits for any volume's
   * turn. True when it released them.
   */
  async releaseUnheld(
    name: string,
    readUse: () => Promise<MountUse | undefined> = readMountUse,
  ): Promise<boolean> {
    const candidate = await this.unheldCandidate(name);
    if (candidate === undefined) return false;
    const { volume, mount, mounts, quietMs } = candidate;
    const use = await readUse();
    if (use === undefined && !this.warnedBlind) {
      this.warnedBlind = true;
      this.ctx.log.warn(
        'cannot see the mount namespaces of other processes (this server runs in a PID namespace of its own): ' +
          'mount references the engine never releases are kept',
      );
    }
    if (use === undefined || usersOf(use, mounts) > 0) return false;
    await this.update(name, (state) => withRefs(state, name, {}));
    this.ctx.log.warn(
      `volume ${name}: released ${totalRefs(volume.refs)} mount reference(s) the engine never released ` +
        `(${Object.keys(volume.refs).join(', ')}): nothing uses its mount, and no Mount of any volume came for ` +
        `${Math.round(quietMs / 1000)} s (was the engine killed with its containers?); unmounting it`,
    );
    await this.teardown(volume, mount.mountPoint);
    return true;
  }

  async get(name: string): Promise<VolumeDetails> {
    await this.reconciled(name);
    const volume = getVolume(this.state, name);
    const dir = this.mountpointOf(name);
    const details: VolumeDetails = {
      name,
      createdAt: volume.createdAt,
      status: { ...this.backend.status(volume), mounts: totalRefs(volume.refs) },
    };
    if (await this.isServedAt(dir)) details.mountpoint = dir;
    return details;
  }

  async list(): Promise<VolumeSummary[]> {
    const table = await this.readMounts();
    return Promise.all(
      this.names().map(async (name) => {
        const dir = this.mountpointOf(name);
        // A mount whose daemon died is no mount point to report (start-up, not waited for here,
        // may not have looked at it yet); the next Mount mounts it afresh.
        return (await this.isServedAt(dir, table)) ? { name, mountpoint: dir } : { name };
      }),
    );
  }

  /**
   * Makes the saved references agree with the mount table after a restart:
   * mounts no one holds are taken down, a held mount whose server died is
   * mounted afresh, and the references of a volume that is not mounted at
   * all are forgotten (see reconcileAction). Failures are reported, never fatal.
   *
   * Returns at once and works in the background, a few volumes at a time: a
   * remount waits up to 10 s for an unreachable ZooKeeper, and the engine
   * must not wait for every volume before the plugin answers it. Until a
   * volume's turn is over, requests naming it wait for it (starting it out
   * of turn); List answers at once.
   * Nothing starts before `after` resolves (the plugin socket is bound:
   * a second server started by mistake must not touch the volumes).
   * Once `stop` is aborted (the plugin is stopping), no volume starts its
   * turn any more: those started are finished, the rest are left as they
   * are for the next start (`deferred`). Stopping then waits for one round
   * of remounts at most, not for every volume in turn.
   */
  startReconcile(
    options: { after?: Promise<void>; concurrency?: number; stop?: AbortSignal } = {},
  ): Promise<ReconcileEntry[]> {
    const after = options.after ?? Promise.resolve();
    const concurrency = options.concurrency ?? RECONCILE_CONCURRENCY;
    const names = this.names();
    const started = new Map<string, Promise<ReconcileEntry>>();
    const start = (name: string): Promise<ReconcileEntry> => {
      let task = started.get(name);
      if (task === undefined) {
        this.reconcileRunning.add(name);
        task = after
          .then(() => this.reconcileVolume(name))
          .finally(() => {
            this.reconciling.delete(name);
            this.reconcileRunning.delete(name);
          });
        started.set(name, task);
      }
      return task;
    };
    for (const name of names) this.reconciling.set(name, () => start(name));
    let next = 0;
    const worker = async () => {
      // A stop asked for before the server listens leaves every volume as it is.
      await after;
      while (next < names.length && !options.stop?.aborted) await start(names[next++]!);
    };
    const workers = Array.from({ length: Math.min(Math.max(1, concurrency), names.length) }, worker);
    // A request naming a volume left behind still starts it (until the server has closed).
    return Promise.all(workers).then(() =>
      Promise.all(
        names.map((name) => started.get(name) ?? { name, action: 'none' as const, deferred: true as const }),
      ),
    );
  }

  /** Names of the volumes whose start-up reconciliation has started and is not over yet. */
  reconcilingNames(): string[] {
    return [...this.reconcileRunning].sort();
  }

  private async reconcileVolume(name: string): Promise<ReconcileEntry> {
    const entry: ReconcileEntry = { name, action: 'none' };
    try {
      const volume = getVolume(this.state, name);
      const dir = this.mountpointOf(name);
      const table = await this.readMounts();
      const seen: MountSeen =
        mountAt(table, dir) === undefined
          ? 'absent'
          : (await this.isServed(volume, dir, table))
            ? 'served'
            : 'dead';
      const action = reconcileAction(volume.refs, seen);
      entry.action = action;
      if (action === 'forget') {
        await this.update(name, (state) => withRefs(state, name, {}));
        this.ctx.log.info(
          `volume ${name} is not mounted (the host restarted, or it was unmounted by hand): ` +
            `forgot ${totalRefs(volume.refs)} mount reference(s) no container can hold`,
        );
      } else if (action === 'remount') {
        await this.mountAt(volume, dir);
        this.ctx.log.info(
          `remounted volume ${name} at ${dir}: ${totalRefs(volume.refs)} mount(s) still use it`,
        );
      } else if (action === 'unmount') {
        await this.teardown(volume, dir);
        this.ctx.log.info(`unmounted volume ${name} at ${dir}: nothing uses it`);
      } else if (action === 'keep') {
        this.ctx.log.info(`volume ${name} is still mounted at ${dir} for ${totalRefs(volume.refs)} mount(s)`);
        await this.refresh(volume, dir);
      }
    } catch (error) {
      entry.error = errorMessage(error);
      const next = entry.action === 'remount' ? '; the next Mount of it tries again' : '';
      this.ctx.log.error(`start-up: could not ${entry.action} volume ${name}: ${entry.error}${next}`);
    }
    return entry;
  }

  /** Users of the mount at `dir` now (usersOf); undefined when it is not mounted or the server cannot tell. */
  private async usersNow(dir: string): Promise<number | undefined> {
    const table = await this.readMounts();
    if (!mountAt(table, dir)) return undefined;
    const use = await readMountUse();
    return use && usersOf(use, mountsUnder(table, dir));
  }

  /** Waits for the start-up reconciliation of `name`, starting it now if its turn has not come. */
  private async reconciled(name: string): Promise<void> {
    await this.reconciling.get(name)?.();
  }

  /** Waits for state writes in flight. */
  async flush(): Promise<void> {
    await this.saving;
  }

  /**
   * A directory name for a volume whose name shows a secret differently than
   * it is (a simple volume's inline passphrase): the masked name and a random
   * suffix, so the mount table never shows the secret. Undefined otherwise.
   */
  private secretFreeDir(name: string): string | undefined {
    const shown = this.displayName(name);
    if (shown === name) return undefined;
    const masked = shown
      .replace(/\*+/g, 'hidden')
      .replace(/[^A-Za-z0-9_.-]+/g, 'x')
      .replace(/\.\.+/g, '.')
      .slice(0, 200);
    return `${masked}-${randomBytes(6).toString('hex')}`;
  }

  private async isMounted(dir: string): Promise<boolean> {
    return mountAt(await this.readMounts(), dir) !== undefined;
  }

  /** True when `dir` is mounted and its server runs; changes nothing (isServed takes a dead one down). */
  private async isServedAt(dir: string, table?: MountEntry[]): Promise<boolean> {
    if (mountAt(table ?? (await this.readMounts()), dir) === undefined) return false;
    return this.backendAlive(dir);
  }

  /**
   * True when `dir` is mounted (in `table`, if given: the mount table just
   * read) and its server still runs. A mount whose FUSE daemon died (every
   * access fails with ENOTCONN) is taken down here so that it can be mounted
   * again.
   */
  private async isServed(volume: VolumeRecord, dir: string, table?: MountEntry[]): Promise<boolean> {
    const mounts = table ?? (await this.readMounts());
    if (await this.isServedAt(dir, mounts)) return true;
    if (mountAt(mounts, dir) === undefined) return false;
    this.ctx.log.warn(`volume ${volume.name}: the process serving ${dir} is gone; mounting it afresh`);
    await this.backend.discard?.(volume, dir, this.ctx);
    return this.isMounted(dir);
  }

  private async backendAlive(dir: string): Promise<boolean> {
    return !this.backend.alive || this.backend.alive(dir);
  }

  private async mountAt(volume: VolumeRecord, dir: string): Promise<void> {
    await makeDirs(dir, 0o755);
    await this.backend.mount(volume, dir, this.ctx);
  }

  private async teardown(volume: VolumeRecord, dir: string): Promise<void> {
    try {
      await this.backend.unmount(volume, dir, this.ctx);
    } catch (error) {
      throw new OperationError(`could not unmount volume ${volume.name} at ${dir}: ${errorMessage(error)}`, {
        cause: error,
        detail: error instanceof OperationError ? error.detail : undefined,
      });
    }
  }

  /**
   * Applies `change` and saves. Requests on one volume are serialized by the
   * router, so on a failed save only that volume's record is put back.
   */
  private async update(name: string, change: (state: PluginState) => PluginState): Promise<void> {
    const before = recordOf(this.state, name);
    this.state = change(this.state);
    // Each write saves the newest state, and writes never overlap, so the last one on disk is the newest.
    const write = this.saving.then(() => writeJsonAtomic(this.stateFile, this.state));
    this.saving = write.catch(() => {});
    try {
      await write;
    } catch (error) {
      const volumes = { ...this.state.volumes };
      if (before) volumes[name] = before;
      else delete volumes[name];
      this.state = { ...this.state, volumes };
      throw new OperationError(`cannot save plugin state to ${this.stateFile}: ${errorMessage(error)}`, {
        cause: error,
      });
    }
  }
}
