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
 * gemv.multi 'off', or gemv.reduce 'off'). NR weight rows per thread as the single-row GEMV has
 * (4), lowered to 16 / M past M = 4 so a thread's NR * M accumulators stay at most 16 vec4s: each
 * vec4 of x then feeds NR rows, as in the single-row kernel. (One weight row per thread, the
 * obvious layout for M rows, loads x M times per weight vec4; on lavapipe, where such a load is a
 * per-lane gather, that made the quantized kernel 2-5x slower than a workgroup per row.)
 */
export function multiGemvConfig(ctx: GpuContext, M: number, K: number): MultiGemvConfig | null {
  if (M < 2 || M > GEMV_MULTI_MAX_M || K % 4 !== 0 || ctx.caps.gemv.multi === 'off') return null;
  const g = gpuGemvConfig(ctx);
  if (!g) return null;
  return { ...g, NR: Math.max(1, Math.min(g.NR, Math.floor(16 / M))), MR: M };
}
