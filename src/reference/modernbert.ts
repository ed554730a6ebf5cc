/**
 * A plain-TypeScript ModernBERT encoder (transformers' modeling_modernbert.py, eager attention), top
 * to bottom, as the ground truth the GPU forward is tested against. Weights are f32; sums and
 * activations are f64. Nothing here is fast; it is written to be read.
 *
 * Weights: a record keyed by the unprefixed HF name (`embeddings.tok_embeddings.weight`,
 * `layers.0.attn.Wqkv.weight`, `head.dense.weight`, ...), e.g. readBertWeightsF32(). A bias or a
 * LayerNorm bias absent from the record is zero, as norm_bias / attention_bias / mlp_bias false
 * leave it out of the model.
 */
import { ShapeError, WebqError } from '../errors.ts';
import type { BertConfig } from '../models/config.ts';
import { attend, MASKED_SCORE, type BertWeightsF32 } from './bert.ts';
import { gelu } from './math.ts';

export interface ModernBertInputs {
  /** [B*T] token ids, row-major. */
  ids: Int32Array;
  /** [B*T], 1 = real token, 0 = padding. */
  attentionMask: Int32Array;
  batch: number;
}

function need(w: BertWeightsF32, key: string, size: number): Float32Array {
  const a = w[key];
  if (a === undefined) throw new WebqError('REFERENCE_WEIGHT_MISSING', `ModernBERT reference: no weight "${key}" in the weights record`);
  if (a.length !== size) throw new ShapeError(`ModernBERT reference: weight "${key}" has ${a.length} elements, expected ${size}`);
  return a;
}

/** y [rows, out] = x [rows, inp] W^T (+ b): nn.Linear with W [out, inp]; b absent = no bias. */
function linear(x: Float64Array, rows: number, inp: number, W: Float32Array, b: Float32Array | undefined, out: number): Float64Array {
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inp; i++) s += x[r * inp + i] * W[o * inp + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

/** nn.LayerNorm over rows of n, into a new array: (x - mean) / sqrt(var + eps) * g (+ b). */
function layerNorm(x: Float64Array, n: number, g: Float32Array, b: Float32Array | undefined, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / n; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[r * n + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) y[r * n + i] = (x[r * n + i] - mean) * inv * g[i] + (b ? b[i] : 0);
  }
  return y;
}

/**
 * apply_rotary_pos_emb on one [T, heads * D] block of q or k, in place: per head,
 * x * cos + rotate_half(x) * sin with cos/sin of cat(freqs, freqs); freqs = t * inv_freq, where
 * inv_freq = 1 / base^(arange(0, D, 2) / D) and the product are float32 (ModernBertRotaryEmbedding).
 */
function rope(x: Float64Array, T: number, heads: number, D: number, base: number): void {
  const f = Math.fround;
  const half = D / 2;
  for (let t = 0; t < T; t++) {
    for (let k = 0; k < half; k++) {
      const angle = f(t * f(1 / f(Math.pow(base, f((2 * k) / D)))));
      const [c, s] = [f(Math.cos(angle)), f(Math.sin(angle))];
      for (let h = 0; h < heads; h++) {
        const at = t * heads * D + h * D + k;
        const [x1, x2] = [x[at], x[at + half]];
        x[at] = x1 * c - x2 * s; // rotate_half: (-x2, x1)
        x[at + half] = x2 * c + x1 * s;
      }
    }
  }
}

