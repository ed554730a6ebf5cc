/**
 * LLaMA-family decoder on the GPU (Llama, Mistral, Qwen2, Qwen3, Granite, OLMo 2, SmolLM3, Phi-3, Gemma 2, Gemma 3;
 * differences are LlamaConfig data): weights uploaded once, and a forward over T new tokens
 * recorded top to bottom into one command encoder, reading and extending the KV cache. Shapes: T
 * tokens, H hidden, nh heads and nkv KV heads of D, I intermediate, V vocabulary.
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { Recorder } from '../../gpu/recorder.ts';
import type { Precision } from '../../gpu/shaders.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import type { TensorStore } from '../../io/safetensors/reader.ts';
import { gegluTanh, softcap, swiglu } from '../../ops/activation.ts';
import { add, mul } from '../../ops/elementwise.ts';
import { batchedDecoderAttention } from '../../ops/batch-attention.ts';
import { decoderAttention } from '../../ops/decoder-attention.ts';
import type { KvBatch } from '../../ops/kv-batch.ts';
import { embedding, embeddingQuantized } from '../../ops/embedding.ts';
import type { KvCache } from '../../ops/kv-cache.ts';
import { linear, quantizedWeight, rowChunks, type Activations, type LinearDType, type LinearWeight } from '../../ops/linear.ts';
import type { LinearTap } from '../../ops/calib-stats.ts';
import { rmsNorm } from '../../ops/norm.ts';
import { ropeKv } from '../../ops/rope-kv.ts';
import { ropeAmplitude, type LlamaConfig } from './llama-config.ts';
import type { LlamaWeights } from './llama-weights.ts';
import type { WeightRef } from '../weight-ref.ts';
import { heldObjects, makeUploader, modelActivations, prequantLinears, type EmbeddingDType, type GpuObject, type TableSpecs, type UploadOptions } from '../upload.ts';

export interface LlamaLayerGpu {
  inputNorm: Tensor | null; //   [H]  (null: OLMo 2)  Gemma's norms hold 1 + w
  qkv: LinearWeight; //          [(nh + 2 nkv) D, H]  q | k | v rows, one matmul
  qkvBias: Tensor | null; //     [(nh + 2 nkv) D]
  qNorm: Tensor | null; //       [D]  (Qwen3), [nh D] (OLMo 2)
  kNorm: Tensor | null; //       [D]  (Qwen3), [nkv D] (OLMo 2)
  o: LinearWeight; //            [H, nh D]
  oBias: Tensor | null;
  attnOutNorm: Tensor | null; // [H]  (OLMo 2, Gemma)
  postNorm: Tensor | null; //    [H]  (null: OLMo 2; Gemma's pre_feedforward_layernorm)
  mlpOutNorm: Tensor | null; //  [H]  (OLMo 2, Gemma)
  gateUp: LinearWeight; //       [2I, H]  gate | up rows, one matmul
  gateUpBias: Tensor | null;
  down: LinearWeight; //         [H, I]
  downBias: Tensor | null;
}

export interface LlamaGpuWeights {
  precision: Precision;
  /** What every quantized Linear (and a packed head) does with its input: see LlmLoadOptions.activations. */
  activations: Activations;
  /**
   * [V, H]: float in the activation precision (row chunks past one binding), or packed
   * (LLAMA_TABLES; by default a tied table under a quantized dtype): one table for the gather and,
   * tied, the head.
   */
  embed: LinearWeight;
  layers: LlamaLayerGpu[];
  norm: Tensor; //               [H]
  lmHead: LinearWeight; //       [V, H]
  /** [1] each, in the activation precision, where the config's multiplier is not 1 (Granite; Gemma's sqrt(hidden) embedding scale). */
  scales: { embedding: Tensor | null; residual: Tensor | null; logits: Tensor | null };
  bytes: number;
  /** Every GPU object these weights hold, by what it was made from (UploadReuse.objects of an update). */
  objects: ReadonlyMap<string, GpuObject>;
  /** Bytes this upload made (less than `bytes` when it reused a previous version's objects). */
  uploadedBytes: number;
  /** Frees what this upload made (not what it reused). */
  dispose(): void;
}

