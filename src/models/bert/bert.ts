/**
 * BERT encoder on the GPU: weights uploaded once in the chosen dtype, and one forward pass
 * recorded top to bottom into one command encoder. Shapes: B texts, T tokens (padded), H hidden,
 * I intermediate, heads x D = H.
 */
import { WebqError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import type { Recorder } from '../../gpu/recorder.ts';
import type { Precision } from '../../gpu/shaders.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import type { TensorStore } from '../../io/safetensors/reader.ts';
import { attention } from '../../ops/attention.ts';
import type { LinearTap } from '../../ops/calib-stats.ts';
import { embedSum } from '../../ops/encoder-io.ts';
import { linear, quantizedWeight, rowChunks, type Activations, type LinearDType, type LinearWeight } from '../../ops/linear.ts';
import { layerNorm } from '../../ops/norm.ts';
import type { QWeight } from '../../ops/qweight.ts';
import type { BertConfig } from '../config.ts';
import type { BertWeights, LinearRefs } from './bert-weights.ts';
import { heldObjects, makeUploader, modelActivations, prequantLinears, type GpuObject, type LinearPart, type TableSpecs, type UploadOptions } from '../upload.ts';
import { modernBertForward, modernBertHead, modernRopeTables, uploadModernBert, type ModernBertGpu } from './modernbert.ts';

export interface BertLayerGpu {
  qkv: LinearWeight; //      [3H, H]  query | key | value rows, fused into one matmul
  qkvBias: Tensor; //        [3H]
  attnOut: LinearWeight; //  [H, H]
  attnOutBias: Tensor; //    [H]
  attnNorm: [Tensor, Tensor]; // gamma, beta [H]
  inter: LinearWeight; //    [I, H]
  interBias: Tensor; //      [I]
  out: LinearWeight; //      [H, I]
  outBias: Tensor; //        [H]
  outNorm: [Tensor, Tensor]; // [H]
}

export interface BertGpuWeights {
  precision: Precision;
  /** What every quantized Linear does with its input: see BertLoadOptions.activations. */
  activations: Activations;
  word: Tensor | QWeight; // [V, H]  float, or int8 rows (under quantized dtypes, by default)
  pos: Tensor | null; //  [P, H]; null for ModernBERT (RoPE)
  type: Tensor | null; // [TV, H]; one row of zeros for DistilBERT (no token types); null for ModernBERT
  embNorm: [Tensor, Tensor] | null; // [H]; ModernBERT's is in `modern`
  layers: BertLayerGpu[]; // empty for ModernBERT
  /** ModernBERT's layers, norms and head (src/models/bert/modernbert.ts), else null. */
  modern: ModernBertGpu | null;
  /** MPNet: the relative position bias table f32 [buckets, heads], shared by every layer; else null. */
  relTable: Tensor | null;
  pooler: { w: LinearWeight; b: Tensor } | null; //     [H, H] + tanh (relu: DistilBERT) on [CLS]
  classifier: { w: LinearWeight; b: Tensor } | null; // [labels, H]
  bytes: number;
  /** Every GPU object these weights hold, by what it was made from (UploadReuse.objects of an update). */
  objects: ReadonlyMap<string, GpuObject>;
  /** Bytes this upload made (less than `bytes` when it reused a previous version's objects). */
  uploadedBytes: number;
  /** Frees what this upload made (not what it reused). */
  dispose(): void;
}

export interface BertBatch {
  ids: Tensor; //       [B*T] u32
  types: Tensor; //     [B*T] u32
  positions: Tensor; // [B*T] u32, rows of the position table (positionIds)
  relBuckets?: Tensor | null; // [2T-1] u32, MPNet: the bias bucket of each distance j - i (relativeBuckets)
  mask: Tensor; //      [B*T] u32, 0 = padding
  /** ModernBERT: RoPE cos | sin tables f32 [T, D] for the global and the local layers' bases. */
  rope?: { global: Tensor; local: Tensor } | null;
  B: number;
  T: number;
}

/** A tokenized batch, [B*T] row-major (TextTokenizer.encodeBatch's fields). */
export interface EncoderIds {
  ids: Int32Array;
  tokenTypeIds: Int32Array;
  attentionMask: Int32Array;
  batch: number;
  seqLen: number;
}

/**
 * Position ids [B*T]: 0..T-1 in every row, or RoBERTa's and MPNet's (transformers'
 * create_position_ids_from_input_ids): paddingIdx + the count of non-padding ids up to and
 * including this one, and paddingIdx itself for a padding id. It looks at the ids, not the mask,
 * as transformers does.
 */
export function positionIds(cfg: BertConfig, ids: Int32Array, T: number): Uint32Array {
  const out = new Uint32Array(ids.length);
  for (let r = 0; r < ids.length; r += T) {
    let seen = 0;
    for (let t = 0; t < T; t++) {
      if (cfg.positions === 'absolute') out[r + t] = t;
      else out[r + t] = ids[r + t] === cfg.paddingIdx ? cfg.paddingIdx : cfg.paddingIdx + ++seen;
    }
  }
  return out;
}

/**
 * MPNet's bucket of each relative distance d = j - i, at d + T - 1 (transformers'
 * MPNetEncoder.relative_position_bucket with 32 buckets, max distance 128): half the buckets for
 * keys before the query, exact up to 7 away, then logarithmic to 128. The logarithmic part is
 * computed in float32 steps as torch does, so a distance on a bucket edge lands where it does there.
 */
export function relativeBuckets(T: number): Uint32Array {
  const out = new Uint32Array(2 * T - 1);
  const f = Math.fround;
  for (let d = -(T - 1); d < T; d++) {
    const n = -d;
    let b = n < 0 ? 16 : 0;
    const a = Math.abs(n);
    if (a < 8) b += a;
    else b += Math.min(8 + Math.trunc(f(f(f(Math.log(f(a / 8))) / f(Math.log(16))) * 8)), 15);
    out[d + T - 1] = b;
  }
  return out;
}

/**
 * Uploads a tokenized batch. Only BERT reads token types: RoBERTa's and XLM-R's tokenizers do not
 * return them (the model sees zeros) and DistilBERT has none.
 */
export function uploadBertBatch(ctx: GpuContext, cfg: BertConfig, enc: EncoderIds): BertBatch {
  const n = enc.batch * enc.seqLen;
  const u32 = (a: Int32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
  const types = cfg.family === 'bert' ? u32(enc.tokenTypeIds) : new Uint32Array(n);
  const positions = positionIds(cfg, enc.ids, enc.seqLen);
  const last = positions.reduce((m, v) => Math.max(m, v), 0);
  if (last >= cfg.maxPositions) throw new WebqError('INPUT_TOO_LONG', `position id ${last} is past max_position_embeddings ${cfg.maxPositions}: at most ${cfg.maxTokens} tokens per text`);
  return {
    ids: ctx.write(u32(enc.ids), [n], 'u32', 'input_ids'),
    types: ctx.write(types, [n], 'u32', 'token_type_ids'),
    positions: ctx.write(positions, [n], 'u32', 'position_ids'),
    mask: ctx.write(u32(enc.attentionMask), [n], 'u32', 'attention_mask'),
    relBuckets: cfg.relativeBuckets > 0 ? ctx.write(relativeBuckets(enc.seqLen), [2 * enc.seqLen - 1], 'u32', 'relative_buckets') : null,
    rope: cfg.modern ? modernRopeTables(ctx, cfg, enc.seqLen) : null,
    B: enc.batch,
    T: enc.seqLen,
  };
}

export function freeBertBatch(b: BertBatch): void {
  for (const t of [b.ids, b.types, b.positions, b.mask, b.relBuckets, b.rope?.global, b.rope?.local]) t?.dispose();
}

/**
 * The word table packed: int8 with one scale per row (the table is only gathered, and a row's
 * values share one range), or int4 in the q4 layout. Half of MiniLM's weights are this table.
 */
export const BERT_TABLES: TableSpecs = {
  int8: { group: 'channel', symmetric: true },
  int4: { group: 32, symmetric: false },
};

/** The word table as embedSum reads it: packed rows, or one float tensor. */
function wordTable(w: LinearWeight): Tensor | QWeight {
  const q = quantizedWeight(w);
  if (q) return q;
  const { chunks } = rowChunks(w);
  if (chunks.length > 1) throw new WebqError('TENSOR_TOO_LARGE', `the word embedding table [${w.N}, ${w.K}] exceeds one storage binding as ${w.precision}; load it with embeddings 'int8'`);
  return chunks[0].w;
}

/**
 * The word table's default under a quantized dtype: int8 rows (w4a8: int4). A 4-bit table costs
 * the most accuracy of anything in a q4 BERT: trained BERTs carry a few hidden channels whose
 * LayerNorm weight is many times the rest, and the embedding LayerNorm multiplies the table's
 * rounding error in those channels by as much. On test BERTs with such channels (25x) the worst
 * cosine of mean-pooled embeddings against fp32 was 0.971-0.996 with an int4 table and
 * 0.9993-0.99999 with int8 rows; bertQuantDefaults pays for the table's bits.
 */
export function bertTableDefault(dtype: LinearDType): 'int8' | 'int4' {
  return dtype === 'w4a8' ? 'int4' : 'int8';
}

/**
 * The Linears' quantization under q4 unless the caller sets it: symmetric int4 in groups of 64
 * with the range search (the search follows symmetric: quantSpecFor). With the int8 table that
 * keeps a MiniLM-shaped file at 19.8% of f32 (asymmetric groups of 32 with the int8 table: 20.9%;
 * with the int4 table: 16.0%, at the accuracy above), and the worst cosine on the test BERTs
 * (hidden 128 and 384, 2-4 layers, with and without outlier channels, three seeds each) is
 * 0.9978 or more, against 0.9973 or more with asymmetric groups of 32 and the int8 table
 * (README "Embeddings"). Other dtypes: their own defaults.
 */
export function bertQuantDefaults(dtype: LinearDType): { group?: number; symmetric?: boolean } {
  return dtype === 'q4' ? { group: 64, symmetric: true } : {};
}

/**
 * The activations q8/q4 encoders run with when the caller does not choose: int8 blocks. An encoder
 * runs only GEMMs (every token at once), where the integer kernels are the fast road: on lavapipe a
 * MiniLM-shaped batch ran 1.2-1.3x (q8) and 1.5-1.6x (q4) faster than weight-only with the subgroup
 * kernels, 1.8x and 1.6x with the tiled ones, 1.4x and 1.55x with dot4I8Packed emulated, while
 * mean-pooled embeddings moved by at most 7.2e-4 of cosine against fp32 on test BERTs with 20x and
 * 50x LayerNorm outlier channels (README "Activations").
 */
export const BERT_ACTIVATIONS: Activations = 'int8';

/** Reads every tensor once (as f32, whatever the file's dtype) and uploads it in `dtype` (tables: upload.ts). */
export async function uploadBertWeights(ctx: GpuContext, store: TensorStore, cfg: BertConfig, refs: BertWeights, dtype: LinearDType, opts: UploadOptions = {}): Promise<BertGpuWeights> {
  const imported = refs.all.some((r) => r.imported);
  const activations = modelActivations(dtype, opts.activations, BERT_ACTIVATIONS, imported, store.name);
  // A pre-quantized store's Linears carry their own specs (a calibration run's partly quantized
  // stores too: what they have not quantized yet keeps the dtype's plain defaults, as measured there).
  const d = opts.prequant ? {} : bertQuantDefaults(dtype);
  const up = makeUploader(ctx, store, dtype, { ...opts, group: opts.group ?? d.group, symmetric: opts.symmetric ?? d.symmetric, activations });
  // Pre-quantized files may keep a Linear float (mixed precision) or give it a static activation scale.
  const pl = prequantLinears(ctx, up, opts.prequant);
  let noTypes: Tensor | null = null;
  let relTable: Tensor | null = null;
  let zeros: Tensor | null = null; // ModernBERT: the beta of LayerNorms without bias
  const free = () => (pl.dispose(), up.dispose(), noTypes?.dispose(), relTable?.dispose(), zeros?.dispose());
  const norm = async (n: LinearRefs): Promise<[Tensor, Tensor]> => [await up.vec(n.weight), await up.vec(n.bias)];
  // Several Linears with the same input become one: their weight rows (and biases) stacked.
  const lin = async (parts: LinearRefs[]) => {
    // Another tool's checkpoint keeps float what it did not quantize (pooler, classifier): so does its load.
    const { w, b } = imported && !parts.some((p) => p.weight.imported) ? await up.lin(parts, up.precision) : await pl.lin(parts);
    return { w, b: b! }; // every BERT Linear has a bias
  };
  try {
    const e = refs.embeddings;
    // Another tool's 4-bit checkpoint (GPTQ, AWQ, ...) left its table float: int8 adds little to it.
    const word = wordTable(await up.table(e.word, BERT_TABLES, imported ? 'int8' : bertTableDefault(dtype)));
    const done = { precision: up.precision, activations, word, relTable: null, pooler: null, classifier: null, dispose: free };
    if (refs.modern) {
      zeros = ctx.uploadFloat(new Float32Array(cfg.hiddenSize), [cfg.hiddenSize], up.precision, 'no norm bias');
      const linMaybe = async (parts: LinearPart[]) => (imported && !parts.some((p) => p.weight.imported) ? await up.lin(parts, up.precision) : await pl.lin(parts));
      const modern = await uploadModernBert(up, linMaybe, refs.modern, zeros);
      return { ...done, pos: null, type: null, embNorm: null, layers: [], modern, bytes: up.bytes(), objects: heldObjects(up, pl.made), uploadedBytes: up.uploadedBytes() };
    }
    // DistilBERT has no token types: one zero row, so the one embedding kernel adds nothing.
    const type = e.tokenType ? await up.vec(e.tokenType) : (noTypes = ctx.uploadFloat(new Float32Array(cfg.hiddenSize), [1, cfg.hiddenSize], up.precision, 'no token types'));
    const [pos, embNorm] = [await up.vec(e.position!), await norm(e.norm!)];
    const layers: BertLayerGpu[] = [];
    for (const l of refs.layers) {
      const qkv = await lin([l.query, l.key, l.value]);
      const attnOut = await lin([l.attnOut]);
      const attnNorm = await norm(l.attnNorm);
      const inter = await lin([l.intermediate]);
      const out = await lin([l.output]);
      const outNorm = await norm(l.outNorm);
      layers.push({ qkv: qkv.w, qkvBias: qkv.b, attnOut: attnOut.w, attnOutBias: attnOut.b, attnNorm, inter: inter.w, interBias: inter.b, out: out.w, outBias: out.b, outNorm });
    }
    // Read by the attention kernels as f32 whatever the activation precision (a few hundred values).
    if (refs.relativeBias) relTable = ctx.uploadFloat(await store.readAs(refs.relativeBias.name, 'f32'), refs.relativeBias.shape, 'f32', refs.relativeBias.name);
    const pooler = refs.pooler ? await lin([refs.pooler]) : null;
    const classifier = refs.classifier ? await lin([refs.classifier]) : null;
    return { precision: up.precision, activations, word, pos, type, embNorm, layers, modern: null, relTable, pooler, classifier, bytes: up.bytes(), objects: heldObjects(up, pl.made), uploadedBytes: up.uploadedBytes(), dispose: free };
  } catch (err) {
    free(); // a failed load leaves nothing on the GPU
    throw err;
  }
}

/**
 * The last hidden state [B*T, H]; every dispatch goes into `rec`. `tap` sees each Linear unit's
 * input just before its matmul (calibration; src/quantize/units.ts).
 */
export function bertForward(ctx: GpuContext, rec: Recorder, w: BertGpuWeights, cfg: BertConfig, x: BertBatch, tap?: LinearTap): Tensor {
  if (w.modern) return modernBertForward(ctx, rec, w, cfg, x, tap);
  const eps = cfg.layerNormEps;
  const e = embedSum(ctx, rec, x.ids, x.types, x.positions, { word: w.word, pos: w.pos!, type: w.type! }, x.T); // [B*T, H]
  let h = layerNorm(ctx, rec, e, w.embNorm![0], w.embNorm![1], eps);
  e.dispose();
  w.layers.forEach((l, i) => {
    tap?.(rec, `layers.${i}.qkv`, h);
    const qkv = linear(ctx, rec, h, l.qkv, { bias: l.qkvBias }); // [B*T, 3H]
    const bias = w.relTable && x.relBuckets ? { table: w.relTable, buckets: x.relBuckets } : undefined; // MPNet
    const att = attention(ctx, rec, qkv, x.mask, { batch: x.B, seqLen: x.T, heads: cfg.numHeads }, undefined, bias); // [B*T, H]
    qkv.dispose();
    tap?.(rec, `layers.${i}.attnOut`, att);
    const a = linear(ctx, rec, att, l.attnOut, { bias: l.attnOutBias, residual: h }); // h + att W_o^T + b
    att.dispose();
    h.dispose();
    const h1 = layerNorm(ctx, rec, a, l.attnNorm[0], l.attnNorm[1], eps);
    a.dispose();
    tap?.(rec, `layers.${i}.inter`, h1);
    const f = linear(ctx, rec, h1, l.inter, { bias: l.interBias, activation: 'gelu' }); // [B*T, I]
    tap?.(rec, `layers.${i}.out`, f);
    const o = linear(ctx, rec, f, l.out, { bias: l.outBias, residual: h1 }); // [B*T, H]
    f.dispose();
    h1.dispose();
    h = layerNorm(ctx, rec, o, l.outNorm[0], l.outNorm[1], eps);
    o.dispose();
  });
  return h;
}

/**
 * Classification logits [B, labels]: act(W_p h_CLS + b_p) (tanh, or ReLU for DistilBERT), then the
 * classifier (BertConfig.head; dropout is off at inference). ModernBERT: `cls` is the pooling
 * classifier_pooling names (classifierPooling), and its head adds a LayerNorm (modernBertHead).
 */
export function bertClassifierHead(ctx: GpuContext, rec: Recorder, w: BertGpuWeights, cfg: BertConfig, cls: Tensor, tap?: LinearTap): Tensor {
  if (w.modern) {
    if (!w.modern.head) throw new WebqError('NO_CLASSIFIER', 'bertClassifierHead: the checkpoint has no head.dense/classifier weights');
    return modernBertHead(ctx, rec, w.modern, cfg, cls, tap);
  }
  if (!w.pooler || !w.classifier) throw new WebqError('NO_CLASSIFIER', 'bertClassifierHead: the checkpoint has no pooler/classifier weights');
  tap?.(rec, 'pooler', cls);
  const p = linear(ctx, rec, cls, w.pooler.w, { bias: w.pooler.b, activation: cfg.head === 'dense-relu' ? 'relu' : 'tanh' });
  tap?.(rec, 'classifier', p);
  const logits = linear(ctx, rec, p, w.classifier.w, { bias: w.classifier.b });
  p.dispose();
  return logits;
}

/** Token-classification logits [B*T, labels]: the *ForTokenClassification classifier on every token's state `h` [B*T, H]. */
export function bertTokenHead(ctx: GpuContext, rec: Recorder, w: BertGpuWeights, h: Tensor, tap?: LinearTap): Tensor {
  if (!w.classifier || w.pooler) throw new WebqError('NO_CLASSIFIER', 'bertTokenHead: the checkpoint has no token classifier (a *ForTokenClassification "classifier")');
  tap?.(rec, 'classifier', h);
  return linear(ctx, rec, h, w.classifier.w, { bias: w.classifier.b });
}
