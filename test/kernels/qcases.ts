/**
 * Quantized matmul cases for every runtime: int4/int8, symmetric/asymmetric, every group size,
 * float / per-token / per-block activations, GEMV and GEMM sizes with odd M, N, K, fused
 * epilogues, and weights split across bindings. The GPU result is compared with the CPU
 * reference that does the same arithmetic (refQLinear for weight-only, refW8A8 for int8
 * activations), with scales rounded to f16 first on the f16 path (they are stored that way), so
 * the stated tolerance covers float accumulation and output rounding only.
 */
import type { GpuContext } from '../../src/gpu/context.ts';
import type { Precision } from '../../src/gpu/shaders.ts';
import { linear, type Activations, type LinearDType } from '../../src/ops/linear.ts';
import { prepareLinear } from '../../src/models/prepare-linear.ts';
import { qmatmul, type QMatmulOptions } from '../../src/ops/qmatmul.ts';
import { uploadQuantized } from '../../src/ops/qweight.ts';
import type { QuantSpec, QuantizedWeight } from '../../src/quant/layout.ts';
import { quantizeWeight } from '../../src/quant/rtn.ts';
import { refLinear, refQLinear, refW8A8 } from '../../src/reference/qmatmul.ts';
import { compare, randn, roundF16, type Compare } from './check.ts';
import { QTABLE_CASES } from './qtable-cases.ts';

export interface QCase {
  name: string;
  large?: boolean;
  run(ctx: GpuContext, p: Precision): Promise<Compare>;
}

function tol(p: Precision, K: number, got: Float32Array, ref: Float32Array): Compare {
  // Outputs are sums of K products of O(1) values: magnitude ~sqrt(K).
  const s = Math.sqrt(K);
  return p === 'f32' ? compare(got, ref, 3e-5 * s, 1e-5) : compare(got, ref, 2e-3 * s, 2e-3);
}

function withF16Scales(q: QuantizedWeight, p: Precision): QuantizedWeight {
  return p === 'f16' ? { ...q, scales: roundF16(q.scales) } : q;
}

const cases: QCase[] = [];

/** x [M, K] times the weight wf [N, K] quantized with `spec`, against the matching CPU reference. */
async function checkProduct(ctx: GpuContext, p: Precision, x: Float32Array, wf: Float32Array, [M, N, K]: [number, number, number], spec: QuantSpec, act: 'float' | 'token' | 'block'): Promise<Compare> {
  const q = quantizeWeight(wf, N, K, spec);
  const w = uploadQuantized(ctx, q, p);
  const tx = ctx.uploadFloat(x, [M, K], p);
  const rec = ctx.record();
  const out = qmatmul(ctx, rec, tx, w, { act });
  await rec.submit();
  const got = await ctx.readFloat(out);
  out.dispose(); tx.dispose(); w.dispose();
  const qr = withF16Scales(q, p);
  const ref = act === 'float' ? refQLinear(x, M, K, qr) : refW8A8(x, M, K, qr, undefined, undefined, act);
  return tol(p, K, got, ref);
}

/** x [M, K] times a random weight quantized with `spec`. */
function productCase(name: string, [M, N, K]: [number, number, number], spec: QuantSpec, act: 'float' | 'token' | 'block', seed: number): QCase {
  return {
    name,
    async run(ctx, p) {
      let x = randn(M * K, seed, 1);
      if (p === 'f16') x = roundF16(x);
      return checkProduct(ctx, p, x, randn(N * K, seed + 1, 0.5), [M, N, K], spec, act);
    },
  };
}

const SHAPES: [number, number, number][] = [[1, 37, 45], [3, 67, 100], [5, 33, 130], [70, 45, 64], [130, 70, 33]];
const ACTS = ['float', 'token', 'block'] as const;
let i = 0;
for (const bits of [4, 8] as const) {
  for (const symmetric of [true, false]) {
    for (const group of [32, 64, 128, 'channel'] as const) {
      for (const act of ACTS) {
        const shape = SHAPES[i % SHAPES.length];
        cases.push(productCase(`int${bits} ${symmetric ? 'sym' : 'asym'} g${group} act=${act} ${shape.join('x')}`, shape, { bits, group, symmetric }, act, 100 + 2 * i++));
      }
    }
  }
}

// int4 extremes: activations at +-127 after quantization and weight codes at 15 (or 0/1) fill
// a half block of 16 values to |sum| = 16 * 127 * 15 = 30480, the most the subgroup kernel's two-
// columns-per-multiply packing (16-bit halves) allows; N = 130 puts columns in both of a lane's
// halves.
for (const symmetric of [true, false]) {
  for (const act of ['block', 'token'] as const) {
    cases.push({
      name: `int4 ${symmetric ? 'sym' : 'asym'} extremes act=${act} 20x130x64`,
      async run(ctx, p) {
        const [M, N, K] = [20, 130, 64];
        const x = new Float32Array(M * K).map((_, i) => (Math.floor(i / K) % 2 ? -1 : 1));
        const wf = new Float32Array(N * K).map((_, i) => {
          const n = Math.floor(i / K);
          return n % 3 === 0 ? 0.5 : n % 3 === 1 ? -0.5 : (i % 2 ? 0.25 : -0.25);
        });
        return checkProduct(ctx, p, x, wf, [M, N, K], { bits: 4, group: 32, symmetric }, act);
      },
    });
  }
}

// Integer GEMM tiles are 64 x 128: N = 200 spans two of them, the second one partly.
for (const [bits, symmetric, act] of [[8, true, 'token'], [4, false, 'block'], [4, true, 'token'], [8, false, 'block']] as const) {
  cases.push(productCase(`wide int${bits} ${symmetric ? 'sym' : 'asym'} act=${act} 70x200x96`, [70, 200, 96], { bits, group: 32, symmetric }, act, 31));
}

