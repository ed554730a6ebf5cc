/**
 * The common form every imported format is read into, and its mapping onto webq's layout
 * (src/quant/layout.ts). GPTQ, AWQ, compressed-tensors and bitsandbytes all define a weight as
 *
 *   W[n][k] = (code[n][k] - zero[n][g]) * scale[n][g],   g = gIdx[k]
 *
 * with unsigned codes (0..15 or 0..255), one scale and zero point per (row, group), and a group
 * index per input column (GPTQ's g_idx; contiguous runs of G columns unless act-order permuted
 * them). Their reference dequantizers compute exactly that, and so does exactDequant() in f32:
 * the product of a small integer and an f16 (or f32) scale, rounded once.
 *
 * Mapping onto webq, which groups contiguous runs of 32, 64 or 128 columns (or one per row):
 *   - if gIdx is constant on every aligned run of W columns (W = 128, 64 or 32; or one group in
 *     all), the weight IS a webq weight with group W: codes and zero points are copied (int8
 *     shifted by 128, layout.ts), each webq group takes its source group's scale. No rounding,
 *     so dequantizeWeight() of the result equals exactDequant() bit for bit. Groups that are
 *     merely out of order (g_idx a permutation of whole groups) map this way too.
 *   - otherwise (act-order g_idx that scatters a group's columns), no grouping along K holds it;
 *     the exact f32 weight is re-quantized to int8, symmetric, group 32 (webq's RTN): about 1/16
 *     of an int4 step of added error, at about twice the int4 bytes. `webq info` reports these.
 */
import { quantizeWeight } from '../rtn.ts';
import { layoutFor, readCode, roundUp, writeCode, GROUP_SIZES, type QuantizedWeight, type QuantSpec } from '../layout.ts';

/** Scales, zero points and column groups of one imported weight. */
export interface IntGroups {
  groups: number;
  /** [K] group of each input column. */
  gIdx: Int32Array;
  /** [N, groups] */
  scales: Float32Array;
  /** [N, groups] zero points in the unsigned code domain (GPTQ v1 can give 2^bits). */
  zeros: Float32Array;
}

export interface IntWeight extends IntGroups {
  N: number;
  K: number;
  bits: 4 | 8;
  /** [N, K] unsigned codes. */
  codes: Uint8Array;
}

/** How an imported weight lands in webq: its spec, and whether that is exact. */
export interface LayoutPlan {
  spec: QuantSpec;
  exact: boolean;
}

/** Re-quantization target for weights whose groups have no contiguous layout. */
export const REQUANT_SPEC: QuantSpec = { bits: 8, group: 32, symmetric: true };

/** W as f32, exactly as the formats' reference dequantizers give it (evaluated in f32). */
export function exactDequant(w: IntWeight): Float32Array {
  const { N, K, groups, gIdx, scales, zeros, codes } = w;
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) {
    const row = n * groups;
    for (let k = 0; k < K; k++) {
      const g = row + gIdx[k];
      out[n * K + k] = (codes[n * K + k] - zeros[g]) * scales[g];
    }
  }
  return out;
}

/** True when gIdx is the same on every aligned run of W columns. */
function constantOnRuns(gIdx: Int32Array, W: number): boolean {
  for (let k = 0; k < gIdx.length; k++) if (gIdx[k] !== gIdx[k - (k % W)]) return false;
  return true;
}

/**
 * The webq layout an imported weight maps onto (exactly where its groups allow). Symmetric when
 * every zero point is the midpoint; without zero points (`webq info`), as the config says.
 */
export function planLayout(K: number, bits: 4 | 8, g: Pick<IntGroups, 'gIdx'> & { zeros?: Float32Array }, configured = false): LayoutPlan {
  const mid = bits === 4 ? 8 : 128;
  const symmetric = g.zeros ? g.zeros.every((z) => z === mid) : configured;
  let group: number | 'channel' | null = null;
  // One group per row: per channel (a K of 32, 64 or 128 says "group K", the same layout).
  if (constantOnRuns(g.gIdx, K)) group = GROUP_SIZES.includes(K) ? K : 'channel';
  else group = [...GROUP_SIZES].reverse().find((W) => constantOnRuns(g.gIdx, W)) ?? null;
  if (group === null) return { spec: REQUANT_SPEC, exact: false };
  const spec: QuantSpec = { bits, group, symmetric };
  // Padding columns (K up to Kp) store the zero point as their code; one outside the code range
  // (GPTQ v1's 2^bits) cannot be stored there.
  const { Kp } = layoutFor(K, spec);
  if (Kp > K && !symmetric && g.zeros?.some((z) => z < 0 || z > 2 * mid - 1)) return { spec: REQUANT_SPEC, exact: false };
  return { spec, exact: true };
}

/** "int4 asymmetric, group 128" for messages and `webq info`. */
export function specText(s: QuantSpec): string {
  return `int${s.bits} ${s.symmetric ? 'symmetric' : 'asymmetric'}, ${s.group === 'channel' ? 'per channel' : `group ${s.group}`}`;
}

