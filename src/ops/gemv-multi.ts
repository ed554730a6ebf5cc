/**
 * The multi-row decode GEMV (gemv4m_lib.wgsl, qgemv4m_lib.wgsl): for 2..8 rows of x (a batched
 * decode step), one workgroup per set of weight rows serves every row of x, so each weight is
 * loaded (and, quantized, unpacked) once per step instead of once per row. Its sums are the
 * single-row GEMV's (gemv4_lib.wgsl, qgemv4_lib.wgsl) term for term, so a row of a batch rounds as
 * it does alone.
 */
import type { GpuContext } from '../gpu/context.ts';
import { gpuGemvConfig } from './matmul.ts';

/** Rows of x the multi-row GEMV takes (from 2). */
export const GEMV_MULTI_MAX_M = 8;

export interface MultiGemvConfig {
  sg: boolean;
  TPR: number;
  WG: number;
  /** Weight rows per thread, lowered as M grows (below). */
  NR: number;
  /** Rows of x. */
  MR: number;
}

/**
 * The multi-row GEMV for M rows of x with K % 4 == 0 on this device, or null (M outside 2..8,
 * gemv.multi 'off', or gemv.reduce 'off'). A thread keeps NR * M accumulators (vec4s for float
 * weights, plus M vec4 block sums for quantized ones): NR = 4 / M (at least 1) keeps them at the
 * single-row kernel's 4 up to M = 4 instead of multiplying them by M, the register pressure that
 * made a one-workgroup-for-all-rows kernel slower than one per row.
 */
export function multiGemvConfig(ctx: GpuContext, M: number, K: number): MultiGemvConfig | null {
  if (M < 2 || M > GEMV_MULTI_MAX_M || K % 4 !== 0 || ctx.caps.gemv.multi === 'off') return null;
  const g = gpuGemvConfig(ctx);
  if (!g) return null;
  return { ...g, NR: Math.max(1, Math.min(g.NR, Math.floor(4 / M))), MR: M };
}
