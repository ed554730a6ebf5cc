import { describe, expect, it } from 'vitest';
import { erf, erfc, gelu, silu } from '../../src/reference/math.ts';

// Reference values from high-precision tables (mpmath, 17 significant digits).
const ERF: [number, number][] = [
  [0.5, 0.5204998778130465],
  [1, 0.8427007929497149],
  [2, 0.9953222650189527],
  [-3, -0.9999779095030014],
  [1e-8, 1.1283791670955126e-8],
  [0, 0],
  [2.5, 0.999593047982555],
  [-0.1, -0.1124629160182849],
];

describe('erf', () => {
  it('matches known values to ~1e-14 relative', () => {
    for (const [x, v] of ERF) {
      const got = erf(x);
      expect(Math.abs(got - v), `erf(${x}) = ${got}, expected ${v}`).toBeLessThanOrEqual(1e-14 * Math.abs(v) + 1e-300);
    }
  });

  it('is odd, saturates, and is continuous across the series / continued-fraction switch at 2.5', () => {
    for (const x of [0.3, 1.7, 2.49, 3.3, 6]) expect(erf(-x)).toBe(-erf(x));
    expect(erf(30)).toBe(1);
    expect(erf(-Infinity)).toBe(-1);
    expect(Number.isNaN(erf(NaN))).toBe(true);
    const below = erf(2.5 - 1e-12);
    const above = erf(2.5);
    expect(Math.abs(above - below)).toBeLessThan(1e-14);
  });

  it('erfc keeps relative accuracy in the tail', () => {
    const tail: [number, number][] = [
      [3, 2.209049699858544e-5],
      [5, 1.5374597944280349e-12],
      [10, 2.088487583762545e-45],
      [2.5, 4.069520174449590e-4],
      [-1, 1.842700792949715],
    ];
    for (const [x, v] of tail) {
      expect(Math.abs(erfc(x) - v), `erfc(${x})`).toBeLessThanOrEqual(1e-13 * v);
    }
  });
});

describe('gelu / silu', () => {
  it('gelu is the erf form', () => {
    expect(gelu(0)).toBe(0);
    expect(Math.abs(gelu(1) - 0.8413447460685429)).toBeLessThan(1e-15);
    expect(Math.abs(gelu(-1) - -0.15865525393145707)).toBeLessThan(1e-15);
    // Deep negative tail: relative accuracy holds thanks to erfc.
    // gelu(-10) = -10 * Phi(-10), Phi(-10) = 7.619853024160527e-24.
    const v = -10 * 7.619853024160527e-24;
    expect(Math.abs(gelu(-10) - v)).toBeLessThan(1e-13 * Math.abs(v));
    expect(gelu(50)).toBe(50);
  });

  it('silu', () => {
    expect(silu(0)).toBe(0);
    expect(Math.abs(silu(1) - 0.7310585786300049)).toBeLessThan(1e-15);
    expect(silu(-1000)).toBe(-0);
    expect(silu(1000)).toBe(1000);
  });
});
