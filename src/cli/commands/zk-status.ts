import { Command } from 'commander';
import { type ZkStatusResult, zkStatus } from '../../commands/zk-status.js';
import { humanSize } from '../../core/units.js';
import type { App } from '../app.js';
import { type Output, printResult, table } from '../output.js';

const n = (value: number) => value.toLocaleString('en-US');
/** `value` and what it counts, singular for exactly one ("1 reconnection", "2 reconnections"). */
const count = (value: number, one: string, many = `${one}s`) => `${n(value)} ${value === 1 ? one : many}`;
const seconds = (ms: number) => (ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`);

function age(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/** What the kernel keeps of the mount, and what drops it, as the cache stands now. */
function kernelCache(r: ZkStatusResult): string {
  const kept = seconds(r.kernel.attrTimeoutMs);
  if (r.cache.mode === 'ttl') return `attributes, names and pages for ${kept} (no watch reports changes)`;
  if (r.cache.mode === 'waiting')
    return `attributes, names and pages for ${kept} while the watch is being set (changes meanwhile are not reported; all is dropped once it is)`;
  if (!r.kernel.notifications) return `attributes and names for ${kept} (no change notifications)`;
  return `attributes, names and pages up to ${kept}, dropped on change (${n(r.kernel.invalidations)} so far); ${count(r.kernel.pagesStored, 'file')} read ahead`;
}

/** The status as a two-column table for people (`--json` prints the document itself). */
export function renderZkStatus(r: ZkStatusResult, out: Output): string {
  const s = r.session;
  const c = r.cache;
  const errors = Object.entries(r.operations.errors).sort((a, b) => b[1] - a[1]);
  const errorTotal = errors.reduce((sum, [, count]) => sum + count, 0);
  const state =
    s.state === 'connected'
      ? out.color.green(`connected to ${s.server ?? '?'} for ${age(s.connectedSince)}`)
      : out.color.yellow(s.state);
  const modes: Record<string, string> = {
    watch: 'kept exact by a watch',
    waiting: 'rebuilding (watch being set up)',
    ttl: 'time-limited (the persistent watch could not be set; see the log)',
  };
  const rows: string[][] = [
    ['mount', `${r.hosts}${r.path} (${r.mode}${r.readOnly ? ', read-only' : ''}), daemon pid ${r.pid}`],
    ['session', `${s.id}, ${state}, timeout ${Math.round(s.timeoutMs / 1000)} s`],
    ['faults', `${count(s.reconnects, 'reconnection')}, ${count(s.expiries, 'expired session')} replaced`],
    [
      'requests',
      `${n(s.requests)} to ZooKeeper, ${n(s.retries)} retried, ${count(s.confirmedWrites, 'write')} confirmed after a lost reply, ${n(s.timeouts)} timed out`,
    ],
    [
      'cache',
      `${modes[c.mode] ?? c.mode}${c.childWatches ? `, and by watches on ${count(c.childWatches, 'directory', 'directories')} holding nodes it may not read` : ''}, ${count(c.entries, 'entry', 'entries')}, ${humanSize(c.bytes)} of ${humanSize(c.limitBytes)}`,
    ],
    [
      'hit rate',
      `${(c.hitRate * 100).toFixed(1)}% (${count(c.hits, 'hit')}, ${count(c.misses, 'miss', 'misses')}), ${count(c.notices, 'change notice')}, ${count(c.evictions, 'eviction')}`,
    ],
    [
      'operations',
      `${n(r.operations.total)}, ${errorTotal === 0 ? 'no errors' : `${count(errorTotal, 'error')} (${errors.map(([code, times]) => `${code} ${n(times)}`).join(', ')})`}`,
    ],
    ['by request', r.operations.byName ? byRequest(r.operations.byName) : OLDER_DAEMON],
    ['open files', n(r.openFiles)],
    ['memory', r.memory ? `${humanSize(r.memory.residentBytes)} resident, the cache included` : OLDER_DAEMON],
    ['kernel cache', kernelCache(r)],
    ['polling', r.polling ? polling(r.polling) : OLDER_DAEMON],
    ['reader', r.reader ? reader(r.reader) : OLDER_DAEMON],
  ];
  return `${r.dir}\n${table(out, ['', ''], rows).split('\n').slice(1).join('\n')}`;
}

/** What a line says that a daemon started by an older zkfsctl does not report. */
const OLDER_DAEMON = 'not reported by this daemon (started by an older zkfsctl)';

/** Requests shown by name on the `by request` line; the rest are counted as more kinds. */
const SHOWN_REQUESTS = 6;

function byRequest(byName: Record<string, number>): string {
  // The daemon lists them most frequent first.
  const counted = Object.entries(byName);
  if (counted.length === 0) return 'none yet';
  const shown = counted.slice(0, SHOWN_REQUESTS).map(([name, times]) => `${name} ${n(times)}`);
  const more = counted.length - SHOWN_REQUESTS;
  return more > 0 ? `${shown.join(', ')} and ${count(more, 'more kind', 'more kinds')}` : shown.join(', ');
}

function reader(r: NonNullable<ZkStatusResult['reader']>): string {
  if (r.kind !== 'native') return `${r.kind === 'event-loop' ? 'event loop' : 'thread pool'} (JavaScript)`;
  const answered = [`${count(r.opens, 'open')} for reading`, count(r.releases, 'release')];
  // A daemon older than the attribute answers does not report them.
  if (r.xattrs !== undefined) answered.push(count(r.xattrs, 'attribute query', 'attribute queries'));
  const last = answered.pop();
  // Absent (a daemon older than them) or 0: requests are read from /dev/fuse.
  const ring = r.ringQueues
    ? `, requests over io_uring (${count(r.ringQueues, 'queue')}${raised(r.ringRaised)})`
    : '';
  return `native: ${answered.join(', ')} and ${last} answered without JavaScript${ring}`;
}

/** How often the queues' threads left idle priority, waiting for a busy CPU (fuse-ring.c). */
function raised(times: number | undefined): string {
  if (times === undefined) return '';
  return times === 0
    ? ', at idle priority'
    : `, at idle priority but raised to normal ${count(times, 'time')} behind a busy program`;
}

function polling(p: NonNullable<ZkStatusResult['polling']>): string {
  if (p.windowUs === 0) return 'off (--busy-poll 0)';
  const scored = p.hits + p.misses;
  const rate =
    scored === 0 ? '' : `, next request within it after ${((p.hits / scored) * 100).toFixed(1)}% of answers`;
  // A daemon older than the trials does not report them.
  const trials =
    p.trials === undefined
      ? ''
      : p.trials === 0
        ? '; not tried against sleeping yet'
        : `; faster than sleeping in ${n(p.won ?? 0)} of ${count(p.trials, 'trial')}, ${p.pays ? 'so polling' : 'so not polling'} between them`;
  return `${n(p.windowUs)} us after answers where it pays: ${count(p.windows, 'window')}${rate}${trials}`;
}

export function zkStatusCommand(getApp: () => App, name: string): Command {
  return new Command(name)
    .description("show a ZooKeeper mount's session, server, cache and counters")
    .argument('<dir>', 'mount point')
    .action(async (dir: string) => {
      const app = getApp();
      const result = await zkStatus({ dir }, app.context());
      printResult(app.out, result, renderZkStatus);
    });
}
