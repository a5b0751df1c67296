import { describe, expect, it } from 'vitest';
import type { MountStatus } from '../../../src/adapters/zkfs/status-socket.js';
import { renderZkStatus } from '../../../src/cli/commands/zk-status.js';
import { createOutput } from '../../../src/cli/output.js';

const status: MountStatus = {
  dir: '/mnt/app',
  pid: 4242,
  hosts: 'zk1:2181,zk2:2181',
  path: '/app',
  mode: 'hybrid',
  readOnly: false,
  startedAt: '2026-01-01T00:00:00.000Z',
  session: {
    id: '0x0100000000000001',
    state: 'connected',
    server: '10.0.0.2:2181',
    timeoutMs: 30_000,
    connectedSince: new Date(Date.now() - 90_000).toISOString(),
    requests: 12_345,
    retries: 3,
    reconnects: 2,
    expiries: 1,
    confirmedWrites: 1,
    timeouts: 0,
  },
  cache: {
    mode: 'watch',
    entries: 2048,
    bytes: 3 * 1024 * 1024,
    limitBytes: 64 * 1024 * 1024,
    hits: 975,
    misses: 25,
    hitRate: 0.975,
    notices: 40,
    evictions: 0,
    prefetched: 300,
  },
  operations: {
    total: 50_000,
    byName: {
      open: 20_000,
      release: 20_000,
      readdirplus: 5_000,
      read: 2_000,
      lookup: 1_500,
      getattr: 1_000,
      write: 400,
      create: 100,
    },
    errors: { ENOENT: 12, EIO: 1 },
  },
  openFiles: 2,
  kernel: { attrTimeoutMs: 10_000, notifications: true, invalidations: 17, pagesStored: 5 },
  polling: { windowUs: 100, windows: 1200, hits: 990, misses: 10, trials: 3, won: 2, pays: true },
  reader: { kind: 'native', opens: 15_000, releases: 14_999, xattrs: 40_000 },
  memory: { residentBytes: 250 * 1024 * 1024 },
};

