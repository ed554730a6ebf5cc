// The quantization toolkit's CPU math against plain references: GPTQ (blocked, Cholesky, lazy
// updates) against the OBQ update it comes from, AWQ's search from X^T X against the same search
// on the activations, both against round-to-nearest on inputs with outlier channels; static
// activation thresholds (min-max, percentile, TensorRT KL); the mixed-precision knapsack against
// brute force; SmoothQuant's formula. No GPU.
import { describe, expect, it } from 'vitest';
import { awqClipParams, awqQuantize, awqSearchScales, refitParams } from '../../src/quant/awq.ts';
import { gptqQuantize, outputError } from '../../src/quant/gptq.ts';
import type { QuantSpec } from '../../src/quant/layout.ts';
import { chooseBits, type MixedUnit } from '../../src/quant/mixed.ts';
import { dequantizeWeight, quantizeWeight, quantizeWeightRanges, quantizeWithParams, groupRanges } from '../../src/quant/rtn.ts';
import { smoothScales } from '../../src/quant/smooth.ts';
import { klThreshold, percentileThreshold, staticActivationScale } from '../../src/quant/static-act.ts';
import { refAwqClip, refAwqSearch } from '../../src/reference/awq.ts';
import { refBestGroupParams } from '../../src/reference/range-search.ts';
import { refInputStats } from '../../src/reference/calib-stats.ts';
import { refGptq } from '../../src/reference/gptq.ts';
import { randn, rng } from '../kernels/check.ts';

const Q4: QuantSpec = { bits: 4, group: 32, symmetric: false };

/**
 * Activations [M, K] like an LLM's: correlated channels (a shared low-rank part), and a few
 * channels `scale` times larger than the rest (massive activations).
 */
function activations(M: number, K: number, seed: number, outliers: number[] = [3, 17], scale = 25): Float32Array {
  const r = rng(seed);
  const base = randn(M * 4, seed + 1);
  const mix = randn(4 * K, seed + 2);
  const x = new Float32Array(M * K);
  for (let m = 0; m < M; m++) {
    for (let k = 0; k < K; k++) {
      let v = 0.5 * (r() * 2 - 1);
      for (let j = 0; j < 4; j++) v += base[m * 4 + j] * mix[j * K + k] * 0.5;
      x[m * K + k] = outliers.includes(k) ? v * scale : v;
    }
  }
  return x;
}

function gramOf(x: Float32Array, M: number, K: number): Float32Array {
  return refInputStats(x, M, K).gram!;
}

function errorOf(deq: Float32Array, w: Float32Array, N: number, K: number, gram: Float32Array): number {
  return outputError(deq.map((v, i) => v - w[i]), N, K, gram);
}

describe('round-to-nearest building blocks', () => {
  it('quantizeWeightRanges with each group\'s own range is quantizeWeight, bit for bit (K not a multiple of the group)', () => {
    for (const spec of [Q4, { bits: 8, group: 'channel', symmetric: true }, { bits: 4, group: 64, symmetric: true }, { bits: 8, group: 32, symmetric: false }] as QuantSpec[]) {
      const [N, K] = [7, 100];
      const w = randn(N * K, 5, 0.1);
      const { lo, hi } = groupRanges(w, N, K, spec);
      const a = quantizeWeight(w, N, K, spec);
      const b = quantizeWeightRanges(w, N, K, spec, lo, hi);
      expect(Array.from(b.values)).toEqual(Array.from(a.values));
      expect(Array.from(b.scales)).toEqual(Array.from(a.scales));
      expect(b.zeros && Array.from(b.zeros)).toEqual(a.zeros && Array.from(a.zeros));
    }
  });
});

