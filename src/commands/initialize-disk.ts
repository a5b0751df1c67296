/**
 * `simplectl initialize-disk DEVICE QUERY`: the simple GPT layout, the
 * metadata blob, LUKS when the query has a passphrase or key, and a
 * filesystem. Refuses disks that are not blank unless `force` (an `untyped`
 * disk may be claimed for another label without it: README "Automatic
 * typing"), and always refuses a disk in use or one that cannot be read.
 * Asks through ctx.confirm before writing (the original asked only when told
 * not to). Holds the disk's lock
 * (adapters/disk-lock.ts) from its first look at the disk to its last write.
 *
 * Exports: `initializeDisk(options, ctx)` → `InitializeDiskResult`.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  assertNotBusy,
  layoutFingerprint,
  listBlockDevices,
  resolveDisk,
  writeDevice,
} from '../adapters/block-devices.js';
import * as cryptsetup from '../adapters/cryptsetup.js';
import { lockDisk } from '../adapters/disk-lock.js';
import { hasCommand, run, ToolError } from '../adapters/exec.js';
import { queryPassphrase } from '../adapters/keys.js';
import { type HostIdentity, hostIdentity } from '../adapters/machine.js';
import { forgetArgs, forgetPartitions, rereadArgs, rereadPartitions } from '../adapters/partx.js';
import type { SysBlockDevice } from '../adapters/sysfs.js';
import { loadState, resolveStateDir, type StateSession, withStateLock } from '../adapters/volume-state.js';
import { diskHolders, forgetDisk, type VolumeRecord } from '../core/assignments.js';
import {
  DEFAULT_FILESYSTEM,
  type InitStep,
  minimumDiskBytes,
  mkfsArgs,
  planInitialisation,
} from '../core/disk-plan.js';
import { type DiskReport, diskId, MIN_DISK_BYTES, NO_PARTITIONS } from '../core/disk-state.js';
import { OperationError } from '../core/errors.js';
import type { DiskMetadata } from '../core/metadata.js';
import {
  formatQuery,
  parseQuery,
  redactQuery,
  UNTYPED_LABEL,
  type VolumeQuery,
  wantsEncryption,
} from '../core/query.js';
import { formatCommand } from '../core/redact.js';
import { humanSize } from '../core/units.js';
import type { CommandContext } from './context.js';
import { inspectAndClassify } from './scan-disks.js';
import { currentDiskseq } from './volume-disks.js';

export interface InitializeDiskOptions {
  /** Whole disk: /dev/sdb, sdb, or a /dev/disk/by-id/… link. */
  device: string;
  /** Settings for the disk; `label` defaults to `untyped` here. */
  query: string | VolumeQuery;
  /** The plugin's `-o` options, merged over the query string. */
  options?: Readonly<Record<string, string>>;
  /** Erase a disk that is not blank. Never overrides "in use". */
  force?: boolean;
  /** Check and plan, change nothing. */
  dryRun?: boolean;
  host?: HostIdentity;
  env?: NodeJS.ProcessEnv;
  /**
   * Volume assignments (README "Volumes"): the state directory (default
   * SIMPLECTL_STATE_DIR or /var/lib/simplectl) to read, and to update under its
   * lock once an assigned disk is erased; or the session of a caller that holds
   * that lock already (a volume mount initialising a disk).
   */
  volumeState?: { dir?: string } | { session: StateSession };
}

export interface InitializeDiskResult {
  device: string;
  label: string;
  filesystem: string;
  encrypted: boolean;
  dryRun: boolean;
  /** What the disk was before. */
  previousState: DiskReport['state'];
  /** An `untyped` disk claimed for another label (its data erased). */
  relabelled: boolean;
  /** Volumes the disk was assigned to (names with any passphrase masked); [] when none. */
  assignedTo: string[];
  /** Whether those assignments were dropped (the disk was erased); false on a dry run. */
  released: boolean;
  metadata: DiskMetadata;
  metadataPartition: { device: string; uuid: string };
  dataPartition: { device: string; uuid: string };
  /**
   * Steps in order, with the command lines each runs (none for writing the
   * metadata, which is written directly; never a passphrase).
   */
  steps: { description: string; commands: string[] }[];
  /** The disk as scan-disks sees it afterwards (absent on a dry run). */
  disk?: DiskReport;
}

