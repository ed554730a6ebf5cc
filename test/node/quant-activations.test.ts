import { describe, expect, it } from 'vitest';
import { groupSums, quantizeActivations, readActivationCode } from '../../src/quant/activations.ts';
import { checkActivationQuant, unpackInt8Rows } from '../../src/reference/quant-activations.ts';
import { randomWeights } from '../helpers/quant-util.ts';

describe('quantizeActivations', () => {
  it('|x - q*s| <= s/2 per element, max element maps to +-127, padding is 0', () => {
    const M = 5;
    const K = 100;
    const x = randomWeights(M * K, 11, 3);
    x.fill(0, 3 * K, 4 * K); // token 3 all zero
    const a = quantizeActivations(x, M, K, 128);
    expect(a.values.length).toBe(M * 32);
    const codes = unpackInt8Rows(a.values, M, 128);
    for (let t = 0; t < M; t++) {
      let amax = 0;
      for (let k = 0; k < K; k++) amax = Math.max(amax, Math.abs(x[t * K + k]));
      const s = a.scales[t];
      expect(s).toBe(Math.fround(amax / 127));
      let sawMax = t === 3;
      for (let k = 0; k < 128; k++) {
        const c = codes[t * 128 + k];
        expect(c).toBe(readActivationCode(a, t, k));
        if (k >= K) {
          expect(c).toBe(0);
          continue;
        }
        expect(Math.abs(c)).toBeLessThanOrEqual(127);
        const v = x[t * K + k];
        // Bound: half a step, with 1e-6 slack for the f32-rounded scale and quotient.
        expect(Math.abs(v - c * s)).toBeLessThanOrEqual((s / 2) * (1 + 1e-6) + 1e-30);
        if (Math.abs(v) === amax && amax > 0) sawMax = sawMax || Math.abs(c) === 127;
      }
      expect(sawMax).toBe(true);
    }
    expect(a.scales[3]).toBe(0);
    expect(codes.subarray(3 * 128, 4 * 128).every((c) => c === 0)).toBe(true);
  });

  it('rejects bad shapes', () => {
    expect(() => quantizeActivations(new Float32Array(10), 2, 6)).toThrow(/x has 10 elements, expected M\*K = 2\*6 = 12/);
    expect(() => quantizeActivations(new Float32Array(12), 2, 6, 6)).toThrow(/Kp must be a multiple of 4/);
    expect(() => quantizeActivations(new Float32Array([1, Infinity, 0, 0]), 1, 4)).toThrow(/x\[0\]\[1\] is Infinity/);
  });

  it('groupSums are the per-group sums of the int8 codes', () => {
    const x = randomWeights(3 * 130, 2, 1);
    const a = quantizeActivations(x, 3, 130, 256);
    const sums = groupSums(a, 64);
    expect(sums.length).toBe(3 * 4);
    const codes = unpackInt8Rows(a.values, 3, 256);
    for (let t = 0; t < 3; t++)
      for (let g = 0; g < 4; g++) {
        let s = 0;
        for (let k = g * 64; k < g * 64 + 64; k++) s += codes[t * 256 + k];
        expect(sums[t * 4 + g]).toBe(s);
      }
    expect(() => groupSums(a, 48)).toThrow(/groupSize must divide Kp=256/);
  });
});

describe('checkActivationQuant', () => {
  it('accepts the CPU result, a neighbour code only at a tie, and rejects real errors', () => {
    const M = 2;
    const K = 8;
    // Token 0: scale 1 exactly; x = 2.5 is a tie, so code 2 or 3 are both acceptable.
    const x = new Float32Array([127, 2.5, -3, 0, 1, 1, 1, 1, 0.5, -0.25, 0, 0, 0, 0, 0, 0.125]);
    const a = quantizeActivations(x, M, K);
    expect(checkActivationQuant(x, M, K, 8, a.values, a.scales)).toBeNull();
    const tie = a.values.slice();
    tie[0] = (tie[0] & ~0xff00) | (2 << 8); // code 2 instead of 3 at k=1 (a tie)
    expect(checkActivationQuant(x, M, K, 8, tie, a.scales)).toBeNull();
    const bad = a.values.slice();
    bad[0] = (bad[0] & ~0xff0000) | (0xfc << 16); // -4 instead of -3 at k=2
    expect(checkActivationQuant(x, M, K, 8, bad, a.scales)).toMatch(/token 0, k=2: .* got code -4, expected -3/);
    const badScale = a.scales.slice();
    badScale[1] *= 1.01;
    expect(checkActivationQuant(x, M, K, 8, a.values, badScale)).toMatch(/token 1: scale/);
  });
});
