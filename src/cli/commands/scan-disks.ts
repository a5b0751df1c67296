import { Command } from 'commander';
import { scanDisks } from '../../commands/scan-disks.js';
import type { DiskReport } from '../../core/disk-state.js';
import { humanSize } from '../../core/units.js';
import type { App } from '../app.js';
import { type Output, printResult, table, withSpinner } from '../output.js';
import { INCLUDE_HELP, STATE_DIR_HELP } from './shared-options.js';

/** One line of details per disk state, shared with match-query. */
export function diskDetail(disk: DiskReport, out: Output): string {
  if (disk.state === 'rejected') return out.color.red(disk.reason);
  if (disk.state === 'blank') return out.color.green('blank: can be initialised');
  const parts = [
    disk.thisHost ? 'this host' : `host ${disk.hostname || '?'}`,
    disk.encrypted ? 'LUKS' : 'plain',
    disk.filesystem ?? 'no filesystem',
  ];
  if (disk.mounted) parts.push(`mounted at ${disk.mountPoints.join(', ')}`);
  else if (disk.inUse) parts.push(disk.usage ?? 'in use');
  if (disk.assignment) parts.push(`assigned to ${disk.assignment.volumes.join(', ')}`);
  return [parts.join(', '), ...disk.warnings.map((w) => out.color.yellow(`warning: ${w}`))].join('; ');
}

/** The scan as a table; `include`, the globs it was limited to, named when nothing matched them. */
export function renderDisks(
  disks: readonly DiskReport[],
  out: Output,
  include: readonly string[] = [],
): string {
  if (disks.length === 0) {
    return include.length > 0 ? `no block device matches --include ${include.join(' ')}` : 'no disks found';
  }
  return table(
    out,
    ['DEVICE', 'SIZE', 'STATE', 'LABEL', 'DETAILS'],
    disks.map((d) => [
      d.device,
      humanSize(d.sizeBytes),
      d.state,
      d.state === 'initialised' ? d.label : '-',
      diskDetail(d, out),
    ]),
  );
}

export function scanDisksCommand(getApp: () => App): Command {
  return new Command('scan-disks')
    .description('list block devices and classify each as blank, initialised or rejected')
    .option('--include <glob...>', INCLUDE_HELP)
    .option('--state-dir <dir>', `${STATE_DIR_HELP}, which says which volume holds a disk`)
    .action(async (options: { include?: string[]; stateDir?: string }) => {
      const app = getApp();
      const volumeState = options.stateDir ? { dir: options.stateDir } : {};
      const result = await withSpinner(app.out, 'scanning disks', (progress) =>
        scanDisks({ include: options.include ?? [], volumeState }, app.context({ progress })),
      );
      printResult(app.out, result, (disks, out) => renderDisks(disks, out, options.include ?? []));
    });
}
