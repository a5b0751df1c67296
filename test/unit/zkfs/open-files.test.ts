import { describe, expect, it } from 'vitest';
import { isReadOnlyAt, OpenFiles } from '../../../src/adapters/zkfs/open-files.js';

/** A file of version 4 opened once for reading. */
function readerOnly() {
  const files = new OpenFiles();
  const file = files.attach('/app/a.conf', '/a.conf', Buffer.from('abc'), 4, 1024);
  const reader = files.open(file, { writable: false, append: false });
  return { files, file, reader };
}

describe('open files a page-cache store may go to', () => {
  it('takes a file open only for reading, at the version it holds', () => {
    const { file } = readerOnly();
    expect(isReadOnlyAt(file, 4)).toBe(true);
    expect(isReadOnlyAt(file, 5)).toBe(false);
  });

  it('refuses one open for writing until the writer closes', () => {
    const { files, file } = readerOnly();
    const writer = files.open(file, { writable: true, append: false });
    expect(isReadOnlyAt(file, 4)).toBe(false);
    files.close(writer);
    expect(isReadOnlyAt(file, 4)).toBe(true);
  });

  it('refuses one holding a change not yet written back, or unlinked here', () => {
    const dirty = readerOnly().file;
    dirty.seq++;
    expect(isReadOnlyAt(dirty, 4)).toBe(false);
    const { files, file } = readerOnly();
    files.markDeleted('/app/a.conf');
    expect(isReadOnlyAt(file, 4)).toBe(false);
  });
});
