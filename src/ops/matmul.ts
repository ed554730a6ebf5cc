/**
 * Float matmul: C[..., M, N] = A[..., M, K] x B^T (B [..., N, K], transB, the Linear layout) or
 * A x B (B [..., K, N]), with a fused epilogue (bias, GELU/SiLU, residual). Leading dimensions
 * are a batch; a B without them is shared by every batch (a weight). `cols` writes the product
 * into columns [nOff, nOff + N) of a wider output, so a weight split into row chunks fills one C.
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { shapeStr, type Tensor } from '../gpu/tensor.ts';
import { floatPrecision } from './common.ts';
import { ACT_CODE, checkEpilogue, type Epilogue } from './epilogue.ts';
import { multiGemvConfig } from './gemv-multi.ts';

export interface MatmulOptions extends Epilogue {
  /** B is stored [N, K] (default true). */
  transB?: boolean;
  out?: Tensor;
  /** Write into columns [nOff, nOff + N) of `out`, whose rows hold `ldc` values. */
  cols?: { nOff: number; ldc: number };
}

const TILE = 64;
/** matmul_sg.wgsl: columns (two per lane) and rows per workgroup. */
const SG_COLS = 128;
const SG_ROWS = 16;
/** Up to this M (one batch, B^T), the GEMV kernel runs instead of the 64x64 tiles. */
export const FLOAT_GEMV_MAX_M = 4;
const GEMV_TPR = 8;
const GEMV_WG = 64;

// 128 threads, 4 rows per thread (each vec4 of x loaded once for 4 rows of W): on lavapipe
// (TPR 8) 2.8-3x the shared gemv.wgsl and 1.5-2.4x the int8 qgemv wint (with its quantize_act)
// for q4 at SmolLM2's 1x1536x576 / 1x576x1536 (bench/lab/gemm.ts, --op gemv / qgemv). The
// device's options (DeviceOptions.gemv) may set others (kernel lab).
const GPU_GEMV_WG = 128;
const GPU_GEMV_NR = 4;

/**
 * The decode GEMV on this device (Capabilities.gemv): subgroup reduction or not, threads per row
 * and per workgroup, rows per thread; null: 'off' (the older gemv.wgsl / qgemv.wgsl).
 */
export function gpuGemvConfig(ctx: GpuContext): { sg: boolean; TPR: number; WG: number; NR: number } | null {
  const { reduce, wg = GPU_GEMV_WG, nr = GPU_GEMV_NR } = ctx.caps.gemv;
  if (reduce === 'off') return null;
  const s = ctx.caps.subgroupSize;
  if (reduce === 'auto' && ctx.caps.subgroups && s >= 4 && s <= 128 && (s & (s - 1)) === 0) return { sg: true, TPR: s, WG: Math.max(wg, s), NR: nr };
  return { sg: false, TPR: 32, WG: Math.max(wg, 32), NR: nr };
}

/** Whether the gpu family's vec4 GEMM takes matmul_gpu_sg.wgsl on this device (Capabilities.gemm). */
export function gpuGemmSubgroups(ctx: GpuContext): boolean {
  const s = ctx.caps.subgroupSize;
  return ctx.caps.gemm.subgroups === 'auto' && ctx.caps.subgroups && s >= 8 && s <= 64 && (s & (s - 1)) === 0;
}

