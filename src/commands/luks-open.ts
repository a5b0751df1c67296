/**
 * `simplectl luks-open DEVICE`: maps the LUKS data partition of an
 * initialised disk (or a LUKS partition given directly) to
 * /dev/mapper/simple-<PARTUUID>. The passphrase arrives as an option (the CLI
 * reads it from a prompt, --key-file or stdin) and goes to cryptsetup on stdin.
 *
 * Exports: `luksOpen(options, ctx)` → `LuksOpenResult`, `luksTarget(device, ctx)`.
 */
import { existsSync } from 'node:fs';
import { probe } from '../adapters/blkid.js';
import { resolveBlockDevice } from '../adapters/block-devices.js';
import * as cryptsetup from '../adapters/cryptsetup.js';
import { hostIdentity } from '../adapters/machine.js';
import { rereadPartitions } from '../adapters/partx.js';
import { OperationError, UsageError } from '../core/errors.js';
import { isMapperName, kernelName, mapperName } from '../core/names.js';
import type { CommandContext } from './context.js';
import { inspectAndClassify } from './scan-disks.js';

export interface LuksOpenOptions {
  /** An initialised encrypted disk, or the LUKS partition itself. */
  device: string;
  /** The passphrase, or how to ask for it: asked only once the disk is known to be openable. */
  passphrase: string | (() => Promise<string>);
  /** Mapping name; default simple-<PARTUUID of the data partition>. */
  name?: string;
}

export interface LuksOpenResult {
  /** The LUKS partition that was opened. */
  dataPartition: string;
  name: string;
  /** /dev/mapper/<name>: mount or mkfs this. */
  mapper: string;
}

/** The LUKS partition behind `device` and the PARTUUID that names its mapping. */
export async function luksTarget(
  device: string,
  ctx: CommandContext,
): Promise<{ partition: string; uuid: string }> {
  const sys = await resolveBlockDevice(device);
  if (sys.isPartition) {
    const values = (await probe(sys.device, { logger: ctx.log })).values;
    if (values.TYPE !== 'crypto_LUKS') throw new OperationError(`${sys.device} holds no LUKS header`);
    return { partition: sys.device, uuid: values.PART_ENTRY_UUID ?? values.UUID ?? kernelName(sys.device) };
  }
  const disk = await inspectAndClassify(sys, await hostIdentity(), ctx);
  if (disk.state !== 'initialised') {
    throw new OperationError(
      `${sys.device} is not an initialised disk (${disk.state === 'rejected' ? `it ${disk.reason}` : 'it is blank'})`,
    );
  }
  if (!disk.encrypted) throw new OperationError(`${sys.device} is not encrypted (label '${disk.label}')`);
  // Without udev the kernel may not know the partitions yet.
  if (!disk.dataPartition.present) await rereadPartitions(sys.device, ctx.log);
  return { partition: disk.dataPartition.device, uuid: disk.dataPartition.uuid };
}

export async function luksOpen(options: LuksOpenOptions, ctx: CommandContext): Promise<LuksOpenResult> {
  if (options.passphrase === '') throw new UsageError('the passphrase is empty');
  if (options.name !== undefined && !isMapperName(options.name)) {
    throw new UsageError(`'${options.name}' is not a valid mapping name`);
  }
  const target = await luksTarget(options.device, ctx);
  const name = options.name ?? mapperName(target.uuid);
  if (!isMapperName(name)) throw new UsageError(`'${name}' is not a valid mapping name`);
  if (existsSync(`/dev/mapper/${name}`))
    throw new OperationError(`${name} is open already (/dev/mapper/${name})`);
  if (!(await cryptsetup.deviceMapperAvailable(ctx.log))) {
    throw new OperationError('this kernel has no device-mapper: LUKS containers cannot be opened here');
  }
  const passphrase = typeof options.passphrase === 'string' ? options.passphrase : await options.passphrase();
  if (passphrase === '') throw new UsageError('the passphrase is empty');
  ctx.log.addSecret(passphrase);
  ctx.progress(`opening ${target.partition}`);
  const mapper = await cryptsetup.open(target.partition, name, passphrase, ctx.log);
  return { dataPartition: target.partition, name, mapper };
}