describe('range search (clipSearch: the default for 4-bit round-to-nearest)', () => {
  /** Groups like trained weights: heavy-tailed, a few large values. */
  const heavy = (n: number, seed: number) => {
    const r = rng(seed);
    return Float32Array.from({ length: n }, () => Math.tan((r() - 0.5) * 2.6) * 0.05);
  };
  for (const symmetric of [false, true]) {
    it(`${symmetric ? 'symmetric' : 'asymmetric'}: never more (weighted) squared error than min-max, and most of the way to a dense grid's optimum`, () => {
      const [N, K] = [24, 128];
      const w = heavy(N * K, symmetric ? 3 : 4);
      const spec: QuantSpec = { bits: 4, group: 32, symmetric, clipSearch: true };
      const plain = dequantizeWeight(quantizeWeight(w, N, K, { ...spec, clipSearch: false }));
      const searched = dequantizeWeight(quantizeWeight(w, N, K, spec));
      let [ePlain, eSearch, eBest] = [0, 0, 0];
      for (let g = 0; g < (N * K) / 32; g++) {
        // The search's objective: squared errors weighted by rms + |w| (a large weight counts more).
        let [a, b, sq] = [0, 0, 0];
        for (let i = g * 32; i < g * 32 + 32; i++) sq += w[i] * w[i];
        const rms = Math.sqrt(sq / 32);
        for (let i = g * 32; i < g * 32 + 32; i++) [a, b] = [a + (rms + Math.abs(w[i])) * (plain[i] - w[i]) ** 2, b + (rms + Math.abs(w[i])) * (searched[i] - w[i]) ** 2];
        expect(b).toBeLessThanOrEqual(a * (1 + 1e-9));
        // The grid is fine but discrete: the search's least-squares scales may fall between its points.
        const best = refBestGroupParams(w, g * 32, g * 32 + 32, spec, 200);
        [ePlain, eSearch, eBest] = [ePlain + a, eSearch + b, eBest + best.error];
      }
      const closed = (ePlain - eSearch) / (ePlain - eBest);
      console.log(`range search, ${symmetric ? 'sym' : 'asym'} int4 g32: weighted squared error ${(eSearch / ePlain).toFixed(3)}x min-max's; the dense grid's optimum ${(eBest / ePlain).toFixed(3)}x (the search closes ${(100 * closed).toFixed(0)}% of the gap)`);
      expect(eSearch).toBeLessThan(0.95 * ePlain);
      expect(closed).toBeGreaterThan(0.6);
    });
  }
});

describe('GPTQ', () => {
  const [N, K, M] = [24, 96, 400];
  const x = activations(M, K, 11);
  const gram = gramOf(x, M, K);
  const w = randn(N * K, 12, 1 / Math.sqrt(K));

  it('blocked with lazy updates (block 32) gives the OBQ reference\'s codes', () => {
    const a = dequantizeWeight(gptqQuantize(w, N, K, Q4, gram, { blockSize: 32 }));
    const b = dequantizeWeight(refGptq(w, N, K, Q4, gram));
    let same = 0;
    for (let i = 0; i < a.length; i++) same += a[i] === b[i] ? 1 : 0;
    // Summation order differs; a value on a rounding tie may go the other way.
    expect(same / a.length).toBeGreaterThan(0.995);
    const [ea, eb] = [errorOf(a, w, N, K, gram), errorOf(b, w, N, K, gram)];
    expect(Math.abs(ea - eb) / eb).toBeLessThan(0.01);
  });

  it('with H = I (no correlation to exploit) it is round-to-nearest', () => {
    const eye = new Float32Array(K * K);
    for (let i = 0; i < K; i++) eye[i * K + i] = 1;
    const a = gptqQuantize(w, N, K, Q4, eye);
    const b = quantizeWeight(w, N, K, Q4);
    expect(Array.from(a.values)).toEqual(Array.from(b.values));
  });

  it('has less output error than RTN at the same group, with and without act-order', () => {
    const rtn = errorOf(dequantizeWeight(quantizeWeight(w, N, K, Q4)), w, N, K, gram);
    const g = errorOf(dequantizeWeight(gptqQuantize(w, N, K, Q4, gram)), w, N, K, gram);
    const ao = errorOf(dequantizeWeight(gptqQuantize(w, N, K, Q4, gram, { actOrder: true })), w, N, K, gram);
    const q8: QuantSpec = { bits: 8, group: 'channel', symmetric: true };
    const rtn8 = errorOf(dequantizeWeight(quantizeWeight(w, N, K, q8)), w, N, K, gram);
    const g8 = errorOf(dequantizeWeight(gptqQuantize(w, N, K, q8, gram)), w, N, K, gram);
    console.log(`GPTQ output error / RTN's: q4 g32 ${(g / rtn).toFixed(3)}, act-order ${(ao / rtn).toFixed(3)}; 8-bit per channel ${(g8 / rtn8).toFixed(3)}`);
    expect(g).toBeLessThan(0.8 * rtn);
    expect(ao).toBeLessThan(0.8 * rtn);
    expect(g8).toBeLessThan(rtn8);
  });
});

