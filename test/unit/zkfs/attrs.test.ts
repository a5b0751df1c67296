import { describe, expect, it } from 'vitest';
import { aclAllows, PERM_READ, PERM_WRITE, sessionIdentities } from '../../../src/core/zkfs/acl.js';
import {
  creatorOwner,
  type DirMeta,
  effectiveAttrs,
  emptyMeta,
  encodeMeta,
  entryForMove,
  holdsGoneNames,
  type MetaEntry,
  newEntry,
  type PendingAttrs,
  parseMeta,
  S_IFDIR,
  S_IFREG,
  sameEntry,
  shownPerms,
  storedType,
  withEntry,
  withMode,
  withOwner,
  withoutGoneNames,
  withTimes,
} from '../../../src/core/zkfs/attrs.js';

const defaults = { uid: 0, gid: 0, umask: 0o022 };

describe('metadata document', () => {
  it('round-trips entries and keeps unknown keys', () => {
    const text = '{"zkfs":1,"future":[1,2],"e":{"a":{"t":"f","m":416,"x":"kept"},"b":{"t":"d"}}}';
    const meta = parseMeta(Buffer.from(text));
    expect(meta.corrupt).toBe(false);
    expect(meta.entries.get('a')).toEqual({ t: 'f', m: 416, x: 'kept' });
    const again = parseMeta(encodeMeta(withEntry(meta, 'c', { t: 'f' })));
    expect(Object.fromEntries(again.entries)).toEqual({
      a: { t: 'f', m: 416, x: 'kept' },
      b: { t: 'd' },
      c: { t: 'f' },
    });
    expect(again.extra).toEqual({ future: [1, 2] });
  });

  it('hands back a document it encoded exactly as parsing its bytes would', () => {
    const base = parseMeta(Buffer.from('{"zkfs":1,"future":true,"e":{"a":{"t":"f","m":416}}}'));
    const meta = withEntry(withEntry(base, 'b', { t: 'd', mt: undefined, u: 7 }), 'c', { at: undefined });
    const bytes = encodeMeta(meta);
    const parsed = parseMeta(Buffer.from(bytes)); // a copy: parsed for real
    expect(parseMeta(bytes)).toEqual(parsed);
    expect(Object.fromEntries(parsed.entries)).toEqual({ a: { t: 'f', m: 416 }, b: { t: 'd', u: 7 } });
    expect(Object.keys(meta.entries.get('b') ?? {})).toEqual(['t', 'u']);
  });

  it('encodes exactly as JSON.stringify of the whole document would', () => {
    const base = parseMeta(
      Buffer.from('{"zkfs":1,"later":{"x":[1,"two"]},"e":{"a \\"q\\"":{"t":"f","m":416}}}'),
    );
    let meta = withEntry(base, 'naïve ✓', { t: 'd', u: 7 });
    meta = withEntry(meta, 'a "q"', { t: 'f', mt: 5 }); // replaced: its text is made anew
    for (const m of [emptyMeta(), base, meta]) {
      const whole = { zkfs: 1, ...m.extra, e: Object.fromEntries(m.entries) };
      expect(encodeMeta(m).toString('utf8')).toBe(JSON.stringify(whole));
    }
  });

  it('encodes a document grown one create at a time as it would encode it whole', () => {
    let meta = parseMeta(Buffer.from('{"zkfs":1,"e":{"first":{"t":"f"}}}'));
    encodeMeta(meta);
    const whole = (m: typeof meta) =>
      JSON.stringify({ zkfs: 1, ...m.extra, e: Object.fromEntries(m.entries) });
    for (let i = 0; i < 50; i++) {
      meta = withEntry(meta, `f${i}`, { t: 'f', m: i % 3 === 0 ? 0o600 : undefined });
      if (i === 20) meta = withEntry(meta, 'first', { t: 'f', m: 0o644 }); // changed in place
      if (i === 30) meta = withEntry(meta, 'f3', undefined); // removed
      if (i === 40) meta = withEntry(meta, 'f3', { t: 'f' }); // back, now last
      expect(encodeMeta(meta).toString('utf8')).toBe(whole(meta));
    }
    // A create that failed is retried from the document it started from: encoded again, it is unchanged.
    const before = meta;
    const after = withEntry(before, 'retried', { t: 'f' });
    expect(encodeMeta(after).toString('utf8')).toBe(whole(after));
    expect(encodeMeta(before).toString('utf8')).toBe(whole(before));
    const fresh = withEntry(emptyMeta(), 'only', { t: 'd' });
    expect(encodeMeta(withEntry(fresh, 'next', { t: 'f' })).toString('utf8')).toBe(
      '{"zkfs":1,"e":{"only":{"t":"d"},"next":{"t":"f"}}}',
    );
  });

  it('reads a document another host grew from the version before as reading it whole would', () => {
    // Bytes as another host writes them: copies, which this process never encoded.
    const read = (text: string, previous?: DirMeta) => parseMeta(Buffer.from(text), previous);
    const shown = (m: DirMeta) => ({
      entries: Object.fromEntries([...m.entries].sort(([a], [b]) => (a < b ? -1 : 1))),
      extra: m.extra,
      corrupt: m.corrupt,
    });
    const v1 = '{"zkfs":1,"cn":["t1"],"e":{"a":{"t":"f"},"b":{"t":"d","m":493}}}';
    const previous = read(v1);
    const cases = [
      // A create elsewhere: its token in the head, its entry last.
      '{"zkfs":1,"cn":["t1","t2"],"e":{"a":{"t":"f"},"b":{"t":"d","m":493},"c":{"t":"f"}}}',
      // Several at once, one named by digits (JSON puts those first), one named again.
      '{"zkfs":1,"cn":[],"e":{"a":{"t":"f"},"b":{"t":"d","m":493},"7":{"t":"f"},"a":{"t":"d"},"x":3}}',
      // Not grown: changed, removed, reordered, or another head.
      '{"zkfs":1,"cn":["t1"],"e":{"a":{"t":"f","m":384},"b":{"t":"d","m":493},"c":{"t":"f"}}}',
      '{"zkfs":1,"cn":["t1"],"e":{"b":{"t":"d","m":493},"c":{"t":"f"},"d":{"t":"f"}}}',
      '{"zkfs":2,"cn":["t1"],"e":{"a":{"t":"f"},"b":{"t":"d","m":493},"c":{"t":"f"}}}',
      '{"zkfs":1,"cn":["t1"],"e":{"a":{"t":"f"},"b":{"t":"d","m":493},"c":{"t":"f"}},"late":1}',
      '{"zkfs":1,"e":{"a":{"t":"f"},"b":{"t":"d","m":493},"c":{"t":"f"}},"cn":["t1"]}',
      '{ "zkfs": 1, "cn": ["t1"], "e": { "a": {"t":"f"}, "b": {"t":"d","m":493}, "c": {} } }',
      // Quoting that looks like the entries' key.
      '{"zkfs":1,"cn":["\\"e\\":{"],"e":{"a":{"t":"f"},"b":{"t":"d","m":493},"e":{"t":"f"}}}',
      // Broken after the part it shares.
      '{"zkfs":1,"cn":["t1"],"e":{"a":{"t":"f"},"b":{"t":"d","m":493},"c":{"t":}}}',
    ];
    for (const text of cases) expect(shown(read(text, previous))).toEqual(shown(read(text)));
    // Grown, the entries it had are the very same: nothing to compare for what did not change.
    const grown = read(cases[0] as string, previous);
    expect(grown.entries.get('b')).toBe(previous.entries.get('b'));
    expect(read(v1, previous)).toBe(previous); // read again unchanged

    // A directory filled one file at a time, read after each, from the read before.
    let text = '{"zkfs":1,"e":{}}';
    let meta = read(text);
    for (let i = 0; i < 40; i++) {
      const doc = parseMeta(Buffer.from(text));
      const next = withEntry(doc, i % 10 === 9 ? 'f0' : `f${i}`, { t: 'f', m: i });
      text = Buffer.from(encodeMeta({ ...next, extra: { cn: [`t${i}`] } })).toString('utf8');
      meta = read(text, meta);
      expect(shown(meta)).toEqual(shown(read(text)));
    }
  });

  it('keeps a chmod and chown waiting for a write-back, and applies them to the entry then', () => {
    // As attr-ops and file-ops lay them over the entry when they go.
    const laid = (entry: MetaEntry | undefined, pending: PendingAttrs): MetaEntry => ({
      ...entry,
      ...pending,
    });
    let pending: PendingAttrs = withMode(undefined, 0o100640);
    pending = withOwner(pending, 1234, -1); // -1: the group stays
    pending = withOwner(pending, 0xffffffff, 55);
    expect(pending).toEqual({ m: 0o640, u: 1234, g: 55 });
    expect(laid({ t: 'f', m: 0o600, mt: 5 }, pending)).toEqual({
      t: 'f',
      m: 0o640,
      u: 1234,
      g: 55,
      mt: 5,
    });
    expect(laid(undefined, withOwner(undefined, 7, -1))).toEqual({ u: 7 });
  });

  it('treats a missing or empty node as empty and garbage as empty but corrupt', () => {
    expect(parseMeta(undefined)).toEqual(emptyMeta());
    expect(parseMeta(Buffer.alloc(0))).toEqual(emptyMeta());
    expect(parseMeta(Buffer.from('not json')).corrupt).toBe(true);
    expect(parseMeta(Buffer.from('[1]')).corrupt).toBe(true);
  });

  it('drops fields of the wrong type', () => {
    const meta = parseMeta(Buffer.from('{"zkfs":1,"e":{"a":{"t":"x","m":"777","u":5}}}'));
    expect(meta.entries.get('a')).toEqual({ u: 5 });
  });

  it('drops times no date can hold, as an older version stored times before 1970, and keeps those it can', () => {
    const meta = parseMeta(
      Buffer.from('{"zkfs":1,"e":{"a":{"mt":1.8446744073393932e22,"at":-86400000,"v":1}}}'),
    );
    expect(meta.entries.get('a')).toEqual({ at: -86400000, v: 1 });
  });

  it('removes an entry when it is set to undefined or to nothing', () => {
    const meta = withEntry(withEntry(emptyMeta(), 'a', { t: 'f' }), 'b', { t: 'd' });
    expect([...withEntry(meta, 'a', undefined).entries.keys()]).toEqual(['b']);
    expect([...withEntry(meta, 'b', {}).entries.keys()]).toEqual(['a']);
    expect([...meta.entries.keys()]).toEqual(['a', 'b']);
  });
});

