import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/core/errors.js';
import { DEFAULT_CACHE_BYTES } from '../../../src/core/zkfs/cache-policy.js';
import { resolveCoherenceOptions } from '../../../src/core/zkfs/coherence-options.js';

describe('resolveCoherenceOptions', () => {
  it('fills in the defaults', () => {
    expect(resolveCoherenceOptions({})).toEqual({
      cacheBytes: DEFAULT_CACHE_BYTES,
      attrTimeoutMs: 10_000,
      reconnectTimeoutMs: 30_000,
      sessionTimeoutMs: 30_000,
    });
  });

  it.each([
    [{ cacheSize: '256M' }, { cacheBytes: 256_000_000 }],
    [{ cacheSize: '1Gi' }, { cacheBytes: 2 ** 30 }],
    [{ cacheSize: '0' }, { cacheBytes: 0 }],
    [{ cacheSize: 4096 }, { cacheBytes: 4096 }],
    [{ attrTimeout: '0' }, { attrTimeoutMs: 0 }],
    [{ attrTimeout: '250' }, { attrTimeoutMs: 250 }],
    [{ reconnectTimeout: '1.5' }, { reconnectTimeoutMs: 1500 }],
    [{ sessionTimeout: '4' }, { sessionTimeoutMs: 4000 }],
  ])('reads %o', (raw, expected) => {
    expect(resolveCoherenceOptions(raw)).toMatchObject(expected);
  });

  it.each([
    [{ cacheSize: 'lots' }, /--cache-size/],
    [{ cacheSize: '-1' }, /--cache-size/],
    [{ cacheSize: '2Ti' }, /--cache-size 2Ti is out of range/],
    [{ attrTimeout: '-5' }, /--attr-timeout '-5'/],
    [{ attrTimeout: 'soon' }, /--attr-timeout 'soon' is not a number of milliseconds/],
    [{ reconnectTimeout: '1e3' }, /--reconnect-timeout/],
    [{ sessionTimeout: '0.5' }, /--session-timeout 0.5 is shorter than 1 second/],
    [{ sessionTimeout: '99999' }, /--session-timeout/],
  ])('refuses %o, naming the option', (raw, message) => {
    expect(() => resolveCoherenceOptions(raw)).toThrow(UsageError);
    expect(() => resolveCoherenceOptions(raw)).toThrow(message);
  });
});