function describe(report: DiskReport): string {
  if (report.state === 'rejected') return `it ${report.reason}`;
  if (report.state === 'initialised') {
    return `it is initialised already (label '${report.label}', host '${report.hostname || '?'}')`;
  }
  return 'it is blank';
}

/** The cryptsetup luksFormat settings the query asks for (shared by the run and its dry-run listing). */
function luksFormatOptions(
  query: VolumeQuery,
  env: NodeJS.ProcessEnv | undefined,
): cryptsetup.LuksFormatOptions {
  return {
    cipher: query.encryptionCipher,
    keySizeBits: query.encryptionKeySize,
    hash: query.encryptionHash,
    ...(env ? { env } : {}),
  };
}

/**
 * The command lines a step runs, built by the same adapter functions that run
 * them, so a dry run shows exactly what a real run executes. Passphrases never
 * appear: they go to cryptsetup on standard input (`--key-file -`).
 */
function stepCommands(step: InitStep, query: VolumeQuery, env: NodeJS.ProcessEnv | undefined): string[] {
  switch (step.kind) {
    case 'run':
      return [formatCommand(step.command, step.args)];
    case 'forget-partitions':
      return [formatCommand('partx', forgetArgs(step.device))];
    case 'reread-partitions':
      return rereadArgs(step.device).map((args) => formatCommand('partx', args));
    case 'luks-format':
      return [
        formatCommand('cryptsetup', cryptsetup.luksFormatArgs(step.device, luksFormatOptions(query, env))),
      ];
    case 'luks-open':
      return [formatCommand('cryptsetup', cryptsetup.openArgs(step.device, step.name))];
    case 'mkfs':
      return [formatCommand('mkfs', mkfsArgs(step.filesystem, step.device))];
    case 'luks-close':
      return [formatCommand('cryptsetup', cryptsetup.closeArgs(step.name))];
    case 'write-metadata':
      return [];
  }
}

/** The volumes whose state assigns `disk` (only an initialised disk has the identity they record). */
async function volumesHolding(
  disk: DiskReport,
  scope: InitializeDiskOptions['volumeState'],
): Promise<VolumeRecord[]> {
  if (disk.state !== 'initialised') return [];
  const state =
    scope && 'session' in scope ? scope.session.state : await loadState(resolveStateDir(scope?.dir));
  return diskHolders(state, diskId(disk));
}

/** "volume a (exclusive), volume b": names masked, as everywhere a volume is shown. */
function describeHolders(holders: readonly VolumeRecord[]): string {
  return holders.map((v) => `volume ${redactQuery(v.name)}${v.exclusive ? ' (exclusive)' : ''}`).join(', ');
}

/**
 * Drops an erased disk from every volume, under the state lock: its data
 * partition's UUID, by which volumes know it, is gone with the old table.
 */
async function forgetErasedDisk(
  id: string,
  scope: InitializeDiskOptions['volumeState'],
  purpose: string,
): Promise<void> {
  if (scope && 'session' in scope) {
    await scope.session.commit(forgetDisk(scope.session.state, id));
    return;
  }
  await withStateLock(resolveStateDir(scope?.dir), { purpose }, (session) =>
    session.commit(forgetDisk(session.state, id)),
  );
}

/** Another device on which an initialised disk with id `id` is found now, if any. */
async function stillCarriedBy(
  id: string,
  device: string,
  host: HostIdentity,
  ctx: CommandContext,
): Promise<string | undefined> {
  // Every whole device, loop devices included: a copy's original may well be an image file.
  for (const other of await listBlockDevices({ include: ['*'] })) {
    if (other.device === device) continue;
    const report = await inspectAndClassify(other, host, ctx).catch(() => undefined);
    if (report?.state === 'initialised' && diskId(report) === id) return other.device;
  }
  return undefined;
}