describe('attributes', () => {
  const stat = { mtimeMs: 1_700_000_000_000, version: 3 };

  it('records the type and only non-default permission bits of a new node', () => {
    expect(newEntry('file', 0o100644, defaults)).toEqual({ t: 'f' });
    expect(newEntry('file', 0o600, defaults)).toEqual({ t: 'f', m: 0o600 });
    expect(newEntry('dir', 0o755, defaults)).toEqual({ t: 'd' });
    expect(storedType({ t: 'd' })).toBe('dir');
    expect(storedType(undefined)).toBeUndefined();
  });

  it("records a creator's uid and gid that differ from the mount defaults, as chown would", () => {
    const user = { uid: 65534, gid: 65534 };
    expect(newEntry('file', 0o644, defaults, user)).toEqual({ t: 'f', u: 65534, g: 65534 });
    expect(newEntry('dir', 0o700, defaults, { uid: 1000, gid: 0 })).toEqual({ t: 'd', m: 0o700, u: 1000 });
    // The mount's own user: nothing more than before, as the old tool wrote it.
    expect(newEntry('file', 0o644, { uid: 7, gid: 8, umask: 0o022 }, { uid: 7, gid: 8 })).toEqual({ t: 'f' });
    expect(newEntry('file', 0o644, defaults, undefined, { mode: 0o42775, gid: 50 })).toEqual({ t: 'f' });
    expect(creatorOwner(defaults, user, { mode: 0o40755, gid: 0 })).toEqual({ u: 65534, g: 65534 });
    expect(creatorOwner(defaults, undefined, undefined)).toEqual({});
  });

  it("gives a node made in a setgid directory that directory's group, and a new directory the setgid bit", () => {
    const shared = { mode: S_IFDIR | 0o2775, gid: 50 };
    const user = { uid: 1000, gid: 1000 };
    expect(newEntry('file', 0o664, defaults, user, shared)).toEqual({ t: 'f', m: 0o664, u: 1000, g: 50 });
    expect(newEntry('dir', 0o775, defaults, user, shared)).toEqual({ t: 'd', m: 0o2775, u: 1000, g: 50 });
    expect(creatorOwner(defaults, user, shared)).toEqual({ u: 1000, g: 50 });
    // Not setgid: the creator's own group.
    expect(newEntry('dir', 0o755, defaults, user, { mode: S_IFDIR | 0o775, gid: 50 })).toEqual({
      t: 'd',
      u: 1000,
      g: 1000,
    });
  });

  it('falls back to the mount defaults and the znode times', () => {
    expect(effectiveAttrs('file', stat, undefined, { uid: 7, gid: 8, umask: 0o027 })).toEqual({
      mode: S_IFREG | 0o640,
      uid: 7,
      gid: 8,
      mtimeMs: stat.mtimeMs,
      atimeMs: stat.mtimeMs,
      ctimeMs: stat.mtimeMs,
    });
    expect(effectiveAttrs('dir', stat, undefined, defaults).mode).toBe(S_IFDIR | 0o755);
  });

  it('shows a node stored as a file, seen as a directory, with x wherever its mode has r (chmod X)', () => {
    const dirMode = (entry: Parameters<typeof shownPerms>[1]) => shownPerms('dir', entry, defaults);
    expect(dirMode({ t: 'f', m: 0o644 })).toBe(0o755);
    expect(dirMode({ t: 'f', m: 0o600 })).toBe(0o700);
    expect(dirMode({ t: 'f', m: 0o640 })).toBe(0o750);
    expect(dirMode({ t: 'f', m: 0o4604 })).toBe(0o4705);
    expect(dirMode({ m: 0o444 })).toBe(0o555); // no type recorded (made by another client)
    expect(dirMode({ t: 'f' })).toBe(0o755); // no mode stored: the directory default
    // Recorded as a directory: as chmod left it.
    expect(dirMode({ t: 'd', m: 0o644 })).toBe(0o644);
    // Seen as a file: as stored.
    expect(shownPerms('file', { t: 'f', m: 0o644 }, defaults)).toBe(0o644);
    expect(effectiveAttrs('dir', stat, { t: 'f', m: 0o600 }, defaults).mode).toBe(S_IFDIR | 0o700);
  });

  it('applies chmod, chown (-1 keeps a field) and utimens', () => {
    let entry = withMode({ t: 'f' }, 0o104755);
    entry = withOwner(entry, 1000, 0xffffffff);
    entry = withTimes(entry, 1000, 2000, stat.version);
    const attrs = effectiveAttrs('file', stat, entry, defaults);
    expect(attrs).toMatchObject({ mode: S_IFREG | 0o4755, uid: 1000, gid: 0, mtimeMs: 2000, atimeMs: 1000 });
    expect(attrs.ctimeMs).toBe(stat.mtimeMs);
  });

  it('pins the times of a symbolic link (no data version) for good', () => {
    const entry = withTimes(undefined, 1000, 2000, undefined);
    expect(entry).toEqual({ mt: 2000, at: 1000 });
    expect(effectiveAttrs('file', { mtimeMs: 9000, version: 8 }, entry, defaults).mtimeMs).toBe(2000);
  });

  it('lets a later write win over a stored mtime', () => {
    const entry = withTimes({ t: 'f' }, 1000, 2000, 3);
    expect(effectiveAttrs('file', { mtimeMs: 9000, version: 4 }, entry, defaults).mtimeMs).toBe(9000);
  });

  it('pins the visible mtime of a moved node to the recreated version 0', () => {
    expect(entryForMove({ t: 'f' }, stat)).toEqual({ t: 'f', mt: stat.mtimeMs, v: 0 });
    const touched = withTimes({ t: 'f' }, 1000, 2000, 3);
    expect(entryForMove(touched, stat)).toEqual({ t: 'f', mt: 2000, at: 1000, v: 0 });
    const stale = withTimes({ t: 'f' }, 1000, 2000, 1);
    expect(entryForMove(stale, stat)).toEqual({ t: 'f', mt: stat.mtimeMs, v: 0 });
  });
});

