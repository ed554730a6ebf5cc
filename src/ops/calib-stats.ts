/**
 * Calibration statistics of a Linear's input, gathered on the GPU during a float forward
 * (shaders/calib_stats.wgsl): the running totals live on the GPU, each batch adds its rows with a
 * few small dispatches recorded into the forward's encoder, and only the totals are read back at
 * the end, never per-token activations.
 *
 *   stats  f32 [3, K]     max |x_k|, sum |x_k|, sum x_k over the rows seen
 *   gram   f32 [K, K]     X^T X (GPTQ's Hessian is 2 X^T X / rows; AWQ and the report use it as
 *                          the metric of a layer's output error)           optional
 *   hist   u32 [2048]     |x| in 2048 bins of width `histWidth` (TensorRT's KL / percentile)
 *                          optional: it needs the range first, from a pass collecting `stats`
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { floatPrecision, grid1d } from './common.ts';

export const HIST_BINS = 2048;

/** Called by a forward with each Linear unit's input just before its matmul (src/quantize/units.ts). */
export type LinearTap = (rec: Recorder, unit: string, x: Tensor) => void;
const WG = 64;
const TS = 16;

export interface InputStatsGpu {
  K: number;
  stats: Tensor;
  gram: Tensor | null;
  hist: Tensor | null;
  /** Width of one histogram bin (|x| units). */
  histWidth: number;
  /** Rows added so far (counted on the CPU from the masks given). */
  rows: number;
  dispose(): void;
}

/** The totals read back (CPU arrays). */
export interface InputStats {
  K: number;
  rows: number;
  absMax: Float32Array; // [K]
  sumAbs: Float32Array; // [K]
  sum: Float32Array; //    [K]
  gram: Float32Array | null; // [K, K]
  hist: Float64Array | null; // [2048]
  histWidth: number;
}

/** Zeroed totals for a K-wide input; `histRange` (the largest |x| expected) turns the histogram on. */
export function createInputStats(ctx: GpuContext, K: number, opts: { gram?: boolean; histRange?: number } = {}): InputStatsGpu {
  if (!Number.isInteger(K) || K < 1) throw new ShapeError(`createInputStats: K must be a positive integer, got ${K}`);
  const stats = ctx.upload(new Float32Array(3 * K), [3, K], 'f32', 'webq:calib.stats');
  const gram = opts.gram ? ctx.upload(new Float32Array(K * K), [K, K], 'f32', 'webq:calib.gram') : null;
  const range = opts.histRange;
  const hist = range !== undefined ? ctx.upload(new Uint32Array(HIST_BINS), [HIST_BINS], 'u32', 'webq:calib.hist') : null;
  // A zero range (an all-zero input) still needs a finite bin width.
  const histWidth = range !== undefined && range > 0 ? range / HIST_BINS : 1;
  return {
    K, stats, gram, hist, histWidth, rows: 0,
    dispose: () => [stats, gram, hist].forEach((t) => t?.dispose()),
  };
}

/**
 * Adds the rows of x [M, K] (those with mask != 0; `maskRows` is how many that is, known to the
 * caller) to the totals. Records its dispatches; reads nothing back.
 */
export function accumulateInputStats(ctx: GpuContext, rec: Recorder, x: Tensor, s: InputStatsGpu, opts: { mask?: Tensor; maskRows?: number } = {}): void {
  const K = x.shape[x.shape.length - 1];
  if (K !== s.K) throw new ShapeError(`accumulateInputStats: x has K=${K} but the statistics are for K=${s.K}`);
  const M = x.size / K;
  if (opts.mask && opts.mask.size !== M) throw new ShapeError(`accumulateInputStats: mask has ${opts.mask.size} entries for ${M} rows`);
  const precision = floatPrecision('accumulateInputStats', { x });
  const constants = { HAS_MASK: !!opts.mask, WG };
  const bindings = { x, mask: opts.mask ?? ctx.placeholder('u32'), stats: s.stats, xtx: s.gram ?? ctx.placeholder('f32'), hist: s.hist ?? ctx.placeholder('u32') };
  const uniforms = { M, K, invWidth: 1 / s.histWidth };
  rec.dispatch({ shader: 'calib_stats', entry: 'chan', variant: { precision }, constants }, bindings, [Math.ceil(K / WG)], uniforms);
  if (s.gram) rec.dispatch({ shader: 'calib_stats', entry: 'gram', variant: { precision }, constants }, bindings, [Math.ceil(K / TS), Math.ceil(K / TS)], uniforms);
  if (s.hist) rec.dispatch({ shader: 'calib_stats', entry: 'histogram', variant: { precision }, constants }, bindings, grid1d(M * K, WG), uniforms);
  s.rows += opts.mask ? (opts.maskRows ?? M) : M;
}

/** Reads the totals back (one readback per tensor, after the forwards have been submitted). */
export async function readInputStats(ctx: GpuContext, s: InputStatsGpu): Promise<InputStats> {
  const stats = (await ctx.read(s.stats)) as Float32Array;
  const { K } = s;
  return {
    K,
    rows: s.rows,
    absMax: stats.slice(0, K),
    sumAbs: stats.slice(K, 2 * K),
    sum: stats.slice(2 * K, 3 * K),
    gram: s.gram ? ((await ctx.read(s.gram)) as Float32Array) : null,
    hist: s.hist ? Float64Array.from((await ctx.read(s.hist)) as Uint32Array) : null,
    histWidth: s.histWidth,
  };
}