async function requireTools(tools: string[]): Promise<void> {
  const missing: string[] = [];
  for (const tool of tools) if (!(await hasCommand(tool))) missing.push(tool);
  if (missing.length > 0) {
    throw new OperationError(
      `initialize-disk needs ${missing.join(', ')}, not found in PATH (Debian: gdisk, util-linux, cryptsetup-bin, e2fsprogs/xfsprogs/btrfs-progs)`,
    );
  }
}

export async function initializeDisk(
  options: InitializeDiskOptions,
  ctx: CommandContext,
): Promise<InitializeDiskResult> {
  const query =
    typeof options.query === 'string'
      ? parseQuery(options.query, options.options ?? {}, { requireLabel: false })
      : options.query;
  const host = options.host ?? (await hostIdentity());
  const sys = await resolveDisk(options.device);
  // A dry run takes the lock too: it must fail where the real run would.
  const lock = await lockDisk(
    sys.name,
    sys.device,
    `initialize-disk ${sys.device}${options.dryRun ? ' --dry-run' : ''}`,
  );
  try {
    return await initialise(options, query, host, sys, ctx);
  } finally {
    await lock.release();
  }
}

/** What tells the medium behind a device name from another put there since. */
interface MediaIdentity {
  devNumber: string;
  sizeBytes: number;
  /** The kernel's count of media seen (null where it keeps none). */
  diskseq: number | null;
  /** The partition table and first sectors (layoutFingerprint). */
  layout: string;
}

async function mediaIdentity(sys: SysBlockDevice): Promise<MediaIdentity> {
  return {
    devNumber: sys.devNumber,
    sizeBytes: sys.sizeBytes,
    diskseq: await currentDiskseq(sys.device),
    layout: await layoutFingerprint(sys.device, sys.sizeBytes),
  };
}

/** How `now` differs from `before`, or undefined when it is the same medium as far as can be told. */
function mediaChange(before: MediaIdentity, now: MediaIdentity): string | undefined {
  if (now.devNumber !== before.devNumber) return `device number ${now.devNumber}, was ${before.devNumber}`;
  if (now.diskseq !== before.diskseq) return `another medium: diskseq ${now.diskseq}, was ${before.diskseq}`;
  if (now.sizeBytes !== before.sizeBytes) {
    return `size ${humanSize(now.sizeBytes)}, was ${humanSize(before.sizeBytes)}`;
  }
  if (now.layout !== before.layout) return 'its partition table or first sectors were rewritten';
  return undefined;
}