/** Packs one row of stored codes (int8 -128..127 or nibbles) into words (layout.ts). */
function packRow(c: Int32Array, bits: 4 | 8, out: Uint32Array, base: number, words: number): void {
  if (bits === 8) {
    for (let j = 0, k = 0; j < words; j++, k += 4) {
      out[base + j] = (c[k] & 0xff) | ((c[k + 1] & 0xff) << 8) | ((c[k + 2] & 0xff) << 16) | ((c[k + 3] & 0xff) << 24);
    }
    return;
  }
  for (let j = 0, k = 0; j < words; j++, k += 8) {
    let word = 0;
    for (let b = 0; b < 4; b++) word |= ((c[k + b] & 0xf) | ((c[k + 4 + b] & 0xf) << 4)) << (8 * b);
    out[base + j] = word >>> 0;
  }
}

/** The imported weight in webq's layout: copied where the plan is exact, else re-quantized. */
export function toWebq(w: IntWeight, plan: LayoutPlan = planLayout(w.K, w.bits, w)): QuantizedWeight {
  if (!plan.exact) return quantizeWeight(exactDequant(w), w.N, w.K, plan.spec);
  const { N, K, bits, codes } = w;
  const { Kp, groupSize: G, groups, wordsPerRow } = layoutFor(K, plan.spec);
  const sym = plan.spec.symmetric;
  // Stored code = unsigned code - shift: int8 keeps signed bytes (layout.ts), int4 unsigned nibbles.
  const shift = bits === 8 ? 128 : 0;
  const values = new Uint32Array(N * wordsPerRow);
  const scales = new Float32Array(N * groups);
  const zeros = sym ? null : new Float32Array(N * groups);
  const row = new Int32Array(Kp);
  for (let n = 0; n < N; n++) {
    for (let g = 0; g < groups; g++) {
      const src = n * w.groups + w.gIdx[g * G];
      scales[n * groups + g] = w.scales[src];
      if (zeros) zeros[n * groups + g] = w.zeros[src] - shift;
    }
    for (let k = 0; k < K; k++) row[k] = codes[n * K + k] - shift;
    // Padding dequantizes to exactly 0: it stores its group's zero point.
    for (let k = K; k < Kp; k++) row[k] = sym ? (bits === 4 ? 8 : 0) : zeros![n * groups + Math.floor(k / G)];
    packRow(row, bits, values, n * wordsPerRow, wordsPerRow);
  }
  return { N, K, Kp, groupSize: G, groups, bits, symmetric: sym, values, scales, zeros };
}

/** The spec of a webq weight ('channel' for one group per row). */
export function weightSpec(q: QuantizedWeight): QuantSpec {
  const channel = q.groups === 1 && q.Kp === roundUp(q.K, 32) && !(GROUP_SIZES.includes(q.groupSize) && q.Kp === roundUp(q.K, q.groupSize));
  return { bits: q.bits, group: channel ? 'channel' : q.groupSize, symmetric: q.symmetric };
}

/**
 * One spec every part can be rewritten in without rounding, for stacking rows (q|k|v): the most
 * bits, the smallest group, symmetric only if all are.
 */
export function commonSpec(parts: readonly QuantizedWeight[]): QuantSpec {
  const specs = parts.map(weightSpec);
  const numeric = specs.map((s) => s.group).filter((g): g is number => g !== 'channel');
  return {
    bits: specs.some((s) => s.bits === 8) ? 8 : 4,
    group: numeric.length ? Math.min(...numeric) : 'channel',
    symmetric: specs.every((s) => s.symmetric),
  };
}

/**
 * q rewritten exactly in `to` (as many or more bits, groups that split q's, symmetric only from
 * symmetric): each element keeps code - zero and its scale.
 */
export function relayout(q: QuantizedWeight, to: QuantSpec): QuantizedWeight {
  const from = weightSpec(q);
  if (from.bits === to.bits && from.group === to.group && from.symmetric === to.symmetric) return q;
  const { Kp, groupSize: G, groups, wordsPerRow } = layoutFor(q.K, to);
  const values = new Uint32Array(q.N * wordsPerRow);
  const scales = new Float32Array(q.N * groups);
  const zeros = to.symmetric ? null : new Float32Array(q.N * groups);
  const implicit = (bits: number) => (bits === 4 ? 8 : 0);
  // Asymmetric int8 from int4: both code and zero move down by 128 (layout.ts's shifted bytes).
  const shift = to.bits === 8 && q.bits === 4 ? (to.symmetric ? 8 : 128) : 0;
  for (let n = 0; n < q.N; n++) {
    for (let g = 0; g < groups; g++) {
      const src = Math.floor((g * G) / q.groupSize);
      scales[n * groups + g] = q.scales[n * q.groups + src];
      if (zeros) zeros[n * groups + g] = (q.zeros ? q.zeros[n * q.groups + src] : implicit(q.bits)) - shift;
    }
    for (let k = 0; k < Kp; k++) {
      const code = k < q.K ? readCode(q.values, q.bits, q.Kp, n, k) - shift : zeros ? zeros[n * groups + Math.floor(k / G)] : implicit(to.bits);
      writeCode(values, to.bits, Kp, n, k, code);
    }
  }
  return { N: q.N, K: q.K, Kp, groupSize: G, groups, bits: to.bits, symmetric: to.symmetric, values, scales, zeros };
}
