/**
 * BERT encoder on the GPU: weights uploaded once in the chosen dtype, and one forward pass
 * recorded top to bottom into one command encoder. Shapes: B texts, T tokens (padded), H hidden,
 * I intermediate, heads x D = H.
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Precision } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { TensorStore } from '../io/safetensors.ts';
import { attention } from '../ops/attention.ts';
import { embedSum } from '../ops/encoder-io.ts';
import { linear, prepareLinear, prepareQuantizedLinear, type LinearDType, type LinearWeight, type PrepareOptions } from '../ops/linear.ts';
import { readQuantized, stackQuantized, type PrequantInfo } from '../quant/prequantized.ts';
import { layerNorm } from '../ops/norm.ts';
import type { BertConfig } from './config.ts';
import type { BertWeights, LinearRefs, WeightRef } from './bert-weights.ts';

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
  word: Tensor; // [V, H]
  pos: Tensor; //  [P, H]
  type: Tensor; // [TV, H]
  embNorm: [Tensor, Tensor]; // [H]
  layers: BertLayerGpu[];
  pooler: { w: LinearWeight; b: Tensor } | null; //     [H, H] + tanh on [CLS]
  classifier: { w: LinearWeight; b: Tensor } | null; // [labels, H]
  bytes: number;
  dispose(): void;
}

export interface BertBatch {
  ids: Tensor; //   [B*T] u32
  types: Tensor; // [B*T] u32
  mask: Tensor; //  [B*T] u32, 0 = padding
  B: number;
  T: number;
}

/** Reads every tensor once (as f32, whatever the file's dtype) and uploads it in `dtype`. */
export async function uploadBertWeights(
  ctx: GpuContext, store: TensorStore, cfg: BertConfig, refs: BertWeights, dtype: LinearDType,
  opts: Pick<PrepareOptions, 'precision' | 'group' | 'symmetric'> & { onTensor?: (name: string) => void; prequant?: PrequantInfo | null } = {},
): Promise<BertGpuWeights> {
  const precision: Precision = dtype === 'f32' ? 'f32' : dtype === 'f16' ? 'f16' : opts.precision ?? (ctx.caps.f16 ? 'f16' : 'f32');
  const made: { dispose(): void }[] = [];
  const keep = <T extends { dispose(): void }>(x: T): T => (made.push(x), x);
  const read = async (r: WeightRef) => {
    const a = (await store.readAs(r.name, 'f32')) as Float32Array;
    opts.onTensor?.(r.name);
    return a;
  };
  const vec = async (r: WeightRef) => keep(ctx.uploadFloat(await read(r), r.shape, precision, r.name));
  const norm = async (n: LinearRefs): Promise<[Tensor, Tensor]> => [await vec(n.weight), await vec(n.bias)];
  const stack = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
    parts.reduce((off, p) => (out.set(p, off), off + p.length), 0);
    return out;
  };
  // Several Linears with the same input become one: their weight rows (and biases) stacked.
  const lin = async (refs: LinearRefs[]) => {
    const N = refs.reduce((s, r) => s + r.weight.shape[0], 0);
    const K = refs[0].weight.shape[1];
    const label = refs.map((r) => r.weight.name).join('+');
    const popts = { precision, label, group: opts.group, symmetric: opts.symmetric };
    let w: LinearWeight;
    if (refs[0].weight.quantized) {
      if (!opts.prequant) throw new WebqError('PREQUANT', `${store.name}: ${label} is stored pre-quantized, but the file has no webq quantization metadata (webq.format)`);
      const parts = await Promise.all(refs.map((r) => readQuantized(store, r.weight.name, r.weight.shape[0], K, opts.prequant!.spec)));
      refs.forEach((r) => opts.onTensor?.(r.weight.name));
      w = prepareQuantizedLinear(ctx, stackQuantized(parts), dtype, popts);
    } else {
      w = prepareLinear(ctx, stack(await Promise.all(refs.map((r) => read(r.weight)))), N, K, dtype, popts);
    }
    keep(w);
    const b = stack(await Promise.all(refs.map((r) => read(r.bias))));
    return { w, b: keep(ctx.uploadFloat(b, [N], precision, `${label}.bias`)) };
  };
  try {
    const e = refs.embeddings;
    const [word, pos, type, embNorm] = [await vec(e.word), await vec(e.position), await vec(e.tokenType), await norm(e.norm)];
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
    const pooler = refs.pooler ? await lin([refs.pooler]) : null;
    const classifier = refs.classifier ? await lin([refs.classifier]) : null;
    const bytes = made.reduce((s, x) => s + ((x as { bytes?: number }).bytes ?? (x as { byteLength?: number }).byteLength ?? 0), 0);
    return { precision, word, pos, type, embNorm, layers, pooler, classifier, bytes, dispose: () => made.forEach((x) => x.dispose()) };
  } catch (err) {
    made.forEach((x) => x.dispose()); // a failed load leaves nothing on the GPU
    throw err;
  }
}

/** The last hidden state [B*T, H]; every dispatch goes into `rec`. */
export function bertForward(ctx: GpuContext, rec: Recorder, w: BertGpuWeights, cfg: BertConfig, x: BertBatch): Tensor {
  const eps = cfg.layerNormEps;
  const e = embedSum(ctx, rec, x.ids, x.types, { word: w.word, pos: w.pos, type: w.type }, x.T); // [B*T, H]
  let h = layerNorm(ctx, rec, e, w.embNorm[0], w.embNorm[1], eps);
  e.dispose();
  for (const l of w.layers) {
    const qkv = linear(ctx, rec, h, l.qkv, { bias: l.qkvBias }); // [B*T, 3H]
    const att = attention(ctx, rec, qkv, x.mask, { batch: x.B, seqLen: x.T, heads: cfg.numHeads }); // [B*T, H]
    qkv.dispose();
    const a = linear(ctx, rec, att, l.attnOut, { bias: l.attnOutBias, residual: h }); // h + att W_o^T + b
    att.dispose();
    h.dispose();
    const h1 = layerNorm(ctx, rec, a, l.attnNorm[0], l.attnNorm[1], eps);
    a.dispose();
    const f = linear(ctx, rec, h1, l.inter, { bias: l.interBias, activation: 'gelu' }); // [B*T, I]
    const o = linear(ctx, rec, f, l.out, { bias: l.outBias, residual: h1 }); // [B*T, H]
    f.dispose();
    h1.dispose();
    h = layerNorm(ctx, rec, o, l.outNorm[0], l.outNorm[1], eps);
    o.dispose();
  }
  return h;
}

/** Classification logits [B, labels]: tanh(W_p h_CLS + b_p), then the classifier. */
export function bertClassifierHead(ctx: GpuContext, rec: Recorder, w: BertGpuWeights, cls: Tensor): Tensor {
  if (!w.pooler || !w.classifier) throw new WebqError('NO_CLASSIFIER', 'bertClassifierHead: the checkpoint has no pooler/classifier weights');
  const p = linear(ctx, rec, cls, w.pooler.w, { bias: w.pooler.b, activation: 'tanh' });
  const logits = linear(ctx, rec, p, w.classifier.w, { bias: w.classifier.b });
  p.dispose();
  return logits;
}
