import { describe, expect, it } from 'vitest';
import { formatSize, humanSize, parseSize, SizeError } from '../../src/core/units.js';

describe('parseSize', () => {
  it.each([
    ['0', 0],
    ['512', 512],
    ['512B', 512],
    ['1K', 1000],
    ['1KB', 1000],
    ['1k', 1000],
    ['1Ki', 1024],
    ['1KiB', 1024],
    ['100M', 100e6],
    ['100G', 100e9],
    ['100GB', 100e9],
    ['1Gi', 2 ** 30],
    ['4GiB', 4 * 2 ** 30],
    ['2T', 2e12],
    ['2Ti', 2 * 2 ** 40],
    ['1P', 1e15],
    ['1Pi', 2 ** 50],
    ['1.5G', 1.5e9],
    ['0.5Ki', 512],
  ])('reads %s as %d bytes', (text, bytes) => {
    expect(parseSize(text)).toBe(bytes);
  });

  it.each(['', 'G', '1X', '1Gib', '-1G', '1 G G', '1.0000001K', '1b', '99999999P', 'ten'])(
    'rejects %j',
    (text) => {
      expect(() => parseSize(text)).toThrow(SizeError);
    },
  );

  it('names the bad text in the error', () => {
    expect(() => parseSize('12Q')).toThrow(/'12Q' is not a size/);
  });
});

describe('formatSize', () => {
  it.each([
    [0, '0'],
    [512, '512'],
    [1000, '1K'],
    [1024, '1Ki'],
    [100e9, '100G'],
    [2 ** 30, '1Gi'],
    [1234567, '1234567'],
    [3 * 2 ** 40, '3Ti'],
  ])('writes %d as %s', (bytes, text) => {
    expect(formatSize(bytes)).toBe(text);
  });

  it('round-trips through parseSize', () => {
    for (const n of [1, 999, 4096, 10 ** 12, 5 * 2 ** 20, 123456789012, 2 ** 50]) {
      expect(parseSize(formatSize(n))).toBe(n);
    }
  });

  it('refuses negative and fractional byte counts', () => {
    expect(() => formatSize(-1)).toThrow(SizeError);
    expect(() => formatSize(1.5)).toThrow(SizeError);
  });
});

describe('humanSize', () => {
  it.each([
    [100, '100 B'],
    [64 * 2 ** 20, '64.0 MiB'],
    [1.5 * 2 ** 30, '1.50 GiB'],
    [2 * 10 ** 12, '1.82 TiB'],
  ])('shows %d as %s', (bytes, text) => {
    expect(humanSize(bytes)).toBe(text);
  });
});