/** Everything after the disk is found and locked; a dry run makes every check and stops before writing. */
async function initialise(
  options: InitializeDiskOptions,
  query: VolumeQuery,
  host: HostIdentity,
  sys: SysBlockDevice,
  ctx: CommandContext,
): Promise<InitializeDiskResult> {
  const device = sys.device;
  const before = await inspectAndClassify(sys, host, ctx);
  if (before.inUse) {
    throw new OperationError(
      `${device} is in use (${before.usage ?? 'held by another program'}); unmount or close it first. Nothing was changed.`,
    );
  }
  if (before.state === 'rejected' && before.readError !== undefined) {
    // What is on it is unknown: erasing it would be a guess, so --force does not override this.
    throw new OperationError(
      `${device} cannot be read (${before.readError}); it is not initialised, with or without --force. Nothing was changed.`,
    );
  }
  // Refusals that --force cannot lift come before the "not blank" one, which suggests it.
  if (sys.readOnly) {
    throw new OperationError(
      `${device} is read-only (the kernel refuses writes to it), so it cannot be initialised; ` +
        'make it writable first. Nothing was changed.',
    );
  }
  if (!sys.partitionable) {
    throw new OperationError(
      `${device} ${NO_PARTITIONS}, so it cannot be initialised; give a whole disk. Nothing was changed.`,
    );
  }
  const encrypted = wantsEncryption(query);
  const filesystem = query.filesystem ?? DEFAULT_FILESYSTEM;
  const minimum = Math.max(MIN_DISK_BYTES, minimumDiskBytes(filesystem, encrypted));
  if (sys.sizeBytes < minimum) {
    throw new OperationError(
      `${device} (${humanSize(sys.sizeBytes)}) is too small for ${filesystem}${encrypted ? ' inside LUKS' : ''}: ` +
        `it needs at least ${humanSize(minimum)}. Nothing was changed.`,
    );
  }
  const holders = await volumesHolding(before, options.volumeState);
  if (holders.length > 0 && !options.force) {
    throw new OperationError(
      `${device} is assigned to ${describeHolders(holders)}; initialising it would erase that volume's disk. ` +
        'Release it first (simplectl release VOLUME, or umount --release) or use --force. Nothing was changed.',
    );
  }
  const relabel =
    before.state === 'initialised' && before.label === UNTYPED_LABEL && query.label !== UNTYPED_LABEL;
  if (before.state !== 'blank' && !options.force && !relabel) {
    throw new OperationError(
      `${device} is not blank: ${describe(before)}. Use --force to erase it. Nothing was changed.`,
    );
  }
  const plan = planInitialisation({
    device,
    sizeBytes: sys.sizeBytes,
    query,
    host,
    wipe: before.state !== 'blank',
    ...(before.state === 'initialised' ? { previous: before.metadata } : {}),
    partitionUuids: { metadata: randomUUID(), data: randomUUID() },
  });
  // Everything that can fail without touching the disk happens before the first write.
  const passphrase = await queryPassphrase(query, {
    log: ctx.log,
    ...(options.env ? { env: options.env } : {}),
  });
  await requireTools([
    'sgdisk',
    'partx',
    'wipefs',
    `mkfs.${plan.filesystem}`,
    ...(encrypted ? ['cryptsetup'] : []),
  ]);
  if (encrypted && !(await cryptsetup.deviceMapperAvailable(ctx.log, { load: !options.dryRun }))) {
    throw new OperationError(
      'encryption needs the kernel device-mapper (to create the filesystem inside LUKS), which is not available ' +
        'on this host (/proc/misc lists no device-mapper, and dm_mod cannot be loaded). Nothing was changed.',
    );
  }
  if (encrypted) {
    await cryptsetup
      .checkFormatSettings({ ...luksFormatOptions(query, options.env), logger: ctx.log })
      .catch((error: unknown) => {
        throw new OperationError(`${(error as Error).message}. Nothing was changed.`, { cause: error });
      });
  }
  const result: InitializeDiskResult = {
    device,
    label: plan.label,
    filesystem: plan.filesystem,
    encrypted,
    dryRun: options.dryRun ?? false,
    previousState: before.state,
    relabelled: relabel,
    assignedTo: holders.map((v) => redactQuery(v.name)),
    released: false,
    metadata: plan.metadata,
    metadataPartition: { device: plan.metadataPartition, uuid: plan.partitionUuids.metadata },
    dataPartition: { device: plan.dataPartition, uuid: plan.partitionUuids.data },
    steps: plan.steps.map((s) => ({
      description: s.description,
      commands: stepCommands(s, query, options.env),
    })),
  };
  if (options.dryRun) {
    await assertNotBusy(device);
    return result;
  }

  const assigned =
    holders.length > 0 ? ` It is assigned to ${describeHolders(holders)}, which loses it.` : '';
  const lost =
    before.state === 'blank' ? 'It is blank.' : `Everything on it is erased: ${describe(before)}.${assigned}`;
  // The answer may come much later (a prompt waits as long as it must): the disk must still be
  // the one inspected, not another put in its place under the same name meanwhile.
  const asked = await mediaIdentity(sys);
  const ok = await ctx.confirm(
    `Initialise ${device} (${humanSize(sys.sizeBytes)}) as '${plan.label}' with ${plan.filesystem}` +
      `${encrypted ? ' inside LUKS' : ''}? ${lost}`,
  );
  if (!ok) throw new OperationError('initialize-disk cancelled; nothing was changed');
  await assertNotBusy(device);
  const answered = await mediaIdentity(await resolveDisk(device));
  const change = mediaChange(asked, answered);
  if (change) {
    throw new OperationError(
      `${device} changed while the question was open (${change}), so it may not be the disk that was inspected. ` +
        'Nothing was changed; run initialize-disk again to look at the disk there now.',
    );
  }

  ctx.log.info(`initialising ${device} with ${formatQuery(query, { redact: true })}`);
  const untouched = answered.layout;
  // Once the old table is gone, so is the identity the volumes know the disk by.
  const release = async (): Promise<string> => {
    if (holders.length === 0 || before.state !== 'initialised') return '';
    // scan-disks tells an operator to give a copy of a disk (dd, a cloned image) new UUIDs this
    // way: the disk the volumes hold is then the one still carrying the old UUID, and keeps its
    // place. A second path to this very disk shows the erase as well, and frees nothing.
    const original = await stillCarriedBy(diskId(before), device, host, ctx);
    if (original !== undefined) {
      const note = `${device} was a copy of ${original}, which keeps its place in ${describeHolders(holders)}`;
      ctx.log.info(note);
      return ` ${note}.`;
    }
    await forgetErasedDisk(diskId(before), options.volumeState, `initialize-disk ${device}`);
    result.released = true;
    const note = `${device} was assigned to ${describeHolders(holders)}; it is released from it`;
    ctx.log.warn(note);
    return ` ${note}.`;
  };
  let openMapping: string | null = null;
  for (const step of plan.steps) {
    ctx.progress(step.description);
    ctx.log.info(step.description);
    try {
      await runStep(step, query, passphrase, ctx, options.env);
      if (step.kind === 'luks-open') openMapping = step.name;
      if (step.kind === 'luks-close') openMapping = null;
    } catch (error) {
      if (openMapping) await cryptsetup.close(openMapping, ctx.log).catch(() => {});
      const message = error instanceof Error ? error.message : String(error);
      // Say what the disk holds now from what it reads back, not from how far the steps got:
      // a tool may fail without writing anything (or report success without writing).
      const now = await layoutFingerprint(device, sys.sizeBytes).catch(() => undefined);
      let outcome: string;
      if (now === untouched) {
        outcome = 'The disk reads back unchanged (partition table, signatures and metadata as before).';
      } else {
        const released = await release().catch(
          (e: unknown) => ` Its assignment could not be released: ${(e as Error).message}.`,
        );
        outcome = `The disk is now ${step.ifFails}; run initialize-disk --force to start over.${released}`;
      }
      throw new OperationError(
        `initialising ${device} failed while ${step.description}: ${message}. ${outcome}`,
        {
          cause: error,
          ...(error instanceof ToolError ? { detail: error.detail } : {}),
        },
      );
    }
  }
  await release();
  result.disk = await inspectAndClassify(device, host, ctx);
  return result;
}

