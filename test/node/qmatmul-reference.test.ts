import { describe, expect, it } from 'vitest';
import { quantizeActivations, readActivationCode } from '../../src/quant/activations.ts';
import type { QuantSpec } from '../../src/quant/layout.ts';
import { dequantizeWeight, quantizeWeight } from '../../src/quant/rtn.ts';
import { gelu, silu } from '../../src/reference/math.ts';
import { refLinear, refQLinear, refW8A8 } from '../../src/reference/qmatmul.ts';
import { randomWeights } from '../helpers/quant-util.ts';

/** Naive linear in a different loop order (k outermost, f64 accumulators). */
function naiveLinear(x: Float32Array, M: number, K: number, w: Float32Array, N: number, bias?: Float32Array): Float64Array {
  const acc = new Float64Array(M * N);
  for (let k = 0; k < K; k++) for (let t = 0; t < M; t++) for (let n = 0; n < N; n++) acc[t * N + n] += x[t * K + k] * w[n * K + k];
  if (bias) for (let t = 0; t < M; t++) for (let n = 0; n < N; n++) acc[t * N + n] += bias[n];
  return acc;
}

const close = (a: number, b: number, rel: number) => Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b)) + 1e-30;

describe('refLinear', () => {
  const M = 3;
  const K = 37;
  const N = 5;
  const x = randomWeights(M * K, 1, 1);
  const w = randomWeights(N * K, 2, 0.2);
  const bias = randomWeights(N, 3, 0.5);
  const res = randomWeights(M * N, 4, 1);

  it('matches a naive implementation (both f64-accumulated, one f32 rounding)', () => {
    const y = refLinear(x, M, K, w, N, bias);
    const n = naiveLinear(x, M, K, w, N, bias);
    for (let i = 0; i < M * N; i++) expect(close(y[i], n[i], 2 ** -23)).toBe(true);
  });

  it('epilogue is act(x W^T + bias) + residual', () => {
    const n = naiveLinear(x, M, K, w, N, bias);
    for (const [act, f] of [['gelu', gelu], ['silu', silu]] as const) {
      const y = refLinear(x, M, K, w, N, bias, { activation: act, residual: res });
      for (let i = 0; i < M * N; i++) expect(close(y[i], f(n[i]) + res[i], 1e-6)).toBe(true);
    }
    const y = refLinear(x, M, K, w, N, undefined, { residual: res });
    const nb = naiveLinear(x, M, K, w, N);
    for (let i = 0; i < M * N; i++) expect(close(y[i], nb[i] + res[i], 1e-6)).toBe(true);
  });

  it('rejects wrong shapes', () => {
    expect(() => refLinear(x, M, K, w, N + 1)).toThrow(/w has 185 elements, expected N\*K = 6\*37 = 222/);
    expect(() => refLinear(x, M, K, w, N, new Float32Array(2))).toThrow(/bias has 2 elements, expected N = 5/);
    expect(() => refLinear(x, M, K, w, N, bias, { residual: new Float32Array(3) })).toThrow(/residual has 3 elements/);
  });
});

