/**
 * Linear layers in every dtype webq runs: y[M, N] = epilogue(x[M, K] W^T), W prepared once at load
 * (src/models/prepare-linear.ts: CPU quantization, upload, the dtype table) into one of the two
 * forms below:
 *
 *   f32, f16  float weights (f16 halves the bytes; needs shader-f16), in row chunks of at most one
 *             storage binding each
 *   q8, q4    int8 / int4 weights with per-group scales, with `activations`:
 *               'float' (default) weight-only kernels (W4A16/W8A16): x stays f16/f32 and the
 *                       weights are unpacked in-kernel, the result GPTQ/AWQ formats define;
 *               'int8'  x quantized on the fly to int8 in blocks of 32, each with its own scale
 *                       (llama.cpp's q8_1 blocks), times the codes with dot4I8Packed.
 *             Either choice runs the same way in decode (GEMV: M <= 4, weight-only M <= 8) and
 *             prefill (GEMM), so a token's output does not depend on how many others share its
 *             forward.
 *   w8a8      int8 weights (per channel) x int8 activations quantized per token on the fly
 *   w4a8      int4 weights (asymmetric, group 32) x int8 activations quantized per token
 *             (or with a static scale: one activation scale per Linear input, fixed by
 *             calibration, so the per-token reduction is skipped)
 */
import { ShapeError, WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Precision } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { RowChunks } from './embedding.ts';
import type { Epilogue } from './epilogue.ts';
import { matmul } from './matmul.ts';
import { qmatmul, type ActQuant } from './qmatmul.ts';
import type { QWeight } from './qweight.ts';

export type LinearDType = 'f32' | 'f16' | 'q8' | 'q4' | 'w8a8' | 'w4a8';
export const LINEAR_DTYPES: readonly LinearDType[] = ['f32', 'f16', 'q8', 'q4', 'w8a8', 'w4a8'];

/** How a quantized weight's input enters the product: kept float (weight-only), or int8 codes (see above). */
export type Activations = 'float' | 'int8';
export const ACTIVATIONS: readonly Activations[] = ['float', 'int8'];

export interface LinearWeight {
  dtype: LinearDType;
  N: number;
  K: number;
  /** Activation precision this weight runs with. */
  precision: Precision;
  /** Weight bytes on the GPU, scales and zero points included. */
  bytes: number;
  dispose(): void;
}

/** A float weight: row chunks [n, K] starting at row n0. */
export interface FloatLinear extends LinearWeight {
  kind: 'float';
  chunks: { n0: number; N: number; w: Tensor }[];
}

/** A packed weight and how its input is taken: float, int8 blocks, per token, or one static scale. */
export interface QuantLinear extends LinearWeight {
  kind: 'quant';
  q: QWeight;
  act: 'float' | ActQuant;
  /** act 'static': the activation scale, f32 [1]. */
  actScale?: Tensor;
}

/** The row chunks of a float weight, for an embedding gather that shares it (tied LM head). */
export function rowChunks(w: LinearWeight): RowChunks {
  const lw = w as FloatLinear | QuantLinear;
  if (lw.kind !== 'float') throw new WebqError('NOT_FLOAT', `an embedding table must be f32 or f16, not ${lw.dtype}`);
  return { chunks: lw.chunks };
}

/** The packed weight of a quantized Linear (for a gather that shares it: a tied, quantized table), else null. */
export function quantizedWeight(w: LinearWeight): QWeight | null {
  const lw = w as FloatLinear | QuantLinear;
  return lw.kind === 'quant' ? lw.q : null;
}

/** y = epilogue(x W^T): one dispatch per weight chunk (plus activation quantization for w8a8/w4a8). */
export function linear(ctx: GpuContext, rec: Recorder, x: Tensor, w: LinearWeight, opts: Epilogue & { out?: Tensor } = {}): Tensor {
  const lw = w as FloatLinear | QuantLinear;
  if (x.dtype !== lw.precision) throw new ShapeError(`linear: x is ${x.dtype} but this ${lw.dtype} weight runs with ${lw.precision} activations`);
  const K = x.shape[x.shape.length - 1];
  const M = x.size / K;
  // Quantized: the weight's own activation handling at every M (decode GEMV and prefill GEMM alike).
  if (lw.kind === 'quant') return qmatmul(ctx, rec, x, lw.q, { ...opts, act: lw.act, actScale: lw.actScale });
  const x2 = x.view([M, K]);
  const out = opts.out ?? ctx.empty([...x.shape.slice(0, -1), lw.N], x.dtype);
  for (const c of lw.chunks) {
    matmul(ctx, rec, x2, c.w, { ...opts, out: out.view([M, lw.N]), cols: { nOff: c.n0, ldc: lw.N } });
  }
  return out;
}