describe('AWQ', () => {
  const [N, K, M] = [32, 64, 300];
  const x = activations(M, K, 21, [5, 40], 30);
  const gram = gramOf(x, M, K);
  const w = randn(N * K, 22, 1 / Math.sqrt(K));
  const meanAbs = refInputStats(x, M, K).sumAbs.map((v) => v / M);

  it('the search from X^T X finds the round-to-nearest errors of the search on the activations, then clips the best alphas', () => {
    const ref = refAwqSearch(w, N, K, Q4, x, M);
    const got = awqSearchScales(w, N, K, Q4, meanAbs, gram);
    got.rtnErrors.forEach((e, i) => expect(Math.abs(e - ref.errors[i]) / ref.errors[i]).toBeLessThan(1e-3));
    // The finalists are the four alphas with the least round-to-nearest error (on the activations).
    const best4 = ref.errors.map((e, i) => [e, i / 20]).sort((a, b) => a[0] - b[0]).slice(0, 4).map((p) => p[1]);
    expect(got.finalists.map((f) => f.alpha).sort()).toEqual(best4.sort());
    expect(got.finalists.some((f) => f.alpha === got.alpha && f.error === got.error)).toBe(true);
    for (const f of got.finalists) expect(got.error).toBeLessThanOrEqual(f.error);
    // Clipping only lowers an alpha's error: the result beats every alpha's round-to-nearest.
    expect(got.error).toBeLessThanOrEqual(Math.min(...ref.errors) * (1 + 1e-6));
    expect(Math.abs(got.rtnError - ref.errors[0]) / ref.errors[0]).toBeLessThan(1e-3);
  });

  it('the clipping from X^T X chooses what the same search on the activations chooses, and never loses to round-to-nearest', () => {
    const spec: QuantSpec = { ...Q4, clipSearch: true };
    const noClipRows = (n: number) => n < 4;
    const got = awqClipParams(w, N, K, spec, gram, { noClipRows });
    const ref = refAwqClip(w, N, K, spec, x, M, { noClipRows });
    let same = 0;
    for (let i = 0; i < got.scales.length; i++) same += got.scales[i] === ref.scales[i] && got.zeros![i] === ref.zeros![i] ? 1 : 0;
    expect(same / got.scales.length).toBeGreaterThan(0.98);
    // Per row and group, the output error is at most round-to-nearest's (searched) own.
    const rtn = dequantizeWeight(quantizeWeight(w, N, K, spec));
    const awq = dequantizeWeight(quantizeWithParams(w, N, K, spec, got.scales, got.zeros));
    let lower = 0;
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < K / 32; g++) {
        const part = (deq: Float32Array) => {
          const d = new Float64Array(N * K);
          for (let k = g * 32; k < g * 32 + 32; k++) d[n * K + k] = deq[n * K + k] - w[n * K + k];
          return outputError(d, N, K, gram);
        };
        const [a, b] = [part(awq), part(rtn)];
        expect(a).toBeLessThanOrEqual(b * (1 + 1e-9));
        lower += a < b ? 1 : 0;
        if (noClipRows(n)) expect(a).toBe(b);
      }
    }
    console.log(`AWQ clipping: ${(100 * same / got.scales.length).toFixed(1)}% of groups as the reference on the activations; ${lower} of ${N * K / 32} groups below round-to-nearest's output error`);
    expect(lower).toBeGreaterThan(N * K / 32 / 4);
  });

  it('the output-weighted refit recovers an exact affine grid under any positive definite Gram matrix', () => {
    const [n, s0, z0] = [32, 0.0125, 6];
    const u = Array.from({ length: n }, (_, i) => (i * 7) % 16);
    const wg = u.map((c) => Math.fround((c - z0) * s0));
    const g = gramOf(activations(200, n, 5, [3], 20), 200, n);
    const p = refitParams(wg, u, n, g, 0, n, Q4)!;
    expect(p.zero).toBe(z0);
    expect(Math.abs(p.scale - s0) / s0).toBeLessThan(1e-3); // the nearest f16
    const sym = refitParams(u.map((c) => (c - 8) * s0), u.map((c) => c - 8), n, g, 0, n, { bits: 4, symmetric: true })!;
    expect(Math.abs(sym.scale - s0) / s0).toBeLessThan(1e-3);
  });

  it('has less output error than RTN at the same group on outlier activations (scales, then clipping)', () => {
    const r = awqQuantize(w, N, K, Q4, meanAbs, gram);
    // Measured in the original basis: the stored weight is W diag(s); the input is x / s.
    const deq = dequantizeWeight(r.q);
    const back = deq.map((v, i) => v / r.scales[i % K]);
    const err = errorOf(back, w, N, K, gram);
    console.log(`AWQ: alpha ${r.alpha}, output error / RTN's ${(err / r.rtnError).toFixed(3)}`);
    expect(r.alpha).toBeGreaterThan(0);
    expect(err).toBeLessThan(0.8 * r.rtnError);
    expect(Math.abs(err - r.error) / r.error).toBeLessThan(1e-3);
  });
});