describe('refQLinear / refW8A8', () => {
  const specs: QuantSpec[] = [];
  for (const bits of [4, 8] as const)
    for (const group of [32, 128, 'channel'] as const) for (const symmetric of [true, false]) specs.push({ bits, group, symmetric });

  it('refQLinear is refLinear on the dequantized weight', () => {
    const x = randomWeights(2 * 100, 5, 1);
    const q = quantizeWeight(randomWeights(9 * 100, 6), 9, 100, { bits: 4, group: 32, symmetric: false });
    expect(refQLinear(x, 2, 100, q)).toEqual(refLinear(x, 2, 100, dequantizeWeight(q), 9));
    expect(() => refQLinear(x, 1, 200, q)).toThrow(/x has K=200 but the weight has K=100/);
  });

  for (const spec of specs) {
    it(`int${spec.bits} g${spec.group} ${spec.symmetric ? 'sym' : 'asym'}: W8A8 agrees with weight-only within the activation-quantization bound`, () => {
      for (const K of [33, 130, 256]) {
        const M = 4;
        const N = 7;
        const x = randomWeights(M * K, K + 1, 2);
        const w = randomWeights(N * K, K + 2);
        for (let k = 0; k < K; k++) w[k] = Math.abs(w[k]) + 0.02; // an all-positive row stresses zero points
        const bias = randomWeights(N, 8, 0.3);
        const q = quantizeWeight(w, N, K, spec);
        const wd = dequantizeWeight(q);
        const a = quantizeActivations(x, M, K, q.Kp);
        const y8 = refW8A8(x, M, K, q, bias);
        const yq = refQLinear(x, M, K, q, bias);
        for (let t = 0; t < M; t++) {
          for (let n = 0; n < N; n++) {
            // Both compute sum_k xhat_k * what_k with what = (code - zero) * s_w. W8A8 uses
            // xhat = s_x q_x, the weight-only path uses x itself and what rounded to f32. So
            //   |y8 - yq| <= sum_k |x_k - s_x q_xk| |what_k| + 2^-24 sum_k |x_k| |what_k|
            //               + f32 rounding of both outputs,
            // and sum_k |x_k - s_x q_xk| <= s_x/2, so this is also <= s_x/2 sum_k |what_k| + ...
            // The tight form (actual activation errors) is what we check; a wrong zero point or
            // group scale would break it by orders of magnitude.
            let actErr = 0;
            let apriori = 0;
            let mag = 0;
            for (let k = 0; k < K; k++) {
              const xv = x[t * K + k];
              const wv = Math.abs(wd[n * K + k]);
              actErr += Math.abs(xv - a.scales[t] * readActivationCode(a, t, k)) * wv;
              apriori += (a.scales[t] / 2) * wv;
              mag += Math.abs(xv) * wv;
            }
            const yv8 = y8[t * N + n];
            const yvq = yq[t * N + n];
            const outRound = 2 ** -24 * (Math.abs(yv8) + Math.abs(yvq));
            const bound = actErr * (1 + 1e-6) + 2 ** -23 * mag + outRound + 1e-30;
            const diff = Math.abs(yv8 - yvq);
            if (diff > bound) throw new Error(`K=${K} (${t}, ${n}): |${yv8} - ${yvq}| = ${diff} > ${bound}`);
            expect(actErr).toBeLessThanOrEqual(apriori * (1 + 1e-6) + 1e-30);
          }
        }
      }
    });
  }

  it('W8A8 is exact when x is exactly representable on the int8 grid', () => {
    // Integer activations with max 127 -> s_x = 1 and q_x = x, so only f32/f64 rounding remains.
    for (const spec of specs) {
      const M = 2;
      const K = 100;
      const N = 5;
      const x = new Float32Array(M * K).map((_, i) => ((i * 37) % 255) - 127);
      x[0] = 127;
      x[K] = -127;
      const q = quantizeWeight(randomWeights(N * K, 21), N, K, spec);
      const y8 = refW8A8(x, M, K, q);
      const yq = refQLinear(x, M, K, q);
      const wd = dequantizeWeight(q);
      for (let t = 0; t < M; t++)
        for (let n = 0; n < N; n++) {
          // Remaining error: f32 rounding of the dequantized weights and of both outputs.
          let mag = 0;
          for (let k = 0; k < K; k++) mag += Math.abs(x[t * K + k] * wd[n * K + k]);
          const i = t * N + n;
          const bound = 2 ** -23 * mag + 2 ** -24 * (Math.abs(y8[i]) + Math.abs(yq[i]));
          expect(Math.abs(y8[i] - yq[i]), `${JSON.stringify(spec)} ${i}`).toBeLessThanOrEqual(bound);
        }
    }
  });

  it('applies the epilogue after the integer matmul', () => {
    const M = 2;
    const K = 64;
    const N = 3;
    const x = randomWeights(M * K, 30, 1);
    const q = quantizeWeight(randomWeights(N * K, 31), N, K, { bits: 4, group: 32, symmetric: true });
    const bias = randomWeights(N, 32, 0.5);
    const res = randomWeights(M * N, 33, 1);
    const plain = refW8A8(x, M, K, q, bias);
    const fused = refW8A8(x, M, K, q, bias, { activation: 'silu', residual: res });
    // `plain` already includes the bias and was rounded to f32 once, hence the 1e-6 tolerance.
    for (let i = 0; i < M * N; i++) expect(close(fused[i], silu(plain[i]) + res[i], 1e-6)).toBe(true);
  });
});
