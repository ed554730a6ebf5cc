/**
 * The Linears of each architecture as quantization sees them: a "unit" is the weights that read
 * one input (stacked into one matmul by the loader: q|k|v, gate|up), so they share calibration
 * statistics, a static activation scale, a smoothing scale, and mixed precision's choice of bits.
 * The forwards call their tap with the unit's id just before its matmul.
 *
 * `fold` names the op that produces the unit's input, where a per-input-channel scale s can be
 * divided out exactly (W x = (W diag s)(x / s)): a norm whose output feeds only this unit, or the
 * rows of a Linear whose output reaches this input through per-channel-linear ops only.
 *
 *   llama-family   qkv <- input_layernorm            o    <- v_proj rows (with GQA one v row feeds
 *                  gate|up <- post_attention_layernorm      several heads' channels: their scales are tied)
 *                  down <- up_proj rows (silu(g) * u is linear in u)   lm_head <- model.norm
 *   bert           attention output <- value rows (attention is linear in V). Nothing else: every
 *                  LayerNorm output is also the residual, so scaling it would change the residual
 *                  stream, and the output dense reads GELU's output.
 *   modernbert     Wqkv <- attn_norm (pre-norm: its output feeds only Wqkv; layer 0's is an
 *                  Identity, so no fold there)   attn Wo <- Wqkv's value rows   Wi <- mlp_norm
 *                  mlp Wo <- Wi's gate rows (gelu(input) * gate is linear in gate)
 *                  classifier <- head.norm   head.dense: nothing (it reads the pooled final_norm
 *                  output, which is also the model's hidden state). A LayerNorm without bias
 *                  (norm_bias false) folds into its weight alone: its beta is zero.
 */
import { WebqError } from '../errors.ts';
import type { LinearWeight } from '../ops/linear.ts';
import type { BertGpuWeights } from '../models/bert/bert.ts';
import type { ModernBertGpu } from '../models/bert/modernbert.ts';
import type { BertWeights } from '../models/bert/bert-weights.ts';
import type { ModernBertRefs } from '../models/bert/modernbert-weights.ts';
import type { WeightRef } from '../models/weight-ref.ts';
import type { LlamaConfig } from '../models/llama/llama-config.ts';
import type { LlamaGpuWeights } from '../models/llama/llama.ts';
import type { LlamaWeights } from '../models/llama/llama-weights.ts';
import type { LinearPart } from '../models/upload.ts';

export interface LinearUnit {
  /** The tap's name, e.g. "layers.0.qkv". */
  id: string;
  /** Stacked in this order (rows of the one matmul). */
  parts: readonly LinearPart[];
  /** Inputs (columns) shared by every part. */
  K: number;
  /**
   * Rows: input channel c comes from row c of `part`; with grouped-query attention (`gqa`), the
   * channels of query heads h sharing a KV head read the same row (head h, dimension i <- row
   * (h / rep) * dim + i), so their scales must be equal (tiedRows). `offset`: the channels come
   * from rows offset.. of a fused tensor (ModernBERT's Wqkv value rows, Wi's gate rows).
   */
  fold: { kind: 'norm'; weight: WeightRef; bias: WeightRef | null } | { kind: 'rows'; part: LinearPart; offset?: number; gqa?: { rep: number; dim: number } } | null;
  /** Parts whose rows AWQ's clipping search leaves alone (q, k: attention is not linear in them). */
  noClip: readonly number[];
}