/**
 * Decoder defaults: q8 in groups of 32 (llama.cpp's q8_0 blocks), and float activations (weight-
 * only kernels) for q8 and q4 when the caller does not choose (LlmLoadOptions.activations). Why
 * float (README "Activations" has the runs): LLM residual streams carry a few channels 20-50x the
 * rest, and an int8 block holding one rounds its other 31 values coarsely: q8's KL per token
 * against fp32 was 2.1-3.1x lower with float than with int8 on test models with 20x and 50x
 * channels and on a trained TinyStories model (q4: equal or lower, its weights dominating). And generation is mostly
 * decode, where the weight-only GEMV needs no quantization pass: on lavapipe float decoded
 * 1.2-1.8x faster per token, while int8 prefilled 1.1-1.5x (subgroup kernels) and 1.7-2.1x (tiled
 * kernels) faster, which pays only once the prompt is 2-10x the reply's length.
 */
export function llamaQuantDefaults(dtype: LinearDType): { group?: number; activations: Activations; clipSearch?: boolean } {
  // q4 groups take the range search (src/quant/range-search.ts): on trained decoders it lowers the
  // KL per token against the float model by 10-16% for no calibration (README, Quantizing well).
  // w4a8 (not measured on trained weights with it) keeps min-max.
  return dtype === 'q8' ? { group: 32, activations: 'float' } : dtype === 'q4' ? { activations: 'float', clipSearch: true } : { activations: 'float' };
}

/**
 * The embedding table packed: int8 in groups of 32, as llama.cpp keeps the output matrix above the
 * layers' precision. A tied table is both the largest matrix and the LM head of every decode step
 * (151936 x 896 for Qwen2.5-0.5B: 272 MB in f16, 141 MB here); as the head it runs with the
 * model's activations, like every other quantized Linear. int4 (opt-in) is the q4 layout.
 */
export const TABLE_Q8 = { group: 32, symmetric: true } as const;
export const LLAMA_TABLES: TableSpecs = { int8: TABLE_Q8, int4: { group: 32, symmetric: false } };

/**
 * The table's default under quantized dtypes: int8 when tied, f16 when only gathered. LLMs' tables
 * can hold massive channels (the test models plant 20x ones); a group of 32 holding one rounds
 * the other 31 coarsely, and an untied table gets none of the head's saving back: int8 there took
 * q8's KL per token from 9.4e-4 to 2.9e-3 and w8a8's from 5.1e-3 to 1.8e-2 on the test model.
 * `embeddings: 'int8'` packs it anyway.
 */
export function llamaTableDefault(tied: boolean): EmbeddingDType {
  return tied ? 'int8' : 'f16';
}

