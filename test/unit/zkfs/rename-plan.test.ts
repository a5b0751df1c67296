import { describe, expect, it } from 'vitest';
import {
  type DirMeta,
  emptyMeta,
  encodeMeta,
  type MetaEntry,
  parseMeta,
  withEntry,
} from '../../../src/core/zkfs/attrs.js';
import { FsError } from '../../../src/core/zkfs/errors.js';
import { type PlanNode, planRename, type RenameInput } from '../../../src/core/zkfs/rename-plan.js';
import { showsProof, WriteProofs } from '../../../src/core/zkfs/write-proof.js';
import { multiBytes, ZK_MAX_REQUEST_BYTES } from '../../../src/core/zkfs/zk-ops.js';

const acl = [{ perms: 31, scheme: 'world', id: 'anyone' }];

function node(rel: string, data: string, version = 0, mtimeMs = 1000): PlanNode {
  return { rel, data: Buffer.from(data), version, mtimeMs, acl, ephemeral: false };
}

function metaDoc(path: string, version: number | undefined, entries: Record<string, MetaEntry> = {}) {
  let meta = emptyMeta();
  for (const [k, v] of Object.entries(entries)) meta = withEntry(meta, k, v);
  return { path, version, meta, acl };
}

function summary(ops: ReturnType<typeof planRename>['ops']): string[] {
  return ops.map((o) => `${o.op} ${o.path}${'version' in o ? ` @${o.version}` : ''}`);
}

/** /r/a (a file of mode 600) renamed to /r/b. */
function withinOneDirectory(): RenameInput {
  return {
    from: '/r/a',
    to: '/r/b',
    nodes: [node('', 'hello', 4, 5000)],
    fromMeta: metaDoc('/r/__zkfs__', 7, { a: { t: 'f', m: 0o600 } }),
    toMeta: metaDoc('/r/__zkfs__', 7, { a: { t: 'f', m: 0o600 } }),
    maxBytes: ZK_MAX_REQUEST_BYTES,
  };
}

