/**
 * The multi-row decode GEMV (gemv4m_lib.wgsl, qgemv4m_lib.wgsl; M = 2..8 rows of x, K % 4 == 0)
 * for f32/f16 and int4/int8 weight-only weights: N not a multiple of a workgroup's rows (16 with
 * the workgroup tree, 64 on an 8-wide subgroup), K not a multiple of 32 (a zero-padded last
 * block), M from 2 to 8 (3, 5, 7 not powers of two). Each is checked against the CPU
 * reference (refMatmul, refQLinear; tolerances as the one-row GEMV's cases) and, exactly, against
 * each row of x run alone (M = 1, the single-row kernel): batched decoding relies on a row
 * rounding the same in a batch as alone. Where the device's GEMV settings do not take the
 * multi-row kernel (gemv.multi 'off', the cpu family's 'off' reduce), the same checks hold for
 * what runs instead.
 */
import type { GpuContext } from '../../src/gpu/context.ts';
import type { Precision } from '../../src/gpu/shaders.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import { matmul } from '../../src/ops/matmul.ts';
import { qmatmul } from '../../src/ops/qmatmul.ts';
import { uploadQuantized } from '../../src/ops/qweight.ts';
import type { QuantSpec } from '../../src/quant/layout.ts';
import { quantizeWeight } from '../../src/quant/rtn.ts';
import { refMatmul } from '../../src/reference/ops.ts';
import { refQLinear } from '../../src/reference/qmatmul.ts';
import { allOf, compare, input, randn, roundF16, runOp, type Compare, type KernelCase } from './check.ts';

/** The product of all M rows at once, and each row's alone (M = 1), same weight. */
async function rowsAndSolo(ctx: GpuContext, p: Precision, x: Float32Array, M: number, K: number, op: (rec: Parameters<Parameters<typeof runOp>[1]>[0], tx: Tensor) => Tensor): Promise<{ got: Float32Array; solo: Float32Array }> {
  const tx = ctx.uploadFloat(x, [M, K], p);
  const got = await runOp(ctx, (rec) => op(rec, tx));
  tx.dispose();
  const N = got.length / M;
  const solo = new Float32Array(M * N);
  for (let m = 0; m < M; m++) {
    const t1 = ctx.uploadFloat(x.subarray(m * K, (m + 1) * K), [1, K], p);
    solo.set(await runOp(ctx, (rec) => op(rec, t1)), m * N);
    t1.dispose();
  }
  return { got, solo };
}

function tol(p: Precision, K: number): [number, number] {
  const s = Math.sqrt(K); // sums of K products of O(1) values
  return p === 'f32' ? [3e-5 * s, 1e-5] : [2e-3 * s, 2e-3];
}

const cases: KernelCase[] = [];

// [M, N, K]
const FLOAT_SHAPES: [number, number, number][] = [[2, 70, 100], [3, 33, 44], [5, 131, 68], [8, 67, 132]];
for (const [M, N, K] of FLOAT_SHAPES) {
  for (const hasBias of [false, true]) {
    cases.push({
      name: `multi-row gemv float ${M}x${N}x${K}${hasBias ? ' +bias' : ''}`,
      async run(ctx, p): Promise<Compare> {
        const x = input(M * K, 300 + M, p), w = input(N * K, 301 + N, p), bias = input(N, 302, p);
        const [tw, tb] = [ctx.uploadFloat(w, [N, K], p), ctx.uploadFloat(bias, [N], p)];
        const { got, solo } = await rowsAndSolo(ctx, p, x, M, K, (rec, tx) => matmul(ctx, rec, tx, tw, { bias: hasBias ? tb : undefined }));
        tw.dispose(); tb.dispose();
        const [atol, rtol] = tol(p, K);
        const ref = refMatmul(x, w, 1, M, N, K, { transB: true, bias: hasBias ? bias : undefined });
        return allOf({ reference: compare(got, ref, atol, rtol), 'each row alone (exact)': compare(got, solo, 0, 0) });
      },
    });
  }
}

const QUANT: [[number, number, number], QuantSpec][] = [
  [[2, 70, 100], { bits: 4, group: 32, symmetric: true }],
  [[4, 37, 132], { bits: 4, group: 64, symmetric: false }],
  [[7, 45, 68], { bits: 4, group: 'channel', symmetric: true }],
  [[8, 131, 100], { bits: 4, group: 32, symmetric: false }],
  [[3, 70, 100], { bits: 8, group: 32, symmetric: true }],
  [[6, 67, 68], { bits: 8, group: 'channel', symmetric: false }],
];
for (const [[M, N, K], spec] of QUANT) {
  cases.push({
    name: `multi-row gemv int${spec.bits} ${spec.symmetric ? 'sym' : 'asym'} g=${spec.group} act=float ${M}x${N}x${K}`,
    async run(ctx, p): Promise<Compare> {
      let x = randn(M * K, 310 + M, 1);
      if (p === 'f16') x = roundF16(x);
      const q = quantizeWeight(randn(N * K, 311 + N, 0.5), N, K, spec);
      const w = uploadQuantized(ctx, q, p);
      const { got, solo } = await rowsAndSolo(ctx, p, x, M, K, (rec, tx) => qmatmul(ctx, rec, tx, w, { act: 'float' }));
      w.dispose();
      const [atol, rtol] = tol(p, K);
      const ref = refQLinear(x, M, K, p === 'f16' ? { ...q, scales: roundF16(q.scales) } : q);
      return allOf({ reference: compare(got, ref, atol, rtol), 'each row alone (exact)': compare(got, solo, 0, 0) });
    },
  });
}

export const GEMV_MULTI_CASES: readonly KernelCase[] = cases;