export async function uploadLlamaWeights(ctx: GpuContext, store: TensorStore, cfg: LlamaConfig, refs: LlamaWeights, dtype: LinearDType, opts: UploadOptions = {}): Promise<LlamaGpuWeights> {
  const d = llamaQuantDefaults(dtype);
  const imported = refs.layers.some((l) => [l.q, l.k, l.v, l.o, l.gate, l.up, l.down].some((p) => p.weight.imported));
  const activations = modelActivations(dtype, opts.activations, d.activations, imported, store.name);
  const up = makeUploader(ctx, store, dtype, { ...opts, group: opts.group ?? d.group, activations, clipSearch: opts.clipSearch ?? d.clipSearch });
  // Pre-quantized files may keep a Linear float (mixed precision) or give it a static activation scale.
  const pl = prequantLinears(ctx, up, opts.prequant);
  const made: Tensor[] = [];
  const free = () => (pl.dispose(), up.dispose(), made.forEach((t) => t.dispose()));
  // Granite's multipliers as [1] tensors that mul() repeats along a row; none where they are 1.
  const scalar = (x: number, label: string) => (x === 1 ? null : (made.push(ctx.uploadFloat(new Float32Array([x]), [1], up.precision, label)), made[made.length - 1]));
  try {
    const embed = await up.table(refs.embed, LLAMA_TABLES, llamaTableDefault(!refs.lmHead));
    const layers: LlamaLayerGpu[] = [];
    for (const l of refs.layers) {
      const vec = (r: WeightRef | null) => (r ? up.vec(r) : null);
      const inputNorm = await vec(l.inputNorm);
      const qkv = await pl.lin([l.q, l.k, l.v]);
      const qNorm = await vec(l.qNorm);
      const kNorm = await vec(l.kNorm);
      const o = await pl.lin([l.o]);
      const attnOutNorm = await vec(l.attnOutNorm);
      const postNorm = await vec(l.postNorm);
      const mlpOutNorm = await vec(l.mlpOutNorm);
      const gateUp = await pl.lin([l.gate, l.up]);
      const down = await pl.lin([l.down]);
      layers.push({ inputNorm, qkv: qkv.w, qkvBias: qkv.b, qNorm, kNorm, o: o.w, oBias: o.b, attnOutNorm, postNorm, mlpOutNorm, gateUp: gateUp.w, gateUpBias: gateUp.b, down: down.w, downBias: down.b });
    }
    const norm = await up.vec(refs.norm);
    // Another tool's checkpoint keeps an untied head float (GPTQ, AWQ, ... quantize the layers
    // only): so does its load, as the format computes. 4-bit round-to-nearest on it alone took a
    // GPTQ test model's last logits to cosine 0.9967 against the format's dequantization.
    const floatHead = imported && refs.lmHead && !refs.lmHead.imported;
    const lmHead = refs.lmHead ? (floatHead ? await up.lin([{ weight: refs.lmHead }], up.precision) : await pl.lin([{ weight: refs.lmHead }])).w : embed;
    const m = cfg.multipliers;
    const scales = { embedding: scalar(m.embedding, 'embedding_multiplier'), residual: scalar(m.residual, 'residual_multiplier'), logits: scalar(1 / m.logits, '1/logits_scaling') };
    return { precision: up.precision, activations, embed, layers, norm, lmHead, scales, bytes: up.bytes(), objects: heldObjects(up, pl.made), uploadedBytes: up.uploadedBytes(), dispose: free };
  } catch (err) {
    free(); // a failed load leaves nothing on the GPU
    throw err;
  }
}

export interface ForwardStep {
  /** u32 [T]: the new tokens (a decode step's is the sampler's output buffer). */
  ids: Tensor;
  /** Position of ids[0]; the caller has written it to cache.pos for this submit. */
  pos0: number;
  /** Logits of the last position only ([1, V]) instead of every position ([T, V]). */
  lastOnly: boolean;
  /**
   * Batched decode (src/generate/batch.ts): ids [B] are one new token of each of the batch's
   * sequences, each at its own position (batch.whole.pos); `cache` and pos0 are then not read.
   */
  batch?: KvBatch;
}

/**
 * h + the sublayer's output y = x W^T (+ b): fused into the matmul as its residual, unless y is
 * first normed (OLMo 2's post-sublayer norms) or scaled (Granite's residual_multiplier).
 */
function residualLinear(ctx: GpuContext, rec: Recorder, h: Tensor, x: Tensor, w: LinearWeight, bias: Tensor | null, after: { norm: Tensor | null; eps: number; scale: Tensor | null }): Tensor {
  if (!after.norm && !after.scale) return linear(ctx, rec, x, w, { bias: bias ?? undefined, residual: h });
  let y = linear(ctx, rec, x, w, { bias: bias ?? undefined });
  if (after.norm) {
    const n = rmsNorm(ctx, rec, y, after.norm, after.eps);
    y.dispose();
    y = n;
  }
  y = scaled(ctx, rec, y, after.scale);
  const out = add(ctx, rec, h, y);
  y.dispose();
  return out;
}

/** x scaled by s ([1]), or x itself without a scale; the input is consumed. */
function scaled(ctx: GpuContext, rec: Recorder, x: Tensor, s: Tensor | null): Tensor {
  if (!s) return x;
  const y = mul(ctx, rec, x, s);
  x.dispose();
  return y;
}

/**
 * Logits [T or 1, V] for the step's tokens; their keys and values are written into `cache`.
 * `tap` sees each Linear unit's input just before its matmul (calibration; src/quantize/units.ts).
 */