/** The last hidden state [B, T, H] (after final_norm); padding rows as computed (pooling ignores them). */
export function modernBertEncode(cfg: BertConfig, w: BertWeightsF32, input: ModernBertInputs): Float32Array {
  const m = cfg.modern;
  if (!m) throw new ShapeError('modernBertEncode: config is not a ModernBERT config (config.modern is null)');
  const { ids, attentionMask: mask, batch: B } = input;
  const T = ids.length / B;
  const [H, I, heads, D, eps] = [cfg.hiddenSize, cfg.intermediateSize, cfg.numHeads, cfg.headDim, cfg.layerNormEps];
  const ln = (x: Float64Array, name: string) => layerNorm(x, H, need(w, `${name}.weight`, H), w[`${name}.bias`], eps);
  const lin = (x: Float64Array, name: string, inp: number, out: number) => linear(x, T, inp, need(w, `${name}.weight`, out * inp), w[`${name}.bias`], out);
  const word = need(w, 'embeddings.tok_embeddings.weight', cfg.vocabSize * H);
  const out = new Float32Array(B * T * H);
  for (let b = 0; b < B; b++) {
    // ModernBertEmbeddings: norm(tok_embeddings(ids)); no positions, no token types.
    const e = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      const id = ids[b * T + t];
      if (!(id >= 0 && id < cfg.vocabSize)) throw new ShapeError(`ids[${b}][${t}] = ${id} is outside the vocabulary (vocab_size ${cfg.vocabSize})`);
      for (let i = 0; i < H; i++) e[t * H + i] = word[id * H + i];
    }
    let x = ln(e, 'embeddings.norm');
    const keyMask = mask.subarray(b * T, (b + 1) * T);
    for (let l = 0; l < cfg.numLayers; l++) {
      const L = `layers.${l}`;
      const local = l % m.globalEvery !== 0;
      // Attention: attn_norm (Identity on layer 0), Wqkv -> q | k | v, RoPE on q and k, scores.
      const a = l === 0 ? x : ln(x, `${L}.attn_norm`);
      const qkv = lin(a, `${L}.attn.Wqkv`, H, 3 * H);
      const [q, k, v] = [0, 1, 2].map((p) => {
        const part = new Float64Array(T * H);
        for (let t = 0; t < T; t++) for (let i = 0; i < H; i++) part[t * H + i] = qkv[t * 3 * H + p * H + i];
        return part;
      });
      const base = local ? m.localRopeTheta : m.globalRopeTheta;
      rope(q, T, heads, D, base);
      rope(k, T, heads, D, base);
      // Local layers: sliding_window_mask sets the scores of keys with |i - j| > local_attention // 2
      // to the lowest float (for a real key; a padding key is masked already).
      const window = local ? (_h: number, i: number, j: number) => (Math.abs(i - j) > m.localHalfWindow && keyMask[j] ? MASKED_SCORE : 0) : undefined;
      const ctx = attend(q, k, v, keyMask, T, heads, D, undefined, window);
      const o = lin(ctx, `${L}.attn.Wo`, H, H);
      for (let i = 0; i < x.length; i++) o[i] += x[i];
      x = o;
      // MLP: mlp_norm, Wi -> input | gate, gelu(input) * gate, Wo; residual.
      const wi = lin(ln(x, `${L}.mlp_norm`), `${L}.mlp.Wi`, H, 2 * I);
      const g = new Float64Array(T * I);
      for (let t = 0; t < T; t++) for (let i = 0; i < I; i++) g[t * I + i] = gelu(wi[t * 2 * I + i]) * wi[t * 2 * I + I + i];
      const mo = lin(g, `${L}.mlp.Wo`, I, H);
      for (let i = 0; i < x.length; i++) mo[i] += x[i];
      x = mo;
    }
    out.set(ln(x, 'final_norm'), b * T * H);
  }
  return out;
}

const ACT: Readonly<Record<string, (v: number) => number>> = { gelu, tanh: Math.tanh, relu: (v) => Math.max(v, 0), silu: (v) => v / (1 + Math.exp(-v)) };

/**
 * ModernBertForSequenceClassification's head -> logits [B, numLabels]: pool the last hidden state
 * (classifier_pooling: [CLS] row, or the mean over real tokens), head = norm(act(dense(x))), classifier.
 */
export function modernBertClassify(cfg: BertConfig, w: BertWeightsF32, hidden: Float32Array, attentionMask: Int32Array, batch: number): Float32Array {
  const m = cfg.modern!;
  const H = cfg.hiddenSize;
  const T = attentionMask.length / batch;
  const pooled = new Float64Array(batch * H);
  for (let b = 0; b < batch; b++) {
    let n = 0;
    for (let t = 0; t < (m.classifierPooling === 'cls' ? 1 : T); t++) {
      if (m.classifierPooling === 'mean' && !attentionMask[b * T + t]) continue;
      n++;
      for (let i = 0; i < H; i++) pooled[b * H + i] += hidden[(b * T + t) * H + i];
    }
    for (let i = 0; i < H; i++) pooled[b * H + i] /= n;
  }
  const d = linear(pooled, batch, H, need(w, 'head.dense.weight', H * H), w['head.dense.bias'], H);
  for (let i = 0; i < d.length; i++) d[i] = ACT[m.classifierActivation](d[i]);
  const n = layerNorm(d, H, need(w, 'head.norm.weight', H), w['head.norm.bias'], cfg.layerNormEps);
  const N = cfg.numLabels;
  return Float32Array.from(linear(n, batch, H, need(w, 'classifier.weight', N * H), need(w, 'classifier.bias', N), N));
}
