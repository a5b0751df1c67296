import { describe, expect, it } from 'vitest';
import { canAnimate, createOutput, table } from '../../src/cli/output.js';

describe('terminal output', () => {
  it.each([
    [{ isTTY: true, columns: 80 }, true],
    [{ isTTY: true, columns: 0 }, false],
    [{ isTTY: true }, false],
    [{ isTTY: false, columns: 80 }, false],
    [{}, false],
  ])('draws a spinner on %o: %s', (stream, expected) => {
    expect(canAnimate(stream)).toBe(expected);
  });

  it('aligns table columns by visible width, colour codes ignored', () => {
    const out = createOutput({ json: false, color: true, interactive: false });
    const text = table(out, ['A', 'B'], [[out.color.red('xx'), 'y']]);
    const plain = text.replace(/\u001b\[[0-9;]*m/g, '');
    expect(plain.split('\n')).toEqual(['A   B', 'xx  y']);
  });
});
