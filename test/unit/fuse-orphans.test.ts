/**
 * What a file deleted while open answers (fuse/orphans.ts): its attributes
 * and data as they were when its name went.
 */
import { describe, expect, it } from 'vitest';
import { Orphans } from '../../src/adapters/fuse/orphans.js';
import type { FileAttr } from '../../src/adapters/zkfs/attr-ops.js';
import type { OpenFile } from '../../src/adapters/zkfs/open-files.js';
import { NodeTable } from '../../src/core/fuse/node-table.js';
import { S_IFREG } from '../../src/core/zkfs/attrs.js';
import { FileBuffer } from '../../src/core/zkfs/file-buffer.js';

const EMPTY_FILE: FileAttr = {
  mode: S_IFREG | 0o644,
  uid: 0,
  gid: 0,
  size: 0,
  mtimeMs: 0,
  atimeMs: 0,
  ctimeMs: 0,
  nlink: 1,
};

describe('Orphans', () => {
  it('keeps the data and size of a file open here that no cache holds, though the kernel was given it empty', () => {
    // Made here (the kernel was told: empty), written, renamed over another name, opened for
    // reading, then deleted: no cache holds its attributes or data, its open buffer does.
    const nodes = new NodeTable<FileAttr>();
    const id = nodes.lookup('/shared/n1', EMPTY_FILE);
    const content = Buffer.from('a whole file\n');
    const buffer = new FileBuffer(content, 1 << 20);
    const open = { buffer, seq: 1, flushedSeq: 1 } as unknown as OpenFile;
    const orphans = new Orphans(nodes, { lastSeen: () => ({ attr: undefined, data: undefined, open }) });
    orphans.gone(orphans.leaving('/shared/n1'));
    expect(nodes.path(id)).toBeUndefined();
    expect(orphans.attr(id).size).toBe(content.length);
    expect(orphans.read(id, 4096, 0)).toEqual(content);
  });

  it('keeps a file made here as it was made when memory already holds the file that replaced it', () => {
    // Another host's rename over the name right after this mount made it: memory describes theirs.
    const nodes = new NodeTable<FileAttr>();
    const id = nodes.lookup('/f', EMPTY_FILE);
    const theirs = Buffer.from('their whole file\n');
    const orphans = new Orphans(nodes, {
      lastSeen: () => ({ attr: { ...EMPTY_FILE, size: theirs.length }, data: theirs, open: undefined }),
    });
    const buffer = new FileBuffer(Buffer.alloc(0), 1 << 20);
    const open = { buffer, seq: 1, flushedSeq: 0 } as unknown as OpenFile;
    orphans.gone(orphans.leaving('/f', { attr: EMPTY_FILE, data: undefined, open }));
    buffer.write(Buffer.from('mine'), 0);
    expect(nodes.path(id)).toBeUndefined();
    expect(orphans.attr(id)).toMatchObject({ size: 4, nlink: 0 });
  });
});
