import { describe, expect, it } from 'vitest';
import { readCode, zeroPoint, type QuantBits, type QuantizedWeight, type QuantSpec } from '../../src/quant/layout.ts';
import { dequantizeWeight, f16Scale, quantizeWeight, roundHalfAway } from '../../src/quant/rtn.ts';
import { randomWeights } from '../helpers/quant-util.ts';

const SPECS: QuantSpec[] = [];
for (const bits of [4, 8] as const)
  for (const group of [32, 64, 128, 'channel'] as const)
    for (const symmetric of [true, false]) SPECS.push({ bits, group, symmetric });

const name = (s: QuantSpec) => `int${s.bits} g${s.group} ${s.symmetric ? 'sym' : 'asym'}`;

/** Weight with random rows plus an all-positive row, an all-negative row and a constant row. */
function testWeight(N: number, K: number, seed: number): Float32Array {
  const w = randomWeights(N * K, seed);
  for (let k = 0; k < K; k++) {
    w[0 * K + k] = Math.abs(w[k]) + 0.01;
    w[1 * K + k] = -Math.abs(w[K + k]);
    w[2 * K + k] = 0.3;
  }
  return w;
}

/** Code ranges a kernel may rely on. */
function codeRange(bits: QuantBits, symmetric: boolean): [number, number] {
  if (bits === 8) return symmetric ? [-127, 127] : [-128, 127];
  return symmetric ? [1, 15] : [0, 15];
}

describe('roundHalfAway', () => {
  it('rounds ties away from zero and is exact below ties', () => {
    expect([2.5, -2.5, 0.5, -0.5, 1.4999999, 0.49999999999999994, -0.49999999999999994].map(roundHalfAway)).toEqual([
      3, -3, 1, -1, 1, 0, -0,
    ]);
  });
});

describe('round trip', () => {
  for (const spec of SPECS) {
    it(`${name(spec)}: |w - deq(w)| <= scale/2 for every element`, () => {
      for (const K of [33, 100, 130, 256]) {
        const N = 7;
        const w = testWeight(N, K, K * 31 + spec.bits);
        const q = quantizeWeight(w, N, K, spec);
        const d = dequantizeWeight(q);
        const [lo, hi] = codeRange(spec.bits, spec.symmetric);
        for (let n = 0; n < N; n++) {
          for (let k = 0; k < q.Kp; k++) {
            const g = Math.floor(k / q.groupSize);
            const s = q.scales[n * q.groups + g];
            const code = readCode(q.values, q.bits, q.Kp, n, k);
            expect(code).toBeGreaterThanOrEqual(lo);
            expect(code).toBeLessThanOrEqual(hi);
            if (k >= K) {
              // Padding must dequantize to exactly 0.
              expect(code - zeroPoint(q, n, g), `padding (${n}, ${k}) K=${K}`).toBe(0);
              continue;
            }
            // Bound: half a quantization step (with 1e-6 slack for the f32-rounded scale), plus
            // one f32 rounding of the dequantized value itself (2^-23 |w| covers it).
            const err = Math.abs(w[n * K + k] - d[n * K + k]);
            const bound = (s / 2) * (1 + 1e-6) + 2 ** -23 * Math.abs(w[n * K + k]) + 1e-30;
            if (err > bound) throw new Error(`K=${K} (${n}, ${k}): w=${w[n * K + k]} deq=${d[n * K + k]} err=${err} > ${bound}`);
          }
        }
        if (spec.group === 'channel') expect([q.groups, q.groupSize, q.Kp]).toEqual([1, Math.ceil(K / 32) * 32, Math.ceil(K / 32) * 32]);
        else expect(q.Kp).toBe(Math.ceil(K / spec.group) * spec.group);
        if (!spec.symmetric) for (const z of q.zeros!) expect(Number.isInteger(z)).toBe(true);
      }
    });
  }
});

