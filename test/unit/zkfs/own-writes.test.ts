/**
 * Telling a write's own change notices from another host's that arrive
 * while it is out: which ops may be written through, which names the
 * write made may have been deleted by someone else right after, and which
 * deletions counted as its own were someone else's.
 */
import { describe, expect, it } from 'vitest';
import { OwnWrites } from '../../../src/adapters/zkfs/own-writes.js';
import type { ZkOp } from '../../../src/core/zkfs/zk-ops.js';

const create = (path: string): ZkOp => ({ op: 'create', path, data: Buffer.alloc(0), acl: [] });
const remove = (path: string): ZkOp => ({ op: 'delete', path, version: -1 });
const doc = (path: string): ZkOp => ({ op: 'setData', path, data: Buffer.from('{}'), version: 0 });

/** A rename of /d/.t over `to`, replacing a file there when `over`. */
function rename(over: boolean): ZkOp[] {
  return [...(over ? [remove('/d/n')] : []), create('/d/n'), remove('/d/.t'), doc('/d/__zkfs__')];
}

describe('OwnWrites', () => {
  it('finds nothing doubtful in a rename whose notices were its own', () => {
    for (const over of [false, true]) {
      const own = new OwnWrites();
      const write = own.begin(rename(over), 0);
      if (over) expect(own.observe('/d/n', [], true)).toBe(true);
      expect(own.observe('/d/n', [])).toBe(true);
      own.observe('/d/.t', [], true);
      own.observe('/d/__zkfs__', []);
      expect(own.finish(write, true).doubted).toEqual([]);
    }
  });

  it('takes a write holding a check for its own: a check brings no notice', () => {
    // A create that drops a sibling's mark checks the sibling's version (file-marks.ts).
    const own = new OwnWrites();
    const check: ZkOp = { op: 'check', path: '/d/old', version: 1 };
    const write = own.begin([create('/d/n'), check, doc('/d/__zkfs__')], 0);
    expect(own.observe('/d/n', [{ path: '/n', entry: true }])).toBe(true);
    expect(own.observe('/d/__zkfs__', [{ path: '/d', entry: true }])).toBe(true);
    const { alone, stale } = own.finish(write, true);
    expect(alone.map((op) => op.path)).toEqual(['/d/n', '/d/__zkfs__']);
    // Nothing for the kernel: it saw this write itself (before, it was told to drop /d).
    expect(stale).toEqual([]);
  });

  it("passes on another host's change to the top directory's document, heard while a write of it was out and lost", () => {
    // Another host's chmod of /top wins the race for the root's document: this write fails, and
    // the kernel must still drop what it holds of the names at the top (no older document to diff).
    const own = new OwnWrites();
    const write = own.begin([create('/n'), doc('/__zkfs__')], 0);
    expect(own.observe('/__zkfs__', 'prune')).toBe(true);
    expect(own.finish(write, false).stale).toEqual([[], 'prune']);
  });

  it("doubts a name it made when another host's deletion of it came with its notices", () => {
    for (const over of [false, true]) {
      const own = new OwnWrites();
      const write = own.begin(rename(over), 0);
      if (over) own.observe('/d/n', [], true);
      own.observe('/d/n', []);
      own.observe('/d/.t', [], true);
      own.observe('/d/__zkfs__', []);
      // Another host renames over the name just made: its deletion is taken for the write's own.
      expect(own.observe('/d/n', [], true)).toBe(true);
      own.observe('/d/n', []);
      const { alone, doubted } = own.finish(write, true);
      expect(doubted).toEqual(['/d/n']);
      expect(alone.map((op) => op.path)).not.toContain('/d/n');
    }
  });

  it('doubts nothing for a write that failed, nor for names it only deletes', () => {
    const own = new OwnWrites();
    const failed = own.begin(rename(false), 0);
    own.observe('/d/n', [], true);
    expect(own.finish(failed, false).doubted).toEqual([]);
    const unlink = own.begin([remove('/d/x'), doc('/d/__zkfs__')], 0);
    own.observe('/d/x', [], true);
    own.observe('/d/x', [], true);
    expect(own.finish(unlink, true).doubted).toEqual([]);
  });

  it("hands back another host's deletion counted for a write that failed, or beyond the deletions a write made", () => {
    const own = new OwnWrites();
    const acted: string[] = [];
    const hear = (path: string) => {
      expect(own.observe(path, [], true)).toBe(true);
      own.holdDeletion(path, () => acted.push(path));
    };
    // A rename of /d/s to /d/f that lost the race for the document to another host's rename over /d/s.
    const failed = own.begin([create('/d/f'), remove('/d/s'), doc('/d/__zkfs__')], 0);
    hear('/d/s');
    own.observe('/d/s', []);
    expect(acted).toEqual([]);
    for (const act of own.finish(failed, false).deletedElsewhere) act();
    expect(acted).toEqual(['/d/s']);
    // Its own deletion alone: nothing.
    const unlink = own.begin([remove('/d/x'), doc('/d/__zkfs__')], 0);
    hear('/d/x');
    expect(own.finish(unlink, true).deletedElsewhere).toEqual([]);
    // One more than it made: another host's.
    const twice = own.begin([remove('/d/y'), doc('/d/__zkfs__')], 0);
    hear('/d/y');
    hear('/d/y');
    expect(own.finish(twice, true).deletedElsewhere).toHaveLength(1);
    // A name the write made is doubted instead: the deletion may have been of its node.
    const over = own.begin(rename(true), 0);
    hear('/d/n');
    hear('/d/n');
    const { doubted, deletedElsewhere } = own.finish(over, true);
    expect(doubted).toEqual(['/d/n']);
    expect(deletedElsewhere).toEqual([]);
  });

  it('acts at once on a deletion no write out makes, though one out writes the name', () => {
    // A write-back of /d/m while another host removes it: the deletion is that host's.
    const own = new OwnWrites();
    let acted = 0;
    const writeBack = own.begin([doc('/d/m')], 0);
    expect(own.observe('/d/m', [], true)).toBe(true);
    own.holdDeletion('/d/m', () => acted++);
    expect(acted).toBe(1);
    expect(own.finish(writeBack, false).deletedElsewhere).toEqual([]);
  });

  it('takes a deletion for the write that made it, whatever else wrote the name meanwhile', () => {
    const own = new OwnWrites();
    let acted = 0;
    // `rm log` while a program's write-back of log is out: the write-back fails, the removal is ours.
    const writeBack = own.begin([doc('/d/log')], 0);
    const unlink = own.begin([remove('/d/log'), doc('/d/__zkfs__')], 0);
    own.observe('/d/log', [], true);
    own.holdDeletion('/d/log', () => acted++);
    expect(own.finish(unlink, true).deletedElsewhere).toEqual([]);
    expect(own.finish(writeBack, false).deletedElsewhere).toEqual([]);
    // Two removals of one name here: the first to end made it, the other failed.
    const first = own.begin([remove('/d/x'), doc('/d/__zkfs__')], 0);
    const second = own.begin([remove('/d/x'), doc('/d/__zkfs__')], 0);
    own.observe('/d/x', [], true);
    own.holdDeletion('/d/x', () => acted++);
    expect(own.finish(first, true).deletedElsewhere).toEqual([]);
    expect(own.finish(second, false).deletedElsewhere).toEqual([]);
    expect(acted).toBe(0);
  });

  it('acts once on a deletion two failed writes both counted', () => {
    const own = new OwnWrites();
    let acted = 0;
    const first = own.begin([remove('/d/s'), doc('/d/__zkfs__')], 0);
    const second = own.begin([remove('/d/s'), create('/d/t'), doc('/d/__zkfs__')], 0);
    expect(own.observe('/d/s', [], true)).toBe(true);
    own.holdDeletion('/d/s', () => acted++);
    for (const write of [first, second]) for (const act of own.finish(write, false).deletedElsewhere) act();
    expect(acted).toBe(1);
  });
});