export function llamaUnits(refs: LlamaWeights, cfg: LlamaConfig): LinearUnit[] {
  const units: LinearUnit[] = [];
  const H = cfg.hiddenSize;
  // Calibration reads each part's tensor whole (quantize-methods.ts): a fused Linear's rows are not split there yet.
  if (cfg.fusedProjections) throw new WebqError('UNSUPPORTED_MODEL', `calibrated quantization does not yet split ${cfg.modelType}'s fused qkv_proj / gate_up_proj; quantize it with round-to-nearest (webq quantize --dtype q8, q4, w8a8 or w4a8 without --method, --max-error, --report, --eval or --smooth) or load the float checkpoint with dtype q8 or q4`);
  // A Linear whose input is a norm's output takes its scales folded into the norm; OLMo 2's read the residual stream (no fold).
  // Gemma's norms scale by 1 + w (WeightRef.offset): dividing the stored w by s would not divide
  // the scale, so those units take no per-channel scales (GPTQ and round-to-nearest need none).
  const normFold = (w: WeightRef | null): LinearUnit['fold'] => (w && !w.offset ? { kind: 'norm', weight: w, bias: null } : null);
  refs.layers.forEach((l, i) => {
    const p = `layers.${i}`;
    units.push({ id: `${p}.qkv`, parts: [l.q, l.k, l.v], K: H, fold: normFold(l.inputNorm), noClip: [0, 1] });
    const rep = cfg.numHeads / cfg.numKvHeads;
    units.push({ id: `${p}.o`, parts: [l.o], K: cfg.numHeads * cfg.headDim, fold: { kind: 'rows', part: l.v, ...(rep > 1 && { gqa: { rep, dim: cfg.headDim } }) }, noClip: [] });
    units.push({ id: `${p}.gateUp`, parts: [l.gate, l.up], K: H, fold: normFold(l.postNorm), noClip: [] });
    units.push({ id: `${p}.down`, parts: [l.down], K: cfg.intermediateSize, fold: { kind: 'rows', part: l.up }, noClip: [] });
  });
  if (refs.lmHead) units.push({ id: 'lmHead', parts: [{ weight: refs.lmHead }], K: H, fold: normFold(refs.norm), noClip: [] });
  return units;
}

/** For each input channel of u, the row of its fold target it comes from (identity unless GQA ties channels). */
export function tiedRows(u: LinearUnit): Int32Array {
  const g = u.fold?.kind === 'rows' ? u.fold.gqa : undefined;
  return Int32Array.from({ length: u.K }, (_, c) => (g ? Math.floor(Math.floor(c / g.dim) / g.rep) * g.dim + (c % g.dim) : c));
}

/** Per input channel, the max or mean of `v` over the channels sharing its fold row (GQA), so scales made from it are equal across them. */
export function tieChannels(u: LinearUnit, v: ArrayLike<number>, how: 'max' | 'mean'): Float32Array {
  const rows = tiedRows(u);
  const acc = new Map<number, { v: number; n: number }>();
  rows.forEach((r, c) => {
    const a = acc.get(r);
    if (!a) acc.set(r, { v: v[c], n: 1 });
    else [a.v, a.n] = [how === 'max' ? Math.max(a.v, v[c]) : a.v + v[c], a.n + 1];
  });
  return Float32Array.from(rows, (r) => (how === 'max' ? acc.get(r)!.v : acc.get(r)!.v / acc.get(r)!.n));
}

/** ModernBERT's units (tap ids as modernbert.ts names them); the fused Wqkv and Wi are one part each. */
function modernBertUnits(m: ModernBertRefs): LinearUnit[] {
  const units: LinearUnit[] = [];
  const normFold = (n: { weight: WeightRef; bias: WeightRef | null } | null): LinearUnit['fold'] => (n ? { kind: 'norm', weight: n.weight, bias: n.bias } : null);
  m.layers.forEach((l, i) => {
    const p = `layers.${i}`;
    const H = l.qkv.weight.shape[1];
    const I = l.mlpOut.weight.shape[1];
    // Wqkv is one stored tensor (q | k | v rows): AWQ's clipping search, which must leave q and k
    // alone, leaves the whole of it alone.
    units.push({ id: `${p}.qkv`, parts: [l.qkv], K: H, fold: normFold(l.attnNorm), noClip: [0] });
    units.push({ id: `${p}.attnOut`, parts: [l.attnOut], K: H, fold: { kind: 'rows', part: l.qkv, offset: 2 * H }, noClip: [] });
    units.push({ id: `${p}.wi`, parts: [l.wi], K: H, fold: normFold(l.mlpNorm), noClip: [] });
    units.push({ id: `${p}.mlpOut`, parts: [l.mlpOut], K: I, fold: { kind: 'rows', part: l.wi, offset: I }, noClip: [] });
  });
  if (m.head) {
    units.push({ id: 'head.dense', parts: [m.head.dense], K: m.head.dense.weight.shape[1], fold: null, noClip: [] });
    units.push({ id: 'classifier', parts: [m.head.classifier], K: m.head.classifier.weight.shape[1], fold: normFold(m.head.norm), noClip: [] });
  }
  return units;
}

