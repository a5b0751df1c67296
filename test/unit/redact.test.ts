/**
 * Masking secrets in text: every occurrence, and the longest first, so that
 * a secret that begins another leaves nothing of the longer one showing.
 */
import { describe, expect, it } from 'vitest';
import { redact } from '../../src/core/redact.js';

describe('redact', () => {
  it('masks every occurrence of each secret', () => {
    expect(redact('pw=abc, again abc', ['abc'])).toBe('pw=***, again ***');
  });

  it('masks a longer secret whole, whatever order the secrets came in', () => {
    expect(redact('auth app:pw-prod then app:pw', ['app:pw', 'app:pw-prod'])).toBe('auth *** then ***');
  });

  it('leaves text alone for an empty secret', () => {
    expect(redact('nothing', [''])).toBe('nothing');
  });
});