describe('entries compared', () => {
  it('are the same with the same fields set, in any order; an absent entry only as another absent one', () => {
    expect(sameEntry({ t: 'f', m: 0o600 }, { m: 0o600, t: 'f' })).toBe(true);
    expect(sameEntry({ t: 'f', mt: undefined }, { t: 'f' })).toBe(true);
    expect(sameEntry({ t: 'f', m: 0o600 }, { t: 'f', m: 0o644 })).toBe(false);
    expect(sameEntry({ t: 'f' }, { t: 'f', u: 0 })).toBe(false);
    expect(sameEntry({ t: 'f', x: { a: 1 } }, { t: 'f', x: { a: 2 } })).toBe(false);
    expect(sameEntry(undefined, undefined)).toBe(true);
    expect(sameEntry(undefined, {})).toBe(false);
  });
});

describe('entries of names another client deleted', () => {
  const doc = parseMeta(
    Buffer.from('{"zkfs":1,"x":7,"e":{".":{"m":448},"a":{"t":"f"},"b":{"t":"d"},"l":{"u":5}}}'),
  );

  it('are known to be there only when the directory cannot account for every entry', () => {
    // Children a, b and the document itself; link l; the root's own entry.
    expect(holdsGoneNames(doc, { numChildren: 3, links: 1, isRoot: true })).toBe(false);
    expect(holdsGoneNames(doc, { numChildren: 2, links: 1, isRoot: true })).toBe(true);
    expect(holdsGoneNames(doc, { numChildren: 3, links: 0, isRoot: true })).toBe(true);
    expect(holdsGoneNames(doc, { numChildren: 3, links: 1, isRoot: false })).toBe(true);
    expect(holdsGoneNames(emptyMeta(), { numChildren: 0, links: 0, isRoot: false })).toBe(false);
  });

  it('go, leaving the rest, the root entry and unknown keys as they were', () => {
    const kept = withoutGoneNames(doc, (name) => name !== 'b');
    expect([...kept.entries.keys()]).toEqual(['.', 'a', 'l']);
    expect(parseMeta(encodeMeta(kept))).toEqual({
      entries: new Map([
        ['.', { m: 448 }],
        ['a', { t: 'f' }],
        ['l', { u: 5 }],
      ]),
      extra: { x: 7 },
      corrupt: false,
    });
    expect(withoutGoneNames(doc, () => false).entries.has('.')).toBe(true);
    expect(withoutGoneNames(doc, () => true)).toBe(doc);
  });
});