export function matmul(ctx: GpuContext, rec: Recorder, a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transB = opts.transB ?? true;
  if (a.shape.length < 2 || b.shape.length < 2) throw new ShapeError(`matmul: A ${shapeStr(a.shape)} and B ${shapeStr(b.shape)} need rank >= 2`);
  const M = a.shape[a.shape.length - 2];
  const K = a.shape[a.shape.length - 1];
  const batchShape = a.shape.slice(0, -2);
  const batch = batchShape.reduce((x, y) => x * y, 1);
  const [bK, N] = transB ? [b.shape[b.shape.length - 1], b.shape[b.shape.length - 2]] : [b.shape[b.shape.length - 2], b.shape[b.shape.length - 1]];
  if (bK !== K) throw new ShapeError(`matmul: A ${shapeStr(a.shape)} has K=${K} but B ${shapeStr(b.shape)}${transB ? ' (stored [N, K])' : ' (stored [K, N])'} has K=${bK}`);
  const bBatch = b.size / (N * K);
  if (bBatch !== 1 && bBatch !== batch) throw new ShapeError(`matmul: B ${shapeStr(b.shape)} must have no batch or the batch of A ${shapeStr(a.shape)}`);
  const { nOff, ldc } = opts.cols ?? { nOff: 0, ldc: N };
  if (nOff + N > ldc) throw new ShapeError(`matmul: columns [${nOff}, ${nOff + N}) do not fit rows of ${ldc}`);
  const fullN = opts.cols ? ldc : N;
  // With column slices the bias and residual cover the whole output row.
  checkEpilogue('matmul', opts, M, fullN, batch);
  const out = opts.out ?? ctx.empty([...batchShape, M, fullN], a.dtype);
  if (out.size !== batch * M * fullN) throw new ShapeError(`matmul: out ${shapeStr(out.shape)} must hold ${batch}x${M}x${fullN} values`);
  const operands: Record<string, Tensor> = { a, b, out };
  if (opts.bias) operands.bias = opts.bias;
  if (opts.residual) operands.residual = opts.residual;
  const precision = floatPrecision('matmul', operands);
  const bindings = { bias: opts.bias ?? ctx.placeholder(precision), res: opts.residual ?? ctx.placeholder(precision) };
  const epilogue = { HAS_BIAS: !!opts.bias, HAS_RES: !!opts.residual, ACT: ACT_CODE[opts.activation ?? 'none'] };
  // Batched decode (2..8 rows, both families): one workgroup per weight rows for every row of x
  // (gemv4m_lib.wgsl), each vec4 of W loaded once.
  const gm = transB && batch === 1 ? multiGemvConfig(ctx, M, K) : null;
  if (gm) {
    rec.dispatch(
      { shader: gm.sg ? 'gemv4m_sg' : 'gemv4m', variant: { precision, subgroups: gm.sg }, constants: { ...epilogue, TPR: gm.TPR, WG: gm.WG, NR: gm.NR, MR: gm.MR } },
      { x: a, w: b, out, ...bindings },
      [Math.ceil(N / ((gm.WG / gm.TPR) * gm.NR)), 1],
      { M, N, K, ldc: fullN, nOff },
    );
    return out;
  }
  const g = transB && batch === 1 && M <= FLOAT_GEMV_MAX_M && K % 4 === 0 ? gpuGemvConfig(ctx) : null;
  if (g) {
    // Decode, both families: vec4 loads along K split across TPR threads per row (gemv4_lib.wgsl).
    rec.dispatch(
      { shader: g.sg ? 'gemv4_sg' : 'gemv4', variant: { precision, subgroups: g.sg }, constants: { ...epilogue, TPR: g.TPR, WG: g.WG, NR: g.NR } },
      { x: a, w: b, out, ...bindings },
      [Math.ceil(N / ((g.WG / g.TPR) * g.NR)), M],
      { M, N, K, ldc: fullN, nOff },
    );
    return out;
  }
  if (transB && batch === 1 && M <= FLOAT_GEMV_MAX_M) {
    rec.dispatch(
      { shader: 'gemv', variant: { precision }, constants: { ...epilogue, TPR: GEMV_TPR, WG: GEMV_WG } },
      { x: a, w: b, out, ...bindings },
      [Math.ceil(N / (GEMV_WG / GEMV_TPR)), M],
      { M, N, K, ldc: fullN, nOff },
    );
    return out;
  }
  const params = { M, N, K, strideA: M * K, strideB: bBatch === 1 ? 0 : N * K, strideC: M * fullN, ldc: fullN, nOff };
  if (ctx.caps.kernels === 'cpu') {
    // B [N, K] with K a multiple of 4 (every Linear layer): rows of A and B read as vec4s (main4).
    const vec4 = transB && K % 4 === 0;
    rec.dispatch(
      { shader: 'matmul_sg', entry: vec4 ? 'main4' : 'main', variant: { precision, subgroups: true }, constants: { TRANS_B: transB, ...epilogue } },
      // a4 and b4: a and b viewed as vec4s (bound only by main4).
      { a, b, a4: a, b4: b, c: out, ...bindings },
      [Math.ceil(N / SG_COLS), Math.ceil(M / SG_ROWS), batch],
      params,
    );
    return out;
  }
  // B [N, K] with K a multiple of 4: the tiles are staged with vec4 loads along K (main4), or,
  // with subgroups, A is shared by subgroupShuffle and only B is staged (on lavapipe 1.45-1.55x
  // main4 on the BERT shapes, bench/lab/gemm.ts mm7).
  const vec4 = transB && K % 4 === 0;
  if (vec4 && gpuGemmSubgroups(ctx)) {
    rec.dispatch(
      { shader: 'matmul_gpu_sg', entry: 'main4', variant: { precision, subgroups: true }, constants: { TRANS_B: transB, ...epilogue, SG8: ctx.caps.subgroupSize === 8 } },
      { a, b, a4: a, b4: b, c: out, ...bindings },
      [Math.ceil(N / TILE), Math.ceil(M / TILE), batch],
      params,
    );
    return out;
  }
  rec.dispatch(
    {
      shader: 'matmul',
      entry: vec4 ? 'main4' : 'main',
      variant: { precision },
      constants: { TRANS_B: transB, ...epilogue },
    },
    // a4 and b4: a and b viewed as vec4s (bound by main4 only).
    { a, b, a4: a, b4: b, c: out, ...bindings },
    [Math.ceil(N / TILE), Math.ceil(M / TILE), batch],
    params,
  );
  return out;
}