export function bertUnits(refs: BertWeights): LinearUnit[] {
  if (refs.modern) return modernBertUnits(refs.modern);
  const units: LinearUnit[] = [];
  refs.layers.forEach((l, i) => {
    const p = `layers.${i}`;
    const H = l.query.weight.shape[1];
    units.push({ id: `${p}.qkv`, parts: [l.query, l.key, l.value], K: H, fold: null, noClip: [0, 1] });
    units.push({ id: `${p}.attnOut`, parts: [l.attnOut], K: H, fold: { kind: 'rows', part: l.value }, noClip: [] });
    units.push({ id: `${p}.inter`, parts: [l.intermediate], K: H, fold: null, noClip: [] });
    units.push({ id: `${p}.out`, parts: [l.output], K: l.output.weight.shape[1], fold: null, noClip: [] });
  });
  if (refs.pooler) units.push({ id: 'pooler', parts: [refs.pooler], K: refs.pooler.weight.shape[1], fold: null, noClip: [] });
  if (refs.classifier) units.push({ id: 'classifier', parts: [refs.classifier], K: refs.classifier.weight.shape[1], fold: null, noClip: [] });
  return units;
}

/** Holders of each unit's GPU weight, to swap one in for a measurement. */
type Slot = { get(): LinearWeight; set(w: LinearWeight): void };

function llamaSlot(w: LlamaGpuWeights, id: string): Slot | null {
  if (id === 'lmHead') return { get: () => w.lmHead, set: (x) => void (w.lmHead = x) };
  const m = /^layers\.(\d+)\.(qkv|o|gateUp|down)$/.exec(id);
  const l = m && w.layers[Number(m[1])];
  if (!l) return null;
  const f = m![2] as 'qkv' | 'o' | 'gateUp' | 'down';
  return { get: () => l[f], set: (x) => void (l[f] = x) };
}

function modernBertSlot(m: ModernBertGpu, id: string): Slot | null {
  const head = m.head;
  if (id === 'head.dense' || id === 'classifier') {
    const f = id === 'head.dense' ? 'dense' : 'classifier';
    return head && { get: () => head[f], set: (x) => void (head[f] = x) };
  }
  const r = /^layers\.(\d+)\.(qkv|attnOut|wi|mlpOut)$/.exec(id);
  const l = r && m.layers[Number(r[1])];
  if (!l) return null;
  const f = r![2] as 'qkv' | 'attnOut' | 'wi' | 'mlpOut';
  return { get: () => l[f], set: (x) => void (l[f] = x) };
}

function bertSlot(w: BertGpuWeights, id: string): Slot | null {
  if (w.modern) return modernBertSlot(w.modern, id);
  if (id === 'pooler' || id === 'classifier') {
    const h = w[id];
    return h && { get: () => h.w, set: (x) => void (h.w = x) };
  }
  const m = /^layers\.(\d+)\.(qkv|attnOut|inter|out)$/.exec(id);
  const l = m && w.layers[Number(m[1])];
  if (!l) return null;
  const f = m![2] as 'qkv' | 'attnOut' | 'inter' | 'out';
  return { get: () => l[f], set: (x) => void (l[f] = x) };
}

/** Puts `lin` in unit `id`'s place and returns what was there (the caller keeps both alive). */
export function swapUnitWeight(w: LlamaGpuWeights | BertGpuWeights, id: string, lin: LinearWeight): LinearWeight {
  const slot = 'lmHead' in w ? llamaSlot(w, id) : bertSlot(w, id);
  if (!slot) throw new Error(`swapUnitWeight: no Linear unit "${id}"`);
  const old = slot.get();
  slot.set(lin);
  return old;
}