describe('rename plan', () => {
  it('moves a file within one directory with one metadata write', () => {
    const plan = planRename(withinOneDirectory());
    expect(summary(plan.ops)).toEqual(['create /r/b', 'delete /r/a @4', 'setData /r/__zkfs__ @7']);
    const create = plan.ops[0]!;
    expect(create.op === 'create' && create.data.toString()).toBe('hello');
    const meta = parseMeta(plan.ops[2]!.op === 'setData' ? plan.ops[2]!.data : undefined);
    expect(Object.fromEntries(meta.entries)).toEqual({ b: { t: 'f', m: 0o600, mt: 5000, v: 0 } });
    expect(plan.bytes).toBe(multiBytes(plan.ops));
  });

  it('keeps the document of a moved directory that holds only symbolic links, keys it does not know included', () => {
    // `ln -s a d/l` by a user other than the mount's default: the link's owner is only in d's document.
    const doc = JSON.stringify({
      ...JSON.parse(encodeMeta(withEntry(emptyMeta(), 'l', { u: 1000, g: 1000 })).toString()),
      future: { kept: true },
    });
    const input: RenameInput = {
      from: '/r/d',
      to: '/r/e',
      nodes: [node('', '', 1, 100), { ...node('__zkfs__', ''), data: Buffer.from(doc), version: 3 }],
      fromMeta: metaDoc('/r/__zkfs__', 2, { d: { t: 'd' } }),
      toMeta: metaDoc('/r/__zkfs__', 2, { d: { t: 'd' } }),
      maxBytes: ZK_MAX_REQUEST_BYTES,
    };
    const plan = planRename(input);
    expect(summary(plan.ops)).toEqual([
      'create /r/e',
      'create /r/e/__zkfs__',
      'delete /r/d/__zkfs__ @3',
      'delete /r/d @1',
      'setData /r/__zkfs__ @2',
    ]);
    const moved = plan.ops[1]!;
    const written = JSON.parse(moved.op === 'create' ? moved.data.toString() : '{}');
    expect(written).toMatchObject({ future: { kept: true } });
    expect(Object.fromEntries(parseMeta(Buffer.from(JSON.stringify(written))).entries)).toEqual({
      l: { u: 1000, g: 1000 },
    });
  });

  it('moves a directory tree parents first, deletes children first, and rewrites nested metadata', () => {
    const sub = encodeMeta(withEntry(emptyMeta(), 'f', { t: 'f', m: 0o640 }));
    const input: RenameInput = {
      from: '/r/d',
      to: '/s/e',
      nodes: [
        node('', '', 1, 100),
        node('x', 'X', 2, 200),
        node('sub', '', 0, 300),
        { ...node('sub/__zkfs__', ''), data: sub, version: 5 },
        node('sub/f', 'F', 3, 400),
      ],
      fromMeta: metaDoc('/r/__zkfs__', 2, { d: { t: 'd' }, other: { t: 'f' } }),
      toMeta: metaDoc('/s/__zkfs__', undefined),
      maxBytes: ZK_MAX_REQUEST_BYTES,
    };
    const plan = planRename(input);
    expect(summary(plan.ops)).toEqual([
      'create /s/e',
      'create /s/e/__zkfs__',
      'create /s/e/x',
      'create /s/e/sub',
      'create /s/e/sub/__zkfs__',
      'create /s/e/sub/f',
      'delete /r/d/sub/f @3',
      'delete /r/d/sub/__zkfs__ @5',
      'delete /r/d/sub @0',
      'delete /r/d/x @2',
      'delete /r/d @1',
      'setData /r/__zkfs__ @2',
      'create /s/__zkfs__',
    ]);
    const dataOf = (i: number) => {
      const op = plan.ops[i]!;
      return op.op === 'create' || op.op === 'setData' ? op.data : undefined;
    };
    expect(Object.fromEntries(parseMeta(dataOf(1)).entries)).toEqual({
      x: { mt: 200, v: 0 },
      sub: { mt: 300, v: 0 },
    });
    expect(Object.fromEntries(parseMeta(dataOf(4)).entries)).toEqual({
      f: { t: 'f', m: 0o640, mt: 400, v: 0 },
    });
    expect(Object.fromEntries(parseMeta(dataOf(11)).entries)).toEqual({ other: { t: 'f' } });
    expect(Object.fromEntries(parseMeta(dataOf(12)).entries)).toEqual({ e: { t: 'd', mt: 100, v: 0 } });
  });

  it('replaces an existing destination in the same transaction, before creating it', () => {
    const plan = planRename({
      from: '/r/new',
      to: '/r/old',
      nodes: [node('', 'v2', 0)],
      replace: { version: 9, metaVersion: undefined },
      fromMeta: metaDoc('/r/__zkfs__', 1, { new: { t: 'f' }, old: { t: 'f', m: 0o600 } }),
      toMeta: metaDoc('/r/__zkfs__', 1, { new: { t: 'f' }, old: { t: 'f', m: 0o600 } }),
      maxBytes: ZK_MAX_REQUEST_BYTES,
    });
    expect(summary(plan.ops)).toEqual([
      'delete /r/old @9',
      'create /r/old',
      'delete /r/new @0',
      'setData /r/__zkfs__ @1',
    ]);
    const op = plan.ops[3]!;
    expect(Object.fromEntries(parseMeta(op.op === 'setData' ? op.data : undefined).entries)).toEqual({
      old: { t: 'f', mt: 1000, v: 0 },
    });
  });

  it('deletes the metadata child of an empty directory it replaces', () => {
    const plan = planRename({
      from: '/r/a',
      to: '/r/b',
      nodes: [node('', '')],
      replace: { version: 0, metaVersion: 3 },
      fromMeta: metaDoc('/r/__zkfs__', 0),
      toMeta: metaDoc('/r/__zkfs__', 0),
      maxBytes: ZK_MAX_REQUEST_BYTES,
    });
    expect(summary(plan.ops).slice(0, 2)).toEqual(['delete /r/b/__zkfs__ @3', 'delete /r/b @0']);
  });

  it('moves only the symlink table for a symbolic link, and adds extra documents last', () => {
    const plan = planRename({
      from: '/r/l',
      to: '/r/m',
      nodes: [],
      fromMeta: metaDoc('/r/__zkfs__', 0, { l: { u: 7, mt: 123 } }),
      toMeta: metaDoc('/r/__zkfs__', 0, { l: { u: 7, mt: 123 } }),
      docs: [{ path: '/r/__symlinks__', version: 6, data: Buffer.from('/m=t'), acl }],
      maxBytes: ZK_MAX_REQUEST_BYTES,
    });
    expect(summary(plan.ops)).toEqual(['setData /r/__zkfs__ @0', 'setData /r/__symlinks__ @6']);
    const op = plan.ops[0]!;
    // The link keeps its stored owner and times under its new name.
    expect(Object.fromEntries(parseMeta(op.op === 'setData' ? op.data : undefined).entries)).toEqual({
      m: { u: 7, mt: 123 },
    });
  });

  it('refuses ephemeral nodes and oversized transactions with clear codes', () => {
    const base = {
      from: '/r/a',
      to: '/r/b',
      fromMeta: metaDoc('/r/__zkfs__', 0),
      toMeta: metaDoc('/r/__zkfs__', 0),
      maxBytes: ZK_MAX_REQUEST_BYTES,
    };
    const eph = () => planRename({ ...base, nodes: [{ ...node('', 'x'), ephemeral: true }] });
    expect(eph).toThrow(FsError);
    try {
      eph();
    } catch (error) {
      expect((error as FsError).code).toBe('EPERM');
    }
    const big = () =>
      planRename({ ...base, nodes: [node('', 'x'.repeat(600_000)), node('y', 'y'.repeat(600_000))] });
    try {
      big();
      expect.unreachable();
    } catch (error) {
      expect((error as FsError).code).toBe('EXDEV');
      expect((error as FsError).message).toMatch(/transaction/);
    }
  });
});