describe('ACL judgement', () => {
  const world = (perms: number) => ({ perms, scheme: 'world', id: 'anyone' });
  const alice = sessionIdentities({ user: 'alice', password: 's3cret' });

  it('computes the digest identity as ZooKeeper does', () => {
    expect(alice[1]).toEqual({ scheme: 'digest', id: 'alice:uLxpHc/uhT86OXPoSjJTp1M8CJY=' });
    expect(sessionIdentities()).toEqual([{ scheme: 'world', id: 'anyone' }]);
  });

  it('decides for world and own digest entries, and leaves other schemes to the server', () => {
    expect(aclAllows([world(31)], sessionIdentities(), PERM_WRITE)).toBe('yes');
    expect(aclAllows([world(PERM_READ)], sessionIdentities(), PERM_WRITE)).toBe('no');
    const own = { perms: 31, scheme: 'digest', id: alice[1]!.id };
    expect(aclAllows([world(PERM_READ), own], alice, PERM_WRITE)).toBe('yes');
    expect(aclAllows([world(PERM_READ), own], sessionIdentities(), PERM_WRITE)).toBe('no');
    expect(aclAllows([{ perms: 31, scheme: 'ip', id: '10.0.0.1' }], sessionIdentities(), PERM_WRITE)).toBe(
      'unknown',
    );
  });
});