async function runStep(
  step: InitStep,
  query: VolumeQuery,
  passphrase: string | null,
  ctx: CommandContext,
  env: NodeJS.ProcessEnv | undefined,
): Promise<void> {
  const log = ctx.log;
  switch (step.kind) {
    case 'run':
      try {
        await run(step.command, step.args, { logger: log, purpose: step.description });
      } catch (error) {
        if (!step.optional) throw error;
        log.debug(`${step.description}: skipped (${(error as Error).message})`);
      }
      return;
    case 'forget-partitions':
      await forgetPartitions(step.device, log);
      return;
    case 'reread-partitions': {
      await rereadPartitions(step.device, log);
      const missing = [1, 2]
        .map((n) => `${step.device}${/\d$/.test(step.device) ? 'p' : ''}${n}`)
        .filter((p) => !existsSync(p));
      if (missing.length > 0)
        throw new OperationError(`the kernel shows no ${missing.join(', ')} after re-reading`);
      return;
    }
    case 'write-metadata': {
      const buffer = Buffer.alloc(step.padTo);
      step.bytes.copy(buffer);
      await writeDevice(step.device, 0, buffer);
      return;
    }
    case 'luks-format':
      await cryptsetup.luksFormat(step.device, passphrase!, {
        ...luksFormatOptions(query, env),
        logger: log,
      });
      return;
    case 'luks-open':
      await cryptsetup.open(step.device, step.name, passphrase!, log);
      return;
    case 'mkfs':
      await run('mkfs', mkfsArgs(step.filesystem, step.device), { logger: log, purpose: step.description });
      return;
    case 'luks-close':
      await cryptsetup.close(step.name, log);
      return;
  }
}
