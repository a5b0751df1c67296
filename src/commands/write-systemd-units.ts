/** Writes the plugin's systemd unit files (see core/systemd-units.ts) into a unit directory. */
import { join } from 'node:path';
import { writeFileAtomic } from '../adapters/state-file.js';
import { errorMessage, OperationError } from '../core/errors.js';
import type { UnitFile } from '../core/systemd-units.js';
import type { CommandContext } from './context.js';

export interface WriteSystemdUnitsOptions {
  /** e.g. /etc/systemd/system */
  dir: string;
  units: readonly UnitFile[];
}

export interface WriteSystemdUnitsResult {
  files: string[];
  /** What to run next. */
  enableCommand: string;
}

export async function writeSystemdUnits(
  options: WriteSystemdUnitsOptions,
  ctx: CommandContext,
): Promise<WriteSystemdUnitsResult> {
  const files: string[] = [];
  for (const unit of options.units) {
    const path = join(options.dir, unit.fileName);
    try {
      await writeFileAtomic(path, unit.text, 0o644);
    } catch (error) {
      throw new OperationError(`cannot write ${path} (${errorMessage(error)})`, { cause: error });
    }
    ctx.log.info(`wrote ${path}`);
    files.push(path);
  }
  const socket = options.units.find((u) => u.fileName.endsWith('.socket'))?.fileName ?? '';
  return { files, enableCommand: `systemctl daemon-reload && systemctl enable --now ${socket}` };
}
