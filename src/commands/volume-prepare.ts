/**
 * Turns a disk the matcher chose into an initialised disk of the volume's
 * label: used as it is, or initialised (a blank disk) or claimed (an
 * `untyped` one, README "Automatic typing") through the initialize-disk
 * handler. The query itself is the operator's consent here: the matcher only
 * picks such disks to reach min-disks, and never with `initialized`.
 */
import type { InitialisedDisk } from '../core/disk-state.js';
import { OperationError } from '../core/errors.js';
import type { ChosenDisk } from '../core/match.js';
import { initializeDisk } from './initialize-disk.js';
import { type AssembleContext, saidOnce, type VolumeSpec } from './volume-assemble.js';

export async function prepareDisk(
  spec: VolumeSpec,
  disk: ChosenDisk,
  ac: AssembleContext,
): Promise<InitialisedDisk> {
  if (disk.action === 'use' && disk.state === 'initialised') return disk;
  const verb = disk.action === 'relabel' ? 'claiming the untyped disk' : 'initialising the blank disk';
  ac.ctx.progress(`${verb} ${disk.device}`);
  ac.ctx.log.info(`volume needs ${disk.device}: ${verb} as '${spec.query.label}'`);
  const result = await initializeDisk(
    // The caller holds the state lock: initialize-disk reads (and updates) the assignments through it.
    { device: disk.device, query: spec.query, host: ac.host, volumeState: { session: ac.session } },
    { ...saidOnce(ac), confirm: async () => true },
  );
  const after = result.disk;
  if (after?.state !== 'initialised') {
    throw new OperationError(`${disk.device} was initialised but does not read back as an initialised disk`);
  }
  return after;
}
