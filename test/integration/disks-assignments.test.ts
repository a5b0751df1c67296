/**
 * scan-disks and match-query tell the truth about disks volumes hold: a disk
 * assigned to another exclusive volume is shown as such and does not match,
 * exactly as `mount` would refuse it; the volume that holds it still gets it.
 * Volume names are shown with any passphrase masked.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { saveState } from '../../src/adapters/volume-state.js';
import type { MatchQueryResult } from '../../src/commands/match-query.js';
import { assignDisks, emptyState, ensureVolume } from '../../src/core/assignments.js';
import type { DiskReport } from '../../src/core/disk-state.js';
import { cli } from '../fixtures/cli.js';
import { missing, scratchDir } from '../fixtures/environment.js';
import { initialisedDisk, kernelName, sha256File, TEST_ENV } from '../fixtures/simple-disks.js';

describe.skipIf(missing({ root: true, loop: true }))('disk assignments in scan-disks and match-query', () => {
  it('a disk another volume holds is shown as held and does not match, as mount would refuse it', async () => {
    const label = `held${Math.random().toString(36).slice(2, 8)}`;
    const disk = await initialisedDisk(`label.${label}`);
    const stateDir = join(scratchDir('assign'), 'state');
    const root = join(scratchDir('assign-vol'), 'v');
    const env = { ...TEST_ENV, SIMPLECTL_STATE_DIR: stateDir };
    const holder = `label.${label}`;
    const scope = ['--include', kernelName(disk)];
    expect((await cli('simplectl', ['mount', holder, root, ...scope], { env })).exitCode).toBe(0);
    expect((await cli('simplectl', ['umount', root], { env })).exitCode).toBe(0);
    const before = await sha256File(disk.file);

    const scan = await cli('simplectl', ['--json', 'scan-disks', ...scope], { env });
    expect((JSON.parse(scan.stdout) as DiskReport[])[0]?.assignment).toEqual({
      volumes: [holder],
      exclusive: true,
    });
    const table = await cli('simplectl', ['scan-disks', ...scope], { env });
    expect(table.stdout).toContain(`assigned to ${holder}`);

    const other = await cli('simplectl', ['--json', 'match-query', `${holder}_max-disks.1`, ...scope], {
      env,
    });
    expect(other.exitCode).toBe(1);
    const rejected = (JSON.parse(other.stdout) as MatchQueryResult).rejected;
    expect(rejected.map((r) => r.reasons)).toEqual([[`assigned to volume ${holder} (exclusive)`]]);
    const mount = await cli('simplectl', ['mount', `${holder}_max-disks.1`, `${root}2`, ...scope], { env });
    expect(mount.exitCode).toBe(1);
    expect(mount.stderr).toContain(`assigned to volume ${holder} (exclusive)`);

    const own = await cli('simplectl', ['--json', 'match-query', holder, ...scope], { env });
    expect(own.exitCode).toBe(0);
    expect((JSON.parse(own.stdout) as MatchQueryResult).chosen.map((d) => d.device)).toEqual([disk.device]);

    // --state-dir names another state, which knows nothing of this assignment.
    const elsewhere = join(scratchDir('assign-empty'), 'state');
    const free = await cli(
      'simplectl',
      ['match-query', `${holder}_max-disks.1`, ...scope, '--state-dir', elsewhere],
      {
        env,
      },
    );
    expect(free.exitCode).toBe(0);
    expect(await sha256File(disk.file)).toBe(before);
  });

  it('names a holding volume without its passphrase', async () => {
    const label = `hush${Math.random().toString(36).slice(2, 8)}`;
    const disk = await initialisedDisk(`label.${label}`);
    const scope = ['--include', kernelName(disk)];
    const stateDir = join(scratchDir('assign-secret'), 'state');
    const scanned = await cli('simplectl', ['--json', 'scan-disks', ...scope]);
    const report = (JSON.parse(scanned.stdout) as DiskReport[])[0];
    if (report?.state !== 'initialised') throw new Error(`not initialised: ${scanned.stdout}`);
    const uuid = report.dataPartition.uuid;
    const name = `label.${label}_encryption-passphrase.Hush-9876`;
    const now = new Date().toISOString();
    const state = assignDisks(
      ensureVolume(emptyState(), name, true, now),
      name,
      [{ id: uuid, number: 0, device: disk.device, diskseq: null }],
      now,
    );
    await saveState(stateDir, state);
    for (const args of [
      ['scan-disks', ...scope, '--state-dir', stateDir],
      ['--json', 'scan-disks', ...scope, '--state-dir', stateDir],
      ['match-query', `label.${label}`, ...scope, '--state-dir', stateDir],
      ['--json', 'match-query', `label.${label}`, ...scope, '--state-dir', stateDir],
    ]) {
      const r = await cli('simplectl', args);
      expect(r.stdout, args.join(' ')).toContain(`label.${label}_encryption-passphrase.***`);
      expect(r.stdout + r.stderr).not.toContain('Hush-9876');
    }
  });
});
