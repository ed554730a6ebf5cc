/**
 * A plain-TypeScript BERT encoder, top to bottom in one file (llama2.c style), as the ground truth
 * the GPU forward is tested against. Weights are f32 (as read from the checkpoint); every sum and
 * every activation is kept in f64, so this side's rounding error is negligible next to the GPU's.
 * Nothing here is fast; it is written to be read.
 *
 * Weights: a record keyed by canonical tensor name (no "bert." prefix, LayerNorm as .weight/.bias),
 * e.g. from readBertWeightsF32() in src/models/bert/bert-weights.ts. Linear weights are PyTorch's
 * [out, in]: y[o] = b[o] + sum_i x[i] * W[o, i].
 */
import { ShapeError, WebqError } from '../errors.ts';
import type { BertConfig } from '../models/config.ts';
import { gelu } from './math.ts';

export type BertWeightsF32 = Readonly<Record<string, Float32Array>>;

/** [B, T] integers, either as rows or flat row-major with `batch` given. */
export type IntMatrix = Int32Array | readonly (readonly number[])[];

export interface BertInputs {
  ids: IntMatrix;
  /** 1 = real token, 0 = padding; defaults to all ones. */
  attentionMask?: IntMatrix;
  /** Segment ids (0 for sentence A, 1 for B); defaults to zeros. */
  tokenTypeIds?: IntMatrix;
  /** Needed when `ids` is flat. */
  batch?: number;
}

/**
 * What masked keys get added to their scores: float32's lowest value, as transformers uses, so a
 * row whose keys are all masked still gives finite (uniform) weights instead of NaN.
 */
export const MASKED_SCORE = -3.4028234663852886e38;

function flatten(m: IntMatrix, what: string, batch: number | undefined): { data: Int32Array; batch: number; seqLen: number } {
  if (m instanceof Int32Array) {
    if (batch === undefined || !Number.isInteger(batch) || batch < 1 || m.length % batch !== 0) {
      throw new ShapeError(`${what}: a flat Int32Array of ${m.length} needs a positive integer batch that divides it, got ${batch}`);
    }
    return { data: m, batch, seqLen: m.length / batch };
  }
  const B = m.length;
  const T = B ? m[0].length : 0;
  if (B === 0 || T === 0) throw new ShapeError(`${what}: expected a non-empty [batch, seqLen] matrix`);
  const data = new Int32Array(B * T);
  m.forEach((row, b) => {
    if (row.length !== T) throw new ShapeError(`${what}: row ${b} has ${row.length} entries, row 0 has ${T}`);
    row.forEach((v, t) => (data[b * T + t] = v));
  });
  return { data, batch: B, seqLen: T };
}

function weight(w: BertWeightsF32, key: string, size: number): Float32Array {
  const a = w[key];
  if (a === undefined) throw new WebqError('REFERENCE_WEIGHT_MISSING', `BERT reference: no weight "${key}" in the weights record`);
  if (a.length !== size) throw new ShapeError(`BERT reference: weight "${key}" has ${a.length} elements, expected ${size}`);
  return a;
}