describe('static activation thresholds', () => {
  // |x| from a Laplacian, plus a handful of values 40x further out.
  const r = rng(7);
  const values = Array.from({ length: 200_000 }, () => -Math.log(1 - r()));
  for (let i = 0; i < 20; i++) values.push(40 + r());
  const max = values.reduce((a, b) => Math.max(a, b), 0);
  const width = max / 2048;
  const hist = new Float64Array(2048);
  for (const v of values) hist[Math.min(Math.floor(v / width), 2047)]++;

  it('min-max covers everything; percentile and KL clip the far outliers', () => {
    const kl = klThreshold(hist, width);
    const p = percentileThreshold(hist, width, 99.99);
    console.log(`thresholds: max ${max.toFixed(2)}, 99.99% ${p.toFixed(2)}, KL ${kl.toFixed(2)}`);
    expect(staticActivationScale('minmax', { absMax: max })).toBeCloseTo(max / 127, 6);
    expect(p).toBeGreaterThan(8);
    expect(p).toBeLessThan(max / 2);
    expect(kl).toBeGreaterThan(4);
    expect(kl).toBeLessThan(max / 2);
  });

  it('KL keeps (nearly) the whole range of a uniform distribution', () => {
    const flat = new Float64Array(2048).fill(100);
    expect(klThreshold(flat, 1)).toBeGreaterThan(1900);
  });
});

describe('mixed precision knapsack', () => {
  it('matches brute force on small random instances, within the budget', () => {
    const r = rng(3);
    for (let trial = 0; trial < 30; trial++) {
      const units: MixedUnit[] = Array.from({ length: 5 }, (_, i) => {
        const params = 1000 * (1 + Math.floor(r() * 4));
        const e4 = r();
        return {
          id: `u${i}`,
          params,
          candidates: [
            { bits: 4, bytes: params * 0.5625, error: e4 },
            { bits: 8, bytes: params * 1.03, error: e4 * 0.05 * r() },
            { bits: 16, bytes: params * 2, error: 0 },
          ],
        };
      });
      const budget = 4.5 + r() * 6;
      const got = chooseBits(units, budget, 20000);
      let best = Infinity;
      const total = units.reduce((s, u) => s + u.params, 0);
      for (let c = 0; c < 3 ** units.length; c++) {
        let [bytes, err, k] = [0, 0, c];
        for (const u of units) {
          bytes += u.candidates[k % 3].bytes;
          err += u.candidates[k % 3].error;
          k = Math.floor(k / 3);
        }
        if ((8 * bytes) / total <= budget) best = Math.min(best, err);
      }
      expect(got.bitsPerWeight).toBeLessThanOrEqual(budget + 1e-9);
      expect(got.error).toBeLessThanOrEqual(best + 1e-9);
    }
  });

  it('refuses a budget below the cheapest layout', () => {
    const u: MixedUnit = { id: 'a', params: 1000, candidates: [{ bits: 4, bytes: 562.5, error: 1 }, { bits: 16, bytes: 2000, error: 0 }] };
    expect(() => chooseBits([u], 4)).toThrow(/below the smallest .*\(4\.500 bits per weight/);
  });
});

describe('SmoothQuant', () => {
  it('s = max|x|^a / max|w|^(1-a), and 1 for a channel never active', () => {
    const s = smoothScales([4, 0, 9], [1, 2, 0.25], 0.5);
    expect(s[0]).toBeCloseTo(2, 6);
    expect(s[1]).toBe(1);
    expect(s[2]).toBeCloseTo(6, 6);
  });
});
