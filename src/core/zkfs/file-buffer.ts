/**
 * The bytes of an open file between open and flush: writes at any offset
 * (a gap reads as NUL bytes, as in a sparse file), truncation and reads,
 * with a hard size limit. A write or truncate past the limit throws EFBIG
 * and leaves the content exactly as it was — nothing is ever cut short.
 * Capacity grows geometrically so that many small appends stay linear.
 */
import { FsError } from './errors.js';

export class FileBuffer {
  private bytes: Buffer;
  private size: number;

  constructor(
    initial: Buffer,
    readonly maxSize: number,
  ) {
    this.bytes = Buffer.from(initial);
    this.size = initial.length;
  }

  get length(): number {
    return this.size;
  }

  /** A copy of the current content. */
  content(): Buffer {
    return Buffer.from(this.bytes.subarray(0, this.size));
  }

  /** A view of the current content (valid until the next change). */
  view(): Buffer {
    return this.bytes.subarray(0, this.size);
  }

  read(offset: number, length: number): Buffer {
    if (offset >= this.size || length <= 0) return Buffer.alloc(0);
    return Buffer.from(this.bytes.subarray(offset, Math.min(this.size, offset + length)));
  }

  /** Writes `chunk` at `offset`; returns the number of bytes written. */
  write(chunk: Buffer, offset: number): number {
    const end = offset + chunk.length;
    if (end > this.maxSize) {
      throw new FsError('EFBIG', `writing up to byte ${end} exceeds the ${this.maxSize}-byte limit`);
    }
    this.ensure(end);
    if (offset > this.size) this.bytes.fill(0, this.size, offset);
    chunk.copy(this.bytes, offset);
    if (end > this.size) this.size = end;
    return chunk.length;
  }

  truncate(length: number): void {
    if (length > this.maxSize) {
      throw new FsError('EFBIG', `truncating to ${length} bytes exceeds the ${this.maxSize}-byte limit`);
    }
    if (length > this.size) {
      this.ensure(length);
      this.bytes.fill(0, this.size, length);
    }
    this.size = length;
  }

  /** Replaces the whole content (a fresh read from the server). */
  reset(content: Buffer): void {
    this.bytes = Buffer.from(content);
    this.size = content.length;
  }

  private ensure(capacity: number): void {
    if (capacity <= this.bytes.length) return;
    const grown = Buffer.alloc(Math.min(this.maxSize, Math.max(capacity, this.bytes.length * 2, 4096)));
    this.bytes.copy(grown, 0, 0, this.size);
    this.bytes = grown;
  }
}
