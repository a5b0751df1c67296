import { Command } from 'commander';
import { type VolumeMountResult, volumeMount } from '../../commands/volume-mount.js';
import { type VolumeStatusResult, volumeStatus } from '../../commands/volume-status.js';
import { type VolumeReleaseResult, volumeRelease, volumeUmount } from '../../commands/volume-umount.js';
import { parseOptionPairs } from '../../core/query.js';
import type { App } from '../app.js';
import { type Output, printResult, table, withSpinner } from '../output.js';
import { INCLUDE_HELP, STATE_DIR_HELP } from './shared-options.js';

function renderMount(r: VolumeMountResult, out: Output): string {
  const what = r.alreadyMounted ? 'is already mounted' : 'mounted';
  const lines = [
    `volume ${r.volume} ${what} at ${r.dir} (read-only root, ${r.disks.length} disk${r.disks.length === 1 ? '' : 's'})`,
  ];
  if (r.disks.length > 0) {
    lines.push(
      table(
        out,
        ['DIRECTORY', 'DEVICE', 'UUID', 'FS'],
        r.disks.map((d) => [d.name, d.device, d.uuid, d.fsType + (d.encrypted ? ' (LUKS)' : '')]),
      ),
    );
  }
  if (r.placeholders.length > 0) lines.push(`empty placeholders: ${r.placeholders.join(' ')}`);
  if (r.watcher) lines.push(`dynamic-mounts: watcher pid ${r.watcher.pid}, log ${r.watcher.log}`);
  return lines.join('\n');
}

function renderStatus(r: VolumeStatusResult, out: Output): string {
  if (r.volumes.length === 0) return `no volumes (state: ${r.stateDir})`;
  const lines: string[] = [];
  for (const v of r.volumes) {
    const flags = [v.exclusive ? 'exclusive' : 'shared', ...(v.dynamic ? ['dynamic-mounts'] : [])];
    if (v.watcher)
      flags.push(v.watcher.alive ? `watcher pid ${v.watcher.pid}` : out.color.red('watcher not running'));
    const where = v.mounted ? `mounted at ${v.dir}` : 'not mounted';
    lines.push(`${out.color.bold(v.volume)}: ${where} (${flags.join(', ')})`);
    const rows = v.disks.map((d) => [
      d.name ?? '-',
      d.number === null ? '-' : String(d.number),
      d.device + (d.present ? '' : out.color.red(' (absent)')),
      d.uuid,
      d.mountPoint ?? out.color.dim('not mounted'),
    ]);
    for (const p of v.placeholders)
      rows.push([p, p.replace(/^\D*/, ''), out.color.dim('(empty placeholder)'), '', '']);
    if (rows.length === 0) lines.push('  no disks');
    else {
      const t = table(out, ['DIRECTORY', 'NUMBER', 'DEVICE', 'UUID', 'MOUNT POINT'], rows);
      lines.push(t.replace(/^/gm, '  '));
    }
  }
  if (r.assignments.length > 0) {
    lines.push('', out.color.bold('assignments:'));
    const t = table(
      out,
      ['DEVICE', 'UUID', 'VOLUMES'],
      r.assignments.map((a) => [a.device, a.uuid, a.volumes.join(', ')]),
    );
    lines.push(t.replace(/^/gm, '  '));
  }
  for (const note of r.notes) lines.push(out.color.yellow(`note: ${note}`));
  return lines.join('\n');
}

export function volumeMountCommand(getApp: () => App): Command {
  return new Command('mount')
    .description('assemble a volume from the disks matching QUERY and mount it at DIR')
    .argument('<query>', 'volume query, e.g. label.fast_min-disks.2')
    .argument('<dir>', 'where the volume root (a read-only tmpfs) is mounted; created if missing')
    .option('--include <glob...>', INCLUDE_HELP)
    .option(
      '-o, --opt <key=value...>',
      'extra settings merged over QUERY (a passphrase, cipher or hash may hold what QUERY cannot)',
    )
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .action(
      async (
        query: string,
        dir: string,
        options: { include?: string[]; opt?: string[]; stateDir?: string },
      ) => {
        const app = getApp();
        const result = await withSpinner(app.out, `mounting ${dir}`, (progress) =>
          volumeMount(
            {
              query,
              dir,
              options: parseOptionPairs(options.opt ?? []),
              include: options.include ?? [],
              ...(options.stateDir ? { stateDir: options.stateDir } : {}),
            },
            app.context({ progress }),
          ),
        );
        printResult(app.out, result, renderMount);
      },
    );
}

export function volumeUmountCommand(getApp: () => App): Command {
  return new Command('umount')
    .description('unmount a volume; its disks stay assigned to it unless --release')
    .argument('<dir>', 'the volume root given to mount')
    .option('--release', 'also release the disks, so other volumes may get them', false)
    .option(
      '--lazy',
      "detach disks still in use now; the kernel finishes when they are released (mounts inside them that are not the volume's are still refused)",
      false,
    )
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .action(async (dir: string, options: { release: boolean; lazy: boolean; stateDir?: string }) => {
      const app = getApp();
      const result = await volumeUmount(
        {
          dir,
          release: options.release,
          lazy: options.lazy,
          ...(options.stateDir ? { stateDir: options.stateDir } : {}),
        },
        app.context(),
      );
      printResult(
        app.out,
        result,
        (r) => `unmounted ${r.dir}${r.released ? '; its disks are released' : ''}`,
      );
    });
}

export function volumeReleaseCommand(getApp: () => App): Command {
  return new Command('release')
    .description('forget an unmounted volume and free its disks for other volumes')
    .argument('<query>', 'the volume name as given to mount')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .action(async (name: string, options: { stateDir?: string }) => {
      const app = getApp();
      const result = await volumeRelease(
        { name, ...(options.stateDir ? { stateDir: options.stateDir } : {}) },
        app.context(),
      );
      printResult(app.out, result, (r: VolumeReleaseResult) =>
        r.disks.length === 0
          ? `volume ${r.volume} held no disks`
          : `released ${r.disks.length} disk(s) of ${r.volume}`,
      );
    });
}

export function volumeStatusCommand(getApp: () => App): Command {
  return new Command('status')
    .description('list volumes, their disks and numbers, and disk assignments')
    .option('--state-dir <dir>', STATE_DIR_HELP)
    .action(async (options: { stateDir?: string }) => {
      const app = getApp();
      const result = await volumeStatus(
        options.stateDir ? { stateDir: options.stateDir } : {},
        app.context(),
      );
      printResult(app.out, result, renderStatus);
    });
}
