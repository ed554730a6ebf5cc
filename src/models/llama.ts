/**
 * LLaMA-family decoder on the GPU (Llama, Mistral, Qwen2, Qwen3; differences are LlamaConfig
 * data): weights uploaded once, and a forward over T new tokens recorded top to bottom into one
 * command encoder, reading and extending the KV cache. Shapes: T tokens, H hidden, nh heads and
 * nkv KV heads of D, I intermediate, V vocabulary.
 */
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Precision } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { swiglu } from '../ops/activation.ts';
import { decoderAttention } from '../ops/decoder-attention.ts';
import { embedding, embeddingQuantized } from '../ops/embedding.ts';
import type { KvCache } from '../ops/kv-cache.ts';
import { linear, quantizedWeight, rowChunks, type Activations, type LinearDType, type LinearWeight } from '../ops/linear.ts';
import type { LinearTap } from '../ops/calib-stats.ts';
import { rmsNorm } from '../ops/norm.ts';
import { ropeKv } from '../ops/rope-kv.ts';
import type { LlamaConfig } from './llama-config.ts';
import type { LlamaWeights } from './llama-weights.ts';
import { heldObjects, makeUploader, modelActivations, prequantLinears, type EmbeddingDType, type GpuObject, type TableSpecs, type UploadOptions } from './upload.ts';

export interface LlamaLayerGpu {
  inputNorm: Tensor; //          [H]
  qkv: LinearWeight; //          [(nh + 2 nkv) D, H]  q | k | v rows, one matmul
  qkvBias: Tensor | null; //     [(nh + 2 nkv) D]
  qNorm: Tensor | null; //       [D]  (Qwen3)
  kNorm: Tensor | null; //       [D]
  o: LinearWeight; //            [H, nh D]
  oBias: Tensor | null;
  postNorm: Tensor; //           [H]
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
  const free = () => (pl.dispose(), up.dispose());
  try {
    const embed = await up.table(refs.embed, LLAMA_TABLES, llamaTableDefault(!refs.lmHead));
    const layers: LlamaLayerGpu[] = [];
    for (const l of refs.layers) {
      const inputNorm = await up.vec(l.inputNorm);
      const qkv = await pl.lin([l.q, l.k, l.v]);
      const qNorm = l.qNorm && (await up.vec(l.qNorm));
      const kNorm = l.kNorm && (await up.vec(l.kNorm));
      const o = await pl.lin([l.o]);
      const postNorm = await up.vec(l.postNorm);
      const gateUp = await pl.lin([l.gate, l.up]);
      const down = await pl.lin([l.down]);
      layers.push({ inputNorm, qkv: qkv.w, qkvBias: qkv.b, qNorm, kNorm, o: o.w, oBias: o.b, postNorm, gateUp: gateUp.w, gateUpBias: gateUp.b, down: down.w, downBias: down.b });
    }
    const norm = await up.vec(refs.norm);
    // Another tool's checkpoint keeps an untied head float (GPTQ, AWQ, ... quantize the layers
    // only): so does its load, as the format computes. 4-bit round-to-nearest on it alone took a
    // GPTQ test model's last logits to cosine 0.9967 against the format's dequantization.
    const floatHead = imported && refs.lmHead && !refs.lmHead.imported;
    const lmHead = refs.lmHead ? (floatHead ? await up.lin([{ weight: refs.lmHead }], up.precision) : await pl.lin([{ weight: refs.lmHead }])).w : embed;
    return { precision: up.precision, activations, embed, layers, norm, lmHead, bytes: up.bytes(), objects: heldObjects(up, pl.made), uploadedBytes: up.uploadedBytes(), dispose: free };
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
}

/**
 * Logits [T or 1, V] for the step's tokens; their keys and values are written into `cache`.
 * `tap` sees each Linear unit's input just before its matmul (calibration; src/quantize/units.ts).
 */
export function llamaForward(ctx: GpuContext, rec: Recorder, w: LlamaGpuWeights, cfg: LlamaConfig, cache: KvCache, step: ForwardStep, tap?: LinearTap): Tensor {
  const eps = cfg.rmsNormEps;
  const T = step.ids.size;
  const qtable = quantizedWeight(w.embed);
  let h = qtable ? embeddingQuantized(ctx, rec, step.ids, qtable) : embedding(ctx, rec, step.ids, rowChunks(w.embed)); // [T, H]
  cfg.slidingWindow.forEach((window, i) => {
    const l = w.layers[i];
    const x = rmsNorm(ctx, rec, h, l.inputNorm, eps);
    tap?.(rec, `layers.${i}.qkv`, x);
    const qkv = linear(ctx, rec, x, l.qkv, { bias: l.qkvBias ?? undefined }); // [T, (nh + 2 nkv) D]
    x.dispose();
    const qkNorm = l.qNorm && l.kNorm ? { q: l.qNorm, k: l.kNorm, eps } : undefined;
    const q = ropeKv(ctx, rec, qkv, cache, i, { qkNorm }); // [T, nh D]; K, V -> cache
    qkv.dispose();
    const att = decoderAttention(ctx, rec, q, cache, i, { pos0: step.pos0, window }); // [T, nh D]
    q.dispose();
    tap?.(rec, `layers.${i}.o`, att);
    const h1 = linear(ctx, rec, att, l.o, { bias: l.oBias ?? undefined, residual: h }); // h + attention
    att.dispose();
    h.dispose();
    const x1 = rmsNorm(ctx, rec, h1, l.postNorm, eps);
    tap?.(rec, `layers.${i}.gateUp`, x1);
    const gu = linear(ctx, rec, x1, l.gateUp, { bias: l.gateUpBias ?? undefined }); // [T, 2I]
    x1.dispose();
    const a = swiglu(ctx, rec, gu); // [T, I] silu(gate) * up
    gu.dispose();
    tap?.(rec, `layers.${i}.down`, a);
    h = linear(ctx, rec, a, l.down, { bias: l.downBias ?? undefined, residual: h1 }); // h1 + MLP
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
  return logits;
}