describe('zkfsctl status output', () => {
  it('shows session, server, cache, hit rate and counters in plain lines', () => {
    const out = createOutput({ color: false, json: false, interactive: false });
    const text = renderZkStatus(status, out);
    expect(text.split('\n')[0]).toBe('/mnt/app');
    expect(text).toMatch(
      /session\s+0x0100000000000001, connected to 10\.0\.0\.2:2181 for 90 s, timeout 30 s/,
    );
    expect(text).toMatch(/faults\s+2 reconnections, 1 expired session replaced/);
    expect(text).toMatch(/requests\s+12,345 to ZooKeeper, 3 retried, 1 write confirmed/);
    expect(text).toMatch(/cache\s+kept exact by a watch, 2,048 entries, 3\.00 MiB of 64\.0 MiB/);
    expect(text).toMatch(/hit rate\s+97\.5% \(975 hits, 25 misses\), 40 change notices, 0 evictions/);
    expect(text).toMatch(/operations\s+50,000, 13 errors \(ENOENT 12, EIO 1\)/);
    expect(text).toMatch(
      /by request\s+open 20,000, release 20,000, readdirplus 5,000, read 2,000, lookup 1,500, getattr 1,000 and 2 more kinds/,
    );
    expect(text).toMatch(
      /kernel cache\s+attributes, names and pages up to 10 s, dropped on change \(17 so far\); 5 files read ahead/,
    );
    expect(text).toMatch(
      /polling\s+100 us after answers where it pays: 1,200 windows, next request within it after 99\.0% of answers; faster than sleeping in 2 of 3 trials, so polling between them/,
    );
  });

  it('counts one of anything in the singular', () => {
    const out = createOutput({ color: false, json: false, interactive: false });
    const text = renderZkStatus(
      {
        ...status,
        session: { ...status.session, reconnects: 1, expiries: 1, confirmedWrites: 1 },
        cache: { ...status.cache, entries: 1, hits: 1, misses: 1, notices: 1, evictions: 1, childWatches: 1 },
        operations: { total: 1, byName: { getattr: 1 }, errors: { ENOENT: 1 } },
        kernel: { ...status.kernel, pagesStored: 1 },
        polling: { windowUs: 100, windows: 1, hits: 1, misses: 0, trials: 1, won: 1, pays: true },
        reader: { kind: 'native', opens: 1, releases: 1, xattrs: 1, ringQueues: 1, ringRaised: 1 },
      },
      out,
    );
    expect(text).toMatch(/faults\s+1 reconnection, 1 expired session replaced/);
    expect(text).toMatch(/1 write confirmed after a lost reply/);
    expect(text).toMatch(/on 1 directory holding nodes it may not read, 1 entry,/);
    expect(text).toMatch(/\(1 hit, 1 miss\), 1 change notice, 1 eviction/);
    expect(text).toMatch(/operations\s+1, 1 error \(ENOENT 1\)/);
    expect(text).toMatch(/1 file read ahead/);
    expect(text).toMatch(/1 window, .* faster than sleeping in 1 of 1 trial,/);
    expect(text).toMatch(
      /1 open for reading, 1 release and 1 attribute query answered without JavaScript, requests over io_uring \(1 queue, at idle priority but raised to normal 1 time behind a busy program\)/,
    );
  });

  it('says the kernel keeps what it is told only for the time limit while no watch reports changes', () => {
    const out = createOutput({ color: false, json: false, interactive: false });
    const text = renderZkStatus(
      {
        ...status,
        cache: { ...status.cache, mode: 'ttl' },
        kernel: { ...status.kernel, attrTimeoutMs: 1000 },
      },
      out,
    );
    expect(text).toMatch(/cache\s+time-limited \(the persistent watch could not be set; see the log\)/);
    expect(text).toMatch(/kernel cache\s+attributes, names and pages for 1 s \(no watch reports changes\)/);
    const waiting = renderZkStatus(
      {
        ...status,
        cache: { ...status.cache, mode: 'waiting' },
        kernel: { ...status.kernel, attrTimeoutMs: 1000 },
      },
      out,
    );
    expect(waiting).toMatch(
      /kernel cache\s+attributes, names and pages for 1 s while the watch is being set \(changes meanwhile are not reported; all is dropped once it is\)/,
    );
  });

  it("shows the daemon's resident memory, which a daemon older than it does not report", () => {
    const out = createOutput({ color: false, json: false, interactive: false });
    expect(renderZkStatus(status, out)).toMatch(/memory\s+250 MiB resident, the cache included/);
    const { memory: _, ...older } = status;
    expect(renderZkStatus(older, out)).toMatch(/memory\s+not reported by this daemon/);
  });

  it('says how requests are read, and what the native reader answered by itself', () => {
    const out = createOutput({ color: false, json: false, interactive: false });
    expect(renderZkStatus(status, out)).toMatch(
      /reader\s+native: 15,000 opens for reading, 14,999 releases and 40,000 attribute queries answered without JavaScript/,
    );
    // A daemon older than the attribute answers does not count them.
    const older = { kind: 'native' as const, opens: 15_000, releases: 14_999 };
    expect(renderZkStatus({ ...status, reader: older }, out)).toMatch(
      /reader\s+native: 15,000 opens for reading and 14,999 releases answered without JavaScript/,
    );
    const ring = { kind: 'native' as const, opens: 15_000, releases: 14_999, xattrs: 0, ringQueues: 2 };
    expect(renderZkStatus({ ...status, reader: ring }, out)).toMatch(
      /reader\s+native: .* answered without JavaScript, requests over io_uring \(2 queues\)/,
    );
    expect(renderZkStatus({ ...status, reader: { ...ring, ringRaised: 0 } }, out)).toMatch(
      /requests over io_uring \(2 queues, at idle priority\)/,
    );
    expect(renderZkStatus({ ...status, reader: { ...ring, ringRaised: 3 } }, out)).toMatch(
      /requests over io_uring \(2 queues, at idle priority but raised to normal 3 times behind a busy program\)/,
    );
    const loop = { kind: 'event-loop' as const, opens: 0, releases: 0 };
    expect(renderZkStatus({ ...status, reader: loop }, out)).toMatch(/reader\s+event loop \(JavaScript\)/);
    const pool = { kind: 'thread-pool' as const, opens: 0, releases: 0 };
    expect(renderZkStatus({ ...status, reader: pool }, out)).toMatch(/reader\s+thread pool \(JavaScript\)/);
    const { reader: _, ...oldest } = status;
    expect(renderZkStatus(oldest, out)).toMatch(/reader\s+not reported by this daemon/);
  });

  it('lists every kind of request when there are few, and says when there are none', () => {
    const out = createOutput({ color: false, json: false, interactive: false });
    const few = { ...status.operations, total: 3, byName: { lookup: 2, getattr: 1 } };
    expect(renderZkStatus({ ...status, operations: few }, out)).toMatch(/by request\s+lookup 2, getattr 1\n/);
    const none = { total: 0, byName: {}, errors: {} };
    expect(renderZkStatus({ ...status, operations: none }, out)).toMatch(/by request\s+none yet/);
  });

  it('says what a daemon started by an older zkfsctl does not report, instead of failing', () => {
    const out = createOutput({ color: false, json: false, interactive: false });
    const { polling: _, ...older } = status;
    const text = renderZkStatus(
      { ...older, operations: { total: 50_000, errors: { ENOENT: 12, EIO: 1 } } },
      out,
    );
    expect(text).toMatch(/operations\s+50,000, 13 errors/);
    expect(text).toMatch(/by request\s+not reported by this daemon \(started by an older zkfsctl\)/);
    expect(text).toMatch(/polling\s+not reported by this daemon \(started by an older zkfsctl\)/);
    // A daemon that polls but is older than the trials.
    const { trials: _t, won: _w, pays: _p, ...untried } = status.polling!;
    const untriedText = renderZkStatus({ ...status, polling: untried }, out);
    expect(untriedText).toMatch(
      /polling\s+100 us after answers where it pays: 1,200 windows, next request within it after 99\.0% of answers/,
    );
    expect(untriedText).not.toContain('trials');
  });

  it('says when polling is off, and what the trials of polling concluded', () => {
    const out = createOutput({ color: false, json: false, interactive: false });
    const off = { windowUs: 0, windows: 0, hits: 0, misses: 0 };
    expect(renderZkStatus({ ...status, polling: off }, out)).toMatch(/polling\s+off \(--busy-poll 0\)/);
    const lost = { ...status.polling!, trials: 9, won: 2, pays: false };
    expect(renderZkStatus({ ...status, polling: lost }, out)).toMatch(
      /faster than sleeping in 2 of 9 trials, so not polling between them/,
    );
    const untried = { ...status.polling!, trials: 0, won: 0, pays: false };
    expect(renderZkStatus({ ...status, polling: untried }, out)).toMatch(/; not tried against sleeping yet/);
  });

  it('says when the session is down', () => {
    const out = createOutput({ color: false, json: false, interactive: false });
    const text = renderZkStatus(
      { ...status, session: { ...status.session, state: 'disconnected', server: undefined } },
      out,
    );
    expect(text).toMatch(/session\s+0x0100000000000001, disconnected/);
  });
});