export function llamaForward(ctx: GpuContext, rec: Recorder, w: LlamaGpuWeights, cfg: LlamaConfig, cache: KvCache, step: ForwardStep, tap?: LinearTap): Tensor {
  const eps = cfg.rmsNormEps;
  const T = step.ids.size;
  const qtable = quantizedWeight(w.embed);
  const e = qtable ? embeddingQuantized(ctx, rec, step.ids, qtable) : embedding(ctx, rec, step.ids, rowChunks(w.embed)); // [T, H]
  let h = scaled(ctx, rec, e, w.scales.embedding); // Granite: x embedding_multiplier
  const ropeScale = ropeAmplitude(cfg);
  cfg.slidingWindow.forEach((window, i) => {
    const l = w.layers[i];
    // Attention: [input norm]; q | k | v; [q/k norms], RoPE (none on a NoPE layer), K/V into the
    // cache; attention; o; [norm on the output]; [x residual_multiplier]; + h.
    const x = l.inputNorm ? rmsNorm(ctx, rec, h, l.inputNorm, eps) : h;
    tap?.(rec, `layers.${i}.qkv`, x);
    const qkv = linear(ctx, rec, x, l.qkv, { bias: l.qkvBias ?? undefined }); // [T, (nh + 2 nkv) D]
    if (x !== h) x.dispose();
    const qkNorm = l.qNorm && l.kNorm ? { q: l.qNorm, k: l.kNorm, eps, all: cfg.qkNormOver === 'projection' } : undefined;
    const rotary = cfg.ropeLayers[i] ? cfg.rotaryDim : 0;
    const kv = step.batch;
    const q = ropeKv(ctx, rec, qkv, kv ? kv.whole : cache, i, { qkNorm, rotary, ropeScale, localRope: cfg.localRopeLayers[i], seqRows: kv?.seqRows }); // [T, nh D]; K, V -> cache
    qkv.dispose();
    const att = kv
      ? batchedDecoderAttention(ctx, rec, q, kv, i, { window, scale: cfg.attentionScale, softcap: cfg.attnSoftcap })
      : decoderAttention(ctx, rec, q, cache, i, { pos0: step.pos0, window, scale: cfg.attentionScale, softcap: cfg.attnSoftcap }); // [T, nh D]
    q.dispose();
    tap?.(rec, `layers.${i}.o`, att);
    const h1 = residualLinear(ctx, rec, h, att, l.o, l.oBias, { norm: l.attnOutNorm, eps, scale: w.scales.residual }); // h + attention
    att.dispose();
    h.dispose();
    // Gated MLP, the same way round: [norm]; gate | up; silu(gate) * up (Gemma: gelu_tanh); down; [norm]; [x multiplier]; + h1.
    const x1 = l.postNorm ? rmsNorm(ctx, rec, h1, l.postNorm, eps) : h1;
    tap?.(rec, `layers.${i}.gateUp`, x1);
    const gu = linear(ctx, rec, x1, l.gateUp, { bias: l.gateUpBias ?? undefined }); // [T, 2I]
    if (x1 !== h1) x1.dispose();
    const a = cfg.mlpActivation === 'gelu_tanh' ? gegluTanh(ctx, rec, gu) : swiglu(ctx, rec, gu); // [T, I]
    gu.dispose();
    tap?.(rec, `layers.${i}.down`, a);
    h = residualLinear(ctx, rec, h1, a, l.down, l.downBias, { norm: l.mlpOutNorm, eps, scale: w.scales.residual }); // h1 + MLP
    a.dispose();
    h1.dispose();
  });
  let last = h;
  if (step.lastOnly && T > 1) {
    // Only the last position feeds the LM head: its row, copied out (a 4-byte-aligned range).
    const H = cfg.hiddenSize;
    const bytes = H * (h.dtype === 'f16' ? 2 : 4);
    last = ctx.empty([1, H], h.dtype, 'webq:last');
    rec.copy(h.buffer, h.offset + (T - 1) * bytes, last.buffer, last.offset, bytes);
    h.dispose();
  }
  const n = rmsNorm(ctx, rec, last, w.norm, eps);
  last.dispose();
  tap?.(rec, 'lmHead', n);
  const logits = linear(ctx, rec, n, w.lmHead); // [T or 1, V]
  n.dispose();
  const out = scaled(ctx, rec, logits, w.scales.logits); // Granite: / logits_scaling
  if (!cfg.finalSoftcap) return out;
  // Gemma's final_logit_softcapping: on what every caller reads (logits, sampling, verification).
  const capped = softcap(ctx, rec, out, cfg.finalSoftcap);
  out.dispose();
  return capped;
}