describe('a rename sent again after its reply was lost', () => {
  const applied = (op: ReturnType<typeof planRename>['ops'][number] | undefined) =>
    op && (op.op === 'setData' || op.op === 'create') ? op.applied : undefined;

  it('counts as done when the documents show both names as it left them, whatever else changed', () => {
    const plan = planRename(withinOneDirectory());
    const shows = applied(plan.ops.at(-1));
    const written =
      plan.ops.at(-1)?.op === 'setData' ? (plan.ops.at(-1) as { data: Buffer }).data : undefined;
    // Another host made a file of its own since: the move still shows.
    const later = encodeMeta(withEntry(parseMeta(written), 'theirs', { t: 'f' }));
    expect(shows?.(later)).toBe(true);
    // Not made: the old name's entry is still there, or the new name holds another entry.
    expect(shows?.(encodeMeta(metaDoc('', 7, { a: { t: 'f', m: 0o600 } }).meta))).toBe(false);
    const other = { b: { t: 'f' as const, m: 0o644 } };
    expect(shows?.(encodeMeta(metaDoc('', 8, other).meta))).toBe(false);
  });

  it('checks each directory for its own name when moving between two', () => {
    const plan = planRename({
      from: '/r/a',
      to: '/s/b',
      nodes: [node('', 'x', 1, 100)],
      fromMeta: metaDoc('/r/__zkfs__', 2, { a: { t: 'f' }, keep: { t: 'd' } }),
      toMeta: metaDoc('/s/__zkfs__', 3),
      maxBytes: ZK_MAX_REQUEST_BYTES,
    });
    const [fromDoc, toDoc] = plan.ops.filter((op) => op.path.endsWith('__zkfs__'));
    expect(applied(fromDoc)?.(encodeMeta(metaDoc('', 5, { keep: { t: 'd' }, new: { t: 'f' } }).meta))).toBe(
      true,
    );
    expect(applied(fromDoc)?.(encodeMeta(metaDoc('', 5, { a: { t: 'f' } }).meta))).toBe(false);
    const moved = parseMeta(toDoc?.op === 'setData' ? toDoc.data : undefined).entries.get('b');
    expect(applied(toDoc)?.(encodeMeta(metaDoc('', 6, { b: moved as MetaEntry, z: { t: 'f' } }).meta))).toBe(
      true,
    );
    expect(applied(toDoc)?.(encodeMeta(metaDoc('', 6).meta))).toBe(false);
  });

  describe("with the rename's token (write-proof.ts)", () => {
    const proofs = new WriteProofs();
    const token = proofs.issue();
    const proof = {
      mark: (meta: DirMeta) => proofs.withProof(meta, token),
      shows: (now: Buffer) => showsProof(now, token),
    };
    const marked = (ops: ReturnType<typeof planRename>['ops']) =>
      ops.filter((op) => (op.op === 'setData' || op.op === 'create') && op.proof !== undefined);
    const data = (op: ReturnType<typeof planRename>['ops'][number] | undefined) =>
      op && (op.op === 'setData' || op.op === 'create') ? op.data : Buffer.alloc(0);

    it('writes it into the one document of a move within a directory, which then shows it', () => {
      const plan = planRename({ ...withinOneDirectory(), proof });
      const [doc, ...more] = marked(plan.ops);
      expect(more).toEqual([]);
      expect(doc?.path).toBe('/r/__zkfs__');
      expect(showsProof(data(doc), token)).toBe(true);
      // The entries are what they are without the token.
      expect(parseMeta(data(doc)).entries).toEqual(
        parseMeta(data(planRename(withinOneDirectory()).ops.at(-1))).entries,
      );
    });

    it("writes it into the destination's document only, when moving between two directories", () => {
      const plan = planRename({
        from: '/r/a',
        to: '/s/b',
        nodes: [node('', 'x', 1, 100)],
        fromMeta: metaDoc('/r/__zkfs__', 2, { a: { t: 'f' } }),
        toMeta: metaDoc('/s/__zkfs__', 3),
        maxBytes: ZK_MAX_REQUEST_BYTES,
        proof,
      });
      expect(marked(plan.ops).map((op) => op.path)).toEqual(['/s/__zkfs__']);
      const fromDoc = plan.ops.find((op) => op.path === '/r/__zkfs__');
      expect(showsProof(data(fromDoc), token)).toBe(false);
      // The source directory's document is still written first.
      expect(summary(plan.ops).slice(-2)).toEqual(['setData /r/__zkfs__ @2', 'setData /s/__zkfs__ @3']);
    });
  });
});