describe('special groups', () => {
  it('all-zero groups get scale 0, the neutral code, and dequantize to 0 (no NaN)', () => {
    for (const spec of SPECS) {
      const N = 3;
      const K = 256;
      const w = testWeight(N, K, 5);
      w.fill(0, 1 * K + 128, 1 * K + 256); // row 1, k = 128..255
      w.fill(0, 2 * K, 3 * K); // row 2 entirely
      const q = quantizeWeight(w, N, K, spec);
      const d = dequantizeWeight(q);
      expect(d.every(Number.isFinite), name(spec)).toBe(true);
      for (let k = 128; k < 256; k++) expect(d[K + k]).toBe(0);
      for (let k = 0; k < K; k++) expect(d[2 * K + k]).toBe(0);
      const g = spec.group === 'channel' ? 0 : 128 / spec.group;
      expect(q.scales[2 * q.groups]).toBe(0);
      if (spec.group !== 'channel') expect(q.scales[1 * q.groups + g]).toBe(0);
      // Stored code reads as 0 for int8, 8 for int4, whatever the symmetry; zero point likewise.
      expect(readCode(q.values, q.bits, q.Kp, 2, 0)).toBe(spec.bits === 8 ? 0 : 8);
      if (!spec.symmetric) expect(q.zeros![2 * q.groups]).toBe(spec.bits === 8 ? 0 : 8);
      expect(q.scales.every(Number.isFinite) && (q.zeros ?? []).every(Number.isFinite)).toBe(true);
    }
  });

  it('asymmetric: a two-valued group whose zero point is integral is reproduced exactly', () => {
    // Range [-51, 204] / 64: scale = 1/64 exactly, zero = 51; both values are exact codes.
    const w8 = new Float32Array(32).map((_, k) => (k % 3 === 0 ? -51 / 64 : 204 / 64));
    const q8 = quantizeWeight(w8, 1, 32, { bits: 8, group: 32, symmetric: false });
    expect([q8.scales[0], q8.zeros![0]]).toEqual([1 / 64, 51 - 128]);
    expect(readCode(q8.values, 8, 32, 0, 0)).toBe(-128); // u = 0
    expect(readCode(q8.values, 8, 32, 0, 1)).toBe(127); // u = 255
    expect(dequantizeWeight(q8)).toEqual(w8);
    // int4: range [-3, 12] / 4: scale 1/4, zero 3, nibbles 0 and 15.
    const w4 = new Float32Array(64).map((_, k) => (k % 5 === 0 ? -3 / 4 : 12 / 4));
    const q4 = quantizeWeight(w4, 1, 64, { bits: 4, group: 64, symmetric: false });
    expect([q4.scales[0], q4.zeros![0]]).toEqual([1 / 4, 3]);
    expect(dequantizeWeight(q4)).toEqual(w4);
  });

  it('asymmetric: a group {0, c} is exact up to the f16 rounding of the scale', () => {
    for (const bits of [4, 8] as const) {
      const w = new Float32Array(64).map((_, k) => (k % 2 ? 0.3 : 0));
      const d = dequantizeWeight(quantizeWeight(w, 1, 64, { bits, group: 64, symmetric: false }));
      // The scale is rounded up to f16 (11 significant bits): c comes back within 2^-11 of itself.
      for (let k = 0; k < 64; k++) expect(Math.abs(d[k] - w[k])).toBeLessThanOrEqual(2 ** -11 * 0.3);
    }
  });

  it('padding never affects the scale', () => {
    // Same 33 real values quantized per-channel (Kp 40) and with group 64 give the same scale.
    const w = randomWeights(33, 9);
    const a = quantizeWeight(w, 1, 33, { bits: 4, group: 'channel', symmetric: true });
    const b = quantizeWeight(w, 1, 33, { bits: 4, group: 64, symmetric: true });
    let amax = 0;
    for (const v of w) amax = Math.max(amax, Math.abs(v));
    expect(a.scales[0]).toBe(f16Scale(amax / 7, true));
    expect(b.scales[0]).toBe(a.scales[0]);
  });

  it('is deterministic', () => {
    const w = randomWeights(9 * 130, 3);
    const spec: QuantSpec = { bits: 4, group: 32, symmetric: false };
    const a: QuantizedWeight = quantizeWeight(w, 9, 130, spec);
    const b = quantizeWeight(w, 9, 130, spec);
    expect(a).toEqual(b);
  });
});

describe('speed', () => {
  it('quantizes and dequantizes 4096x4096 in well under a few seconds', () => {
    const N = 4096;
    const K = 4096;
    const w = new Float32Array(N * K);
    for (let i = 0; i < w.length; i++) w[i] = Math.sin(i * 0.7) * 0.05;
    for (const spec of [
      { bits: 4, group: 128, symmetric: false },
      { bits: 8, group: 'channel', symmetric: true },
    ] as QuantSpec[]) {
      const t0 = performance.now();
      const q = quantizeWeight(w, N, K, spec);
      const t1 = performance.now();
      dequantizeWeight(q);
      const t2 = performance.now();
      console.log(`${name(spec)} 4096x4096: quantize ${(t1 - t0).toFixed(0)} ms, dequantize ${(t2 - t1).toFixed(0)} ms`);
      expect(t1 - t0).toBeLessThan(3000);
    }
  }, 30000);
});

describe('clipSearch (least-squares scale for symmetric groups)', () => {
  it('never has a larger squared error than the max|w| scale, and fits closer at 4 bits', () => {
    const N = 16, K = 256;
    const w = new Float32Array(N * K);
    let s = 7;
    for (let i = 0; i < w.length; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const u = (s >>> 8) / 2 ** 24;
      w[i] = Math.tan((u - 0.5) * 2.6) * 0.1; // heavy-tailed, like real weights
    }
    for (const bits of [4, 8] as const) {
      const plain = quantizeWeight(w, N, K, { bits, group: 32, symmetric: true });
      const searched = quantizeWeight(w, N, K, { bits, group: 32, symmetric: true, clipSearch: true });
      const err = (q: typeof plain) => dequantizeWeight(q).reduce((acc, v, i) => acc + (v - w[i]) ** 2, 0);
      expect(err(searched)).toBeLessThanOrEqual(err(plain));
      if (bits === 4) expect(err(searched)).toBeLessThan(0.95 * err(plain));
      // clipping shrinks scales; the least-squares refit may nudge one up a little, never far
      for (let i = 0; i < plain.scales.length; i++) expect(searched.scales[i]).toBeLessThanOrEqual(plain.scales[i] * 1.05);
    }
  });
});
