/**
 * One Linear unit (units.ts: the weights reading one input, stacked) through a method:
 *
 *   rtn    round-to-nearest (src/quant/rtn.ts), as loading with a quantized dtype does
 *   gptq   second-order error compensation with the unit's X^T X (src/quant/gptq.ts)
 *   awq    activation-aware scales, folded into the op before, plus a clipping search (src/quant/awq.ts)
 *
 * and what surrounds it: per-channel scales (AWQ's or SmoothQuant's) turned into the scales each
 * tensor gets on read (foldScales: the unit's columns times s, the fold target divided by s), the
 * layer's relative output error on the calibration inputs, and bias correction.
 */
import type { TensorStore } from '../io/safetensors/reader.ts';
import type { InputStats } from '../ops/calib-stats.ts';
import { outputError, gptqQuantize } from '../quant/gptq.ts';
import { awqQuantizeScaled, scaleGram } from '../quant/awq.ts';
import type { QuantizedWeight, QuantSpec } from '../quant/layout.ts';
import { quantizeWeight } from '../quant/rtn.ts';
import type { ChannelScales } from './calibration.ts';
import { tiedRows, type LinearUnit } from './units.ts';

export type QuantMethod = 'rtn' | 'awq' | 'gptq';
export const QUANT_METHODS: readonly QuantMethod[] = ['rtn', 'awq', 'gptq'];

/** A unit's weights stacked: W [N, K], N the sum of the parts' rows. */
export interface UnitWeights {
  W: Float32Array;
  N: number;
  K: number;
  /** Rows of each part, in order. */
  rows: number[];
}

export async function readUnit(store: TensorStore, u: LinearUnit): Promise<UnitWeights> {
  const parts = await Promise.all(u.parts.map((p) => store.readAs(p.weight.name, 'f32') as Promise<Float32Array>));
  const rows = u.parts.map((p) => p.weight.shape[0]);
  const N = rows.reduce((s, r) => s + r, 0);
  const W = new Float32Array(N * u.K);
  parts.reduce((off, a) => (W.set(a, off), off + a.length), 0);
  return { W, N, K: u.K, rows };
}

/**
 * The scales each tensor gets on read when unit u's input is divided by scales[u]: its parts'
 * columns multiplied, its fold target (norm weight and bias, or a Linear's rows and bias) divided.
 */
export function foldScales(units: readonly LinearUnit[], scales: ReadonlyMap<string, Float32Array>): Map<string, ChannelScales> {
  const out = new Map<string, ChannelScales>();
  const entry = (name: string) => out.get(name) ?? (out.set(name, {}), out.get(name)!);
  for (const u of units) {
    const s = scales.get(u.id);
    if (!s || !u.fold) continue;
    for (const p of u.parts) entry(p.weight.name).col = s;
    const targets = u.fold.kind === 'norm' ? [u.fold.weight, u.fold.bias] : [u.fold.part.weight, u.fold.part.bias];
    // The fold target's row r is divided by the scale of the channels it feeds (tied under GQA);
    // rows of a fused tensor that feed other units (offset) keep scale 1.
    const rows = new Float32Array(u.fold.kind === 'rows' ? u.fold.part.weight.shape[0] : u.K).fill(1);
    const offset = u.fold.kind === 'rows' ? (u.fold.offset ?? 0) : 0;
    tiedRows(u).forEach((r, c) => (rows[offset + r] = s[c]));
    for (const t of targets) if (t) entry(t.name).row = rows;
  }
  return out;
}

/** Which stacked rows belong to parts AWQ does not clip. */
export function noClipRowsOf(u: LinearUnit, rows: number[]): (n: number) => boolean {
  const ranges = u.noClip.map((i) => {
    const a = rows.slice(0, i).reduce((s, r) => s + r, 0);
    return [a, a + rows[i]];
  });
  return (n) => ranges.some(([a, b]) => n >= a && n < b);
}

/**
 * Quantizes a unit's (already scaled) weights. `gram` is X^T X of the unit's input as this weight
 * sees it (divided by the unit's scales, if any); rtn needs none.
 */
export function quantizeUnit(w: UnitWeights, u: LinearUnit, spec: QuantSpec, method: QuantMethod, gram: ArrayLike<number> | null, opts: { actOrder?: boolean } = {}): QuantizedWeight {
  if (method === 'rtn' || !gram) return quantizeWeight(w.W, w.N, w.K, spec);
  if (method === 'gptq') return gptqQuantize(w.W, w.N, w.K, spec, gram, { actOrder: opts.actOrder });
  return awqQuantizeScaled(w.W, w.N, w.K, spec, gram, { noClipRows: noClipRowsOf(u, w.rows) }).q;
}

/** X^T X of the unit's input divided by s (or as collected). */
export function unitGram(stats: InputStats, s: Float32Array | undefined): ArrayLike<number> | null {
  if (!stats.gram) return null;
  return s ? scaleGram(stats.gram, stats.K, s) : stats.gram;
}

/** ||X (Wq - W)^T||^2 / ||X W^T||^2 over the calibration rows: the layer's relative output error. */
export function relativeLayerError(w: UnitWeights, deq: Float32Array, gram: ArrayLike<number>): number {
  const d = new Float64Array(deq.length);
  for (let i = 0; i < d.length; i++) d[i] = deq[i] - w.W[i];
  const ref = outputError(w.W, w.N, w.K, gram);
  return ref > 0 ? outputError(d, w.N, w.K, gram) / ref : 0;
}

/**
 * Bias correction: the quantized layer's mean output error over the calibration rows is
 * (Wq - W) mean(x); subtracting it from the bias removes it. `mean` is the input's mean per
 * channel as this weight sees it; returns each row's correction (to subtract), [N].
 */
export function biasCorrection(w: UnitWeights, deq: Float32Array, mean: ArrayLike<number>): Float32Array {
  const out = new Float32Array(w.N);
  for (let n = 0; n < w.N; n++) {
    let s = 0;
    for (let k = 0; k < w.K; k++) s += (deq[n * w.K + k] - w.W[n * w.K + k]) * mean[k];
    out[n] = s;
  }
  return out;
}
