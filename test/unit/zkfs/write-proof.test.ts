/**
 * The token a create leaves in its directory's metadata document, by which
 * a create sent again after a lost reply knows its first send went through.
 */
import { describe, expect, it } from 'vitest';
import { encodeMeta, parseMeta, withEntry } from '../../../src/core/zkfs/attrs.js';
import { PROOF_KEY, showsProof, WriteProofs } from '../../../src/core/zkfs/write-proof.js';

const T0 = Date.UTC(2026, 11, 4);
const tokens = (meta: ReturnType<typeof parseMeta>) => meta.extra[PROOF_KEY] as string[];

describe('create proofs', () => {
  it('are told apart, within a mount and between mounts', () => {
    const here = new WriteProofs();
    const there = new WriteProofs();
    const all = new Set<string>();
    for (let i = 0; i < 500; i++) {
      all.add(here.issue(T0));
      all.add(there.issue(T0));
    }
    expect(all.size).toBe(1000);
    expect(here.issue(T0).startsWith(`${T0.toString(36)}-`)).toBe(true);
  });

  it('stay in the document through another host rewriting it for its own change', () => {
    const here = new WriteProofs();
    const proof = here.issue(T0);
    const mine = encodeMeta(here.withProof(withEntry(parseMeta(undefined), 'mine', { t: 'f' }), proof, T0));
    expect(showsProof(mine, proof)).toBe(true);
    const theirs = encodeMeta(withEntry(parseMeta(mine), 'theirs', { t: 'd', m: 0o700 }));
    expect(showsProof(theirs, proof)).toBe(true);
    // Another mount's next create keeps it, while the first create waits for its reply.
    const there = new WriteProofs();
    const next = encodeMeta(there.withProof(parseMeta(theirs), there.issue(T0 + 5), T0 + 5));
    expect(showsProof(next, proof)).toBe(true);
    expect(showsProof(next, new WriteProofs().issue(T0))).toBe(false);
    expect(showsProof(Buffer.from('not json'), proof)).toBe(false);
  });

  it("leave with the mount's next write once their create was answered: a burst of creates leaves one", () => {
    const here = new WriteProofs();
    let meta = parseMeta(undefined);
    for (let i = 0; i < 1000; i++) {
      const proof = here.issue(T0 + i);
      meta = here.withProof(meta, proof, T0 + i);
      here.settle(proof);
    }
    expect(tokens(meta)).toHaveLength(1);
    // One still waiting for its reply stays.
    const waiting = here.issue(T0);
    meta = here.withProof(meta, waiting, T0);
    meta = here.withProof(meta, here.issue(T0), T0);
    expect(tokens(meta)).toContain(waiting);
  });

  it("keep other mounts' tokens ten minutes at most, the newest 64", () => {
    let meta = parseMeta(undefined);
    for (let i = 0; i < 100; i++) {
      const other = new WriteProofs();
      meta = other.withProof(meta, other.issue(T0 + i), T0 + i);
    }
    expect(tokens(meta)).toHaveLength(64);
    expect(
      tokens(meta)
        .at(-1)
        ?.startsWith((T0 + 99).toString(36)),
    ).toBe(true);
    const here = new WriteProofs();
    const late = here.issue(T0 + 11 * 60_000);
    expect(tokens(here.withProof(meta, late, T0 + 11 * 60_000))).toEqual([late]);
    // A token from a clock far ahead goes too, as does one this version cannot read.
    const odd = { ...meta, extra: { [PROOF_KEY]: ['zzzzzzzzz-1', 'junk', 7] } };
    const now = here.issue(T0);
    expect(tokens(here.withProof(odd, now, T0))).toEqual([now]);
  });

  it('leave the other top-level keys as they were', () => {
    const here = new WriteProofs();
    const proof = here.issue(T0);
    const meta = { ...parseMeta(undefined), extra: { future: { x: 1 } } };
    expect(here.withProof(meta, proof, T0).extra).toEqual({ future: { x: 1 }, [PROOF_KEY]: [proof] });
  });

  it('last one write, however many times it is built, and are settled when it ends, failed or not', async () => {
    const here = new WriteProofs();
    let marked = parseMeta(undefined);
    await expect(
      here.during(async (token) => {
        // Built twice (a race lost on the document): the same token both times.
        const first = encodeMeta(token.mark(withEntry(parseMeta(undefined), 'a', { t: 'f' })));
        marked = token.mark(withEntry(parseMeta(first), 'b', { t: 'f' }));
        expect(tokens(marked)).toHaveLength(1);
        expect(token.shows(encodeMeta(marked))).toBe(true);
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    // Settled: the mount's next write drops it.
    const next = here.withProof(marked, here.issue());
    expect(tokens(next)).toHaveLength(1);
    expect(tokens(next)).not.toContain(tokens(marked)[0]);
  });
});