// Whole tiles only (no clamped rows or columns) and eight blocks along K.
for (const [bits, symmetric, act] of [[8, true, 'token'], [8, true, 'block'], [4, false, 'block'], [8, false, 'float']] as const) {
  cases.push(productCase(`whole tiles int${bits} ${symmetric ? 'sym' : 'asym'} act=${act} 64x64x256`, [64, 64, 256], { bits, group: 32, symmetric }, act, 47));
}

// Fused epilogue on both kernels and both activation paths: act(x W^T + bias) + residual.
for (const [M, act] of [[2, 'float'], [2, 'token'], [66, 'float'], [66, 'block']] as const) {
  for (const activation of ['gelu', 'silu'] as const) {
    cases.push({
      name: `epilogue ${activation} bias+residual M=${M} act=${act}`,
      async run(ctx, p) {
        const [N, K] = [50, 96];
        let x = randn(M * K, 7 + M), bias = randn(N, 8), res = randn(M * N, 9);
        if (p === 'f16') [x, bias, res] = [roundF16(x), roundF16(bias), roundF16(res)];
        const q = quantizeWeight(randn(N * K, 10, 0.3), N, K, { bits: 4, group: 32, symmetric: true });
        const w = uploadQuantized(ctx, q, p);
        const [tx, tb, tr] = [ctx.uploadFloat(x, [M, K], p), ctx.uploadFloat(bias, [N], p), ctx.uploadFloat(res, [M, N], p)];
        const opts: QMatmulOptions = { act, bias: tb, activation, residual: tr };
        const rec = ctx.record();
        const out = qmatmul(ctx, rec, tx, w, opts);
        await rec.submit();
        const got = await ctx.readFloat(out);
        [out, tx, tb, tr].forEach((t) => t.dispose());
        w.dispose();
        const qr = withF16Scales(q, p);
        const ep = { activation, residual: res };
        const ref = act === 'float' ? refQLinear(x, M, K, qr, bias, ep) : refW8A8(x, M, K, qr, bias, ep, act);
        return tol(p, K, got, ref);
      },
    });
  }
}

// Weights split into several bindings (a tiny binding limit forces it), for every dtype, and q8/q4
// with each choice of activations (decode-sized M = 1 and prefill-sized M = 9 alike).
const SPLIT: [LinearDType, Activations | undefined][] = [['f32', undefined], ['f16', undefined], ['q8', 'float'], ['q8', 'int8'], ['q4', 'float'], ['q4', 'int8'], ['w8a8', undefined], ['w4a8', undefined]];
for (const [dtype, activations] of SPLIT) {
  for (const M of [1, 9]) {
    cases.push({
      name: `split weight ${dtype}${activations ? ` ${activations} activations` : ''} M=${M} (5 chunks)`,
      async run(ctx, p) {
        if ((dtype === 'f32' && p === 'f16') || (dtype === 'f16' && p === 'f32')) return compare([0], [0], 0, 0); // float dtypes fix their own precision
        const [N, K] = [77, 64];
        let x = randn(M * K, 11 + M), bias = randn(N, 12);
        if (p === 'f16') [x, bias] = [roundF16(x), roundF16(bias)];
        const wf = randn(N * K, 13, 0.5);
        const rowBytes = dtype === 'f32' ? 4 * K : dtype === 'f16' ? 2 * K : dtype.startsWith('q8') || dtype === 'w8a8' ? K : K / 2;
        const lw = prepareLinear(ctx, wf, N, K, dtype, { precision: p, bindingLimit: rowBytes * 16, activations });
        const [tx, tb] = [ctx.uploadFloat(x, [M, K], p), ctx.uploadFloat(bias, [N], p)];
        const rec = ctx.record();
        const out = linear(ctx, rec, tx, lw, { bias: tb });
        await rec.submit();
        const got = await ctx.readFloat(out);
        [out, tx, tb].forEach((t) => t.dispose());
        lw.dispose();
        if (dtype === 'f32' || dtype === 'f16') return tol(p, K, got, refLinear(x, M, K, p === 'f16' ? roundF16(wf) : wf, N, bias));
        const spec: QuantSpec = { bits: dtype === 'q4' || dtype === 'w4a8' ? 4 : 8, group: dtype === 'q4' || dtype === 'w4a8' ? 32 : dtype === 'q8' ? 128 : 'channel', symmetric: !(dtype === 'q4' || dtype === 'w4a8') };
        const qr = withF16Scales(quantizeWeight(wf, N, K, spec), p);
        // q4/q8: int8 blocks of 32 or weight-only, as asked, at every M (see linear.ts).
        const ref =
          dtype === 'q4' || dtype === 'q8'
            ? activations === 'int8' ? refW8A8(x, M, K, qr, bias, undefined, 'block') : refQLinear(x, M, K, qr, bias)
            : refW8A8(x, M, K, qr, bias, undefined, 'token');
        return tol(p, K, got, ref);
      },
    });
  }
}

cases.push(...QTABLE_CASES);

export const QUANT_CASES: readonly QCase[] = cases;

export async function runQuantCases(ctx: GpuContext, p: Precision, opts: { large?: boolean } = {}): Promise<{ name: string; result: Compare }[]> {
  const out: { name: string; result: Compare }[] = [];
  for (const c of cases) if (!c.large || opts.large) out.push({ name: c.name, result: await c.run(ctx, p) });
  return out;
}
