import { describe, expect, it } from 'vitest';
import { allocateNumbers } from '../../src/core/numbering.js';

const ids = (...xs: string[]) => xs.map((id) => ({ id }));

describe('allocateNumbers', () => {
  const cases: {
    name: string;
    taken: number[];
    wanted: { id: string; preferred?: number | null }[];
    limit?: number;
    expected: Record<string, number>;
  }[] = [
    {
      name: 'numbers from 0 in request order',
      taken: [],
      wanted: ids('a', 'b', 'c'),
      expected: { a: 0, b: 1, c: 2 },
    },
    {
      name: 'fills gaps left by other disks',
      taken: [0, 2],
      wanted: ids('a', 'b'),
      expected: { a: 1, b: 3 },
    },
    {
      name: 'a returning disk gets its old number back',
      taken: [0],
      wanted: [{ id: 'new' }, { id: 'back', preferred: 1 }],
      expected: { new: 2, back: 1 },
    },
    {
      name: 'a preferred number already taken falls back to the lowest free',
      taken: [1],
      wanted: [{ id: 'back', preferred: 1 }],
      expected: { back: 0 },
    },
    {
      name: 'a preferred number at or above the limit is ignored',
      taken: [],
      wanted: [{ id: 'a', preferred: 5 }],
      limit: 3,
      expected: { a: 0 },
    },
    {
      name: 'two disks preferring one number: the first listed wins',
      taken: [],
      wanted: [
        { id: 'a', preferred: 0 },
        { id: 'b', preferred: 0 },
      ],
      expected: { a: 0, b: 1 },
    },
    {
      name: 'null preference is none',
      taken: [],
      wanted: [{ id: 'a', preferred: null }],
      expected: { a: 0 },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const got = allocateNumbers({
        taken: c.taken,
        wanted: c.wanted,
        ...(c.limit ? { limit: c.limit } : {}),
      });
      expect(Object.fromEntries(got)).toEqual(c.expected);
    });
  }

  it('gives reserved numbers only when the limit leaves no other', () => {
    const got = (limit: number) =>
      Object.fromEntries(allocateNumbers({ taken: [0], wanted: ids('a', 'b'), limit, reserved: [1] }));
    expect(got(0)).toEqual({ a: 2, b: 3 });
    expect(got(3)).toEqual({ a: 2, b: 1 });
  });

  it('refuses to go past the limit', () => {
    expect(() => allocateNumbers({ taken: [0, 1], wanted: ids('a'), limit: 2 })).toThrow(
      /no free disk number below 2/,
    );
  });
});