/** y [rows, out] = x [rows, inp] W^T + b, with W [out, inp] and b [out]. */
function linear(x: Float64Array, rows: number, inp: number, W: Float32Array, b: Float32Array, out: number): Float64Array {
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = b[o];
      for (let i = 0; i < inp; i++) s += x[r * inp + i] * W[o * inp + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

/** In place, per row of n: (x - mean) / sqrt(var + eps) * g + b, biased variance as PyTorch. */
function layerNorm(x: Float64Array, n: number, g: Float32Array, b: Float32Array, eps: number): void {
  for (let r = 0; r < x.length / n; r++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[r * n + i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[r * n + i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let i = 0; i < n; i++) x[r * n + i] = (x[r * n + i] - mean) * inv * g[i] + b[i];
  }
}

/**
 * Multi-head scaled dot-product attention over one sequence. q, k, v: [T, heads * headDim] with
 * head h in columns h*headDim..; keyMask[t] = 0 masks key t for every query. Returns the context
 * [T, heads * headDim]; `probs` [heads, T, T], when given, receives the softmax weights.
 */
export function attend(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  keyMask: ArrayLike<number>,
  T: number,
  heads: number,
  headDim: number,
  probs?: Float64Array,
  bias?: (h: number, i: number, j: number) => number,
): Float64Array {
  const H = heads * headDim;
  const scale = 1 / Math.sqrt(headDim);
  const ctx = new Float64Array(T * H);
  const p = new Float64Array(T);
  for (let h = 0; h < heads; h++) {
    const c0 = h * headDim;
    for (let i = 0; i < T; i++) {
      // scores[j] = q_i . k_j / sqrt(d) [+ position bias] + (mask_j ? 0 : MASKED_SCORE), then a max-shifted softmax
      let max = -Infinity;
      for (let j = 0; j < T; j++) {
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[i * H + c0 + d] * k[j * H + c0 + d];
        p[j] = s * scale + (bias ? bias(h, i, j) : 0) + (keyMask[j] ? 0 : MASKED_SCORE);
        if (p[j] > max) max = p[j];
      }
      let sum = 0;
      for (let j = 0; j < T; j++) sum += p[j] = Math.exp(p[j] - max);
      for (let j = 0; j < T; j++) {
        p[j] /= sum;
        if (probs) probs[(h * T + i) * T + j] = p[j];
        for (let d = 0; d < headDim; d++) ctx[i * H + c0 + d] += p[j] * v[j * H + c0 + d];
      }
    }
  }
  return ctx;
}

/**
 * MPNet's relative position bucket of key j seen from query i (MPNetEncoder.relative_position_bucket,
 * 32 buckets, max distance 128), step by step in float32 as torch computes it.
 */
function mpnetBucket(i: number, j: number): number {
  const n = -(j - i); // -(memory - context)
  const half = 16; // num_buckets // 2
  const exact = 8; // half // 2
  const ret = n < 0 ? half : 0;
  const a = Math.abs(n);
  if (a < exact) return ret + a;
  const f = Math.fround;
  const scaled = f(f(f(Math.log(f(a / exact))) / f(Math.log(128 / exact))) * (half - exact));
  return ret + Math.min(exact + Math.trunc(scaled), half - 1);
}

/** One encoder layer, in place on x [T, H] of one sequence. */
function encoderLayer(cfg: BertConfig, w: BertWeightsF32, l: number, x: Float64Array, keyMask: ArrayLike<number>, T: number): void {
  const H = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  const L = `encoder.layer.${l}`;
  const lin = (name: string, input: Float64Array, inp: number, out: number) =>
    linear(input, T, inp, weight(w, `${L}.${name}.weight`, out * inp), weight(w, `${L}.${name}.bias`, out), out);
  const norm = (name: string, y: Float64Array) =>
    layerNorm(y, H, weight(w, `${L}.${name}.weight`, H), weight(w, `${L}.${name}.bias`, H), cfg.layerNormEps);

  // Self-attention: Q, K, V [H, H] each; context; output dense [H, H]; residual; LayerNorm [H].
  const q = lin('attention.self.query', x, H, H);
  const k = lin('attention.self.key', x, H, H);
  const v = lin('attention.self.value', x, H, H);
  // MPNet: table[bucket(i, j), h] from one table shared by every layer.
  const rel = cfg.relativeBuckets > 0 ? weight(w, 'encoder.relative_attention_bias.weight', cfg.relativeBuckets * cfg.numHeads) : null;
  const bias = rel ? (h: number, i: number, j: number) => rel[mpnetBucket(i, j) * cfg.numHeads + h] : undefined;
  const ctx = attend(q, k, v, keyMask, T, cfg.numHeads, cfg.headDim, undefined, bias);
  const a = lin('attention.output.dense', ctx, H, H);
  for (let i = 0; i < a.length; i++) a[i] += x[i];
  norm('attention.output.LayerNorm', a);

  // Feed-forward: intermediate [I, H] + GELU (erf), output [H, I]; residual; LayerNorm [H].
  const f = lin('intermediate.dense', a, H, I);
  for (let i = 0; i < f.length; i++) f[i] = gelu(f[i]);
  const o = lin('output.dense', f, I, H);
  for (let i = 0; i < o.length; i++) x[i] = o[i] + a[i];
  norm('output.LayerNorm', x);
}

/**
 * The encoder's last hidden state [B, T, H]. Positions are 0..T-1 for every row (BERT's and
 * DistilBERT's absolute positions), or RoBERTa's: padding_idx + 1, + 2, ... over the row's
 * non-padding ids and padding_idx on a padding id (transformers' create_position_ids_from_input_ids).
 * DistilBERT and MPNet (type_vocab_size 0 here) add no token type embedding; MPNet adds a relative
 * position bias to every layer's attention scores.
 */
export function bertEncode(cfg: BertConfig, w: BertWeightsF32, input: BertInputs): Float32Array {
  const ids = flatten(input.ids, 'ids', input.batch);
  const { batch: B, seqLen: T } = ids;
  const like = (m: IntMatrix | undefined, what: string, fill: number) => {
    if (m === undefined) return new Int32Array(B * T).fill(fill);
    const f = flatten(m, what, B);
    if (f.batch !== B || f.seqLen !== T) throw new ShapeError(`${what}: shape [${f.batch}, ${f.seqLen}] differs from ids [${B}, ${T}]`);
    return f.data;
  };
  const mask = like(input.attentionMask, 'attentionMask', 1);
  const types = like(input.tokenTypeIds, 'tokenTypeIds', 0);
  const H = cfg.hiddenSize;
  const word = weight(w, 'embeddings.word_embeddings.weight', cfg.vocabSize * H); // [V, H]
  const pos = weight(w, 'embeddings.position_embeddings.weight', cfg.maxPositions * H); // [P, H]
  const typ = cfg.typeVocabSize > 0 ? weight(w, 'embeddings.token_type_embeddings.weight', cfg.typeVocabSize * H) : null; // [TV, H]
  const out = new Float32Array(B * T * H);
  for (let b = 0; b < B; b++) {
    // Embeddings: word + position + token type, then LayerNorm [H].
    const x = new Float64Array(T * H);
    let real = 0; // non-padding ids so far in this row (RoBERTa's positions)
    for (let t = 0; t < T; t++) {
      const id = ids.data[b * T + t];
      const tt = types[b * T + t];
      if (!(id >= 0 && id < cfg.vocabSize)) throw new ShapeError(`ids[${b}][${t}] = ${id} is outside the vocabulary (vocab_size ${cfg.vocabSize})`);
      if (typ ? !(tt >= 0 && tt < cfg.typeVocabSize) : tt !== 0) throw new ShapeError(`tokenTypeIds[${b}][${t}] = ${tt} is outside 0..${Math.max(cfg.typeVocabSize - 1, 0)}`);
      let p = t;
      if (cfg.positions === 'after-padding') p = id === cfg.paddingIdx ? cfg.paddingIdx : cfg.paddingIdx + ++real;
      if (p >= cfg.maxPositions) throw new ShapeError(`ids[${b}]: position ${p} exceeds max_position_embeddings ${cfg.maxPositions}`);
      for (let i = 0; i < H; i++) x[t * H + i] = word[id * H + i] + pos[p * H + i] + (typ ? typ[tt * H + i] : 0);
    }
    layerNorm(x, H, weight(w, 'embeddings.LayerNorm.weight', H), weight(w, 'embeddings.LayerNorm.bias', H), cfg.layerNormEps);
    const keyMask = mask.subarray(b * T, (b + 1) * T);
    for (let l = 0; l < cfg.numLayers; l++) encoderLayer(cfg, w, l, x, keyMask, T);
    out.set(x, b * T * H);
  }
  return out;
}

function dims(hidden: Float32Array, batch: number, seqLen: number): number {
  const H = hidden.length / (batch * seqLen);
  if (!Number.isInteger(H) || H < 1) throw new ShapeError(`hidden state of ${hidden.length} values is not [${batch}, ${seqLen}, H]`);
  return H;
}

/** Mean over the unmasked tokens of each row (sentence-transformers' mean pooling) -> [B, H]. */
export function meanPool(hidden: Float32Array, attentionMask: IntMatrix, batch?: number): Float32Array {
  const m = flatten(attentionMask, 'attentionMask', batch);
  const H = dims(hidden, m.batch, m.seqLen);
  const out = new Float32Array(m.batch * H);
  for (let b = 0; b < m.batch; b++) {
    const acc = new Float64Array(H);
    let n = 0;
    for (let t = 0; t < m.seqLen; t++) {
      if (!m.data[b * m.seqLen + t]) continue;
      n++;
      for (let i = 0; i < H; i++) acc[i] += hidden[(b * m.seqLen + t) * H + i];
    }
    // sentence-transformers clamps the count to 1e-9, so an all-padding row pools to zeros.
    for (let i = 0; i < H; i++) out[b * H + i] = acc[i] / Math.max(n, 1e-9);
  }
  return out;
}

/** The first ([CLS]) token's state of each row -> [B, H]. */
export function clsPool(hidden: Float32Array, batch: number, seqLen: number): Float32Array {
  const H = dims(hidden, batch, seqLen);
  const out = new Float32Array(batch * H);
  for (let b = 0; b < batch; b++) out.set(hidden.subarray(b * seqLen * H, b * seqLen * H + H), b * H);
  return out;
}

/** Each row of x [rows, dim] divided by its L2 norm (clamped at 1e-12 like torch's normalize). */
export function l2normalize(x: Float32Array, dim: number): Float32Array {
  if (dim < 1 || x.length % dim !== 0) throw new ShapeError(`l2normalize: ${x.length} values are not rows of ${dim}`);
  const out = new Float32Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let s = 0;
    for (let i = 0; i < dim; i++) s += x[r * dim + i] ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let i = 0; i < dim; i++) out[r * dim + i] = x[r * dim + i] * inv;
  }
  return out;
}

/**
 * The *ForSequenceClassification head on the first token's state -> logits [B, numLabels]:
 *   BERT:       tanh(pooler.dense), classifier
 *   RoBERTa:    tanh(classifier.dense), classifier.out_proj
 *   DistilBERT: relu(pre_classifier), classifier
 */
export function bertClassify(cfg: BertConfig, w: BertWeightsF32, hidden: Float32Array, batch: number, seqLen: number): Float32Array {
  const H = cfg.hiddenSize;
  const N = cfg.numLabels;
  if (cfg.head === 'token') throw new WebqError('NO_CLASSIFIER', 'BERT reference: a *ForTokenClassification head classifies every token: use bertTokenLogits');
  if (cfg.head === 'dense-gelu-norm') throw new ShapeError('bertClassify: ModernBERT\'s head is modernBertClassify (src/reference/modernbert.ts)');
  const [dense, out] = { pooler: ['pooler.dense', 'classifier'], 'dense-tanh': ['classifier.dense', 'classifier.out_proj'], 'dense-relu': ['pre_classifier', 'classifier'] }[cfg.head];
  const cls = Float64Array.from(clsPool(hidden, batch, seqLen));
  const pooled = linear(cls, batch, H, weight(w, `${dense}.weight`, H * H), weight(w, `${dense}.bias`, H), H);
  for (let i = 0; i < pooled.length; i++) pooled[i] = cfg.head === 'dense-relu' ? Math.max(pooled[i], 0) : Math.tanh(pooled[i]);
  const logits = linear(pooled, batch, H, weight(w, `${out}.weight`, N * H), weight(w, `${out}.bias`, N), N);
  return Float32Array.from(logits);
}

/** The *ForTokenClassification head: classifier on every token's last hidden state [B*T, H] -> logits [B*T, numLabels]. */
export function bertTokenLogits(cfg: BertConfig, w: BertWeightsF32, hidden: Float32Array): Float32Array {
  const H = cfg.hiddenSize;
  const N = cfg.numLabels;
  const rows = hidden.length / H;
  return Float32Array.from(linear(Float64Array.from(hidden), rows, H, weight(w, 'classifier.weight', N * H), weight(w, 'classifier.bias', N), N));
}
