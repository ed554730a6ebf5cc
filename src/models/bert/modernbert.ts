/**
 * ModernBERT on the GPU (transformers' modeling_modernbert.py), through the same loader, batch and
 * pooling as the other encoders (src/models/bert/bert.ts calls in here when BertConfig.modern is set).
 * Shapes: B texts, T tokens (padded), H hidden, I intermediate, heads x D = H.
 *
 *   h = LayerNorm(tok_embeddings[ids])                       no positions, no token types
 *   per layer i:  a = i == 0 ? h : LayerNorm_attn(h)         layer 0's attn_norm is an Identity
 *                 qkv = a Wqkv^T; RoPE on q, k (local or global base); attention (local layers:
 *                 |i - j| <= local_attention / 2 on top of the padding mask)
 *                 h = h + att Wo^T
 *                 h = h + GeGLU(LayerNorm_mlp(h) Wi^T) Wo^T  Wi's rows: input | gate
 *   h = LayerNorm_final(h)
 * LayerNorms without bias (norm_bias false) get a shared zero beta; Linears without bias none.
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { Recorder } from '../../gpu/recorder.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { geglu } from '../../ops/activation.ts';
import { attention } from '../../ops/attention.ts';
import type { LinearTap } from '../../ops/calib-stats.ts';
import { embedding, embeddingQuantized } from '../../ops/embedding.ts';
import { linear, type LinearWeight } from '../../ops/linear.ts';
import { layerNorm } from '../../ops/norm.ts';
import { ropeQkv, ropeTable } from '../../ops/rope-qkv.ts';
import type { BertBatch, BertGpuWeights } from './bert.ts';
import type { BertConfig } from '../config.ts';
import { isLocalLayer } from './modernbert-config.ts';
import type { MaybeBiased, ModernBertRefs } from './modernbert-weights.ts';
import type { LinearPart, Uploader } from '../upload.ts';

type Norm = [Tensor, Tensor]; // gamma, beta [H] (beta zeros without norm_bias)

export interface ModernBertLayerGpu {
  attnNorm: Norm | null; //      null on layer 0
  qkv: LinearWeight; //          [3H, H]
  qkvBias: Tensor | null; //     [3H]
  attnOut: LinearWeight; //      [H, H]
  attnOutBias: Tensor | null;
  mlpNorm: Norm;
  wi: LinearWeight; //           [2I, H]: input | gate
  wiBias: Tensor | null;
  mlpOut: LinearWeight; //       [H, I]
  mlpOutBias: Tensor | null;
}

export interface ModernBertGpu {
  embNorm: Norm;
  layers: ModernBertLayerGpu[];
  finalNorm: Norm;
  /** head.dense [H, H] + bias?, head.norm, classifier [labels, H] + bias; null without a classification head. */
  head: { dense: LinearWeight; denseBias: Tensor | null; norm: Norm; classifier: LinearWeight; classifierBias: Tensor } | null;
}

/** RoPE cos | sin tables [T, D] for one batch: the global layers' base and the local layers'. */
export function modernRopeTables(ctx: GpuContext, cfg: BertConfig, T: number): { global: Tensor; local: Tensor } {
  const m = cfg.modern!;
  const D = cfg.headDim;
  return {
    global: ctx.uploadFloat(ropeTable(T, D, m.globalRopeTheta), [T, D], 'f32', 'rope global'),
    local: ctx.uploadFloat(ropeTable(T, D, m.localRopeTheta), [T, D], 'f32', 'rope local'),
  };
}

/**
 * Uploads the layers, norms and head; `lin` stacks Linears as bert.ts does (pre-quantized files'
 * float and static-scale Linears included). `zeros` is the shared beta of bias-free LayerNorms.
 */
export async function uploadModernBert(up: Uploader, lin: (parts: LinearPart[]) => Promise<{ w: LinearWeight; b: Tensor | null }>, refs: ModernBertRefs, zeros: Tensor): Promise<ModernBertGpu> {
  const norm = async (n: MaybeBiased): Promise<Norm> => [await up.vec(n.weight), n.bias ? await up.vec(n.bias) : zeros];
  const embNorm = await norm(refs.embNorm);
  const layers: ModernBertLayerGpu[] = [];
  for (const l of refs.layers) {
    const attnNorm = l.attnNorm ? await norm(l.attnNorm) : null;
    const qkv = await lin([l.qkv]);
    const attnOut = await lin([l.attnOut]);
    const mlpNorm = await norm(l.mlpNorm);
    const wi = await lin([l.wi]);
    const mlpOut = await lin([l.mlpOut]);
    layers.push({ attnNorm, qkv: qkv.w, qkvBias: qkv.b, attnOut: attnOut.w, attnOutBias: attnOut.b, mlpNorm, wi: wi.w, wiBias: wi.b, mlpOut: mlpOut.w, mlpOutBias: mlpOut.b });
  }
  const finalNorm = await norm(refs.finalNorm);
  let head: ModernBertGpu['head'] = null;
  if (refs.head) {
    const dense = await lin([refs.head.dense]);
    const hn = await norm(refs.head.norm);
    const cls = await lin([refs.head.classifier]);
    head = { dense: dense.w, denseBias: dense.b, norm: hn, classifier: cls.w, classifierBias: cls.b! };
  }
  return { embNorm, layers, finalNorm, head };
}

/** The last hidden state [B*T, H] (after final_norm); every dispatch goes into `rec`. */
export function modernBertForward(ctx: GpuContext, rec: Recorder, w: BertGpuWeights, cfg: BertConfig, x: BertBatch, tap?: LinearTap): Tensor {
  const m = w.modern!;
  const opt = cfg.modern!;
  const eps = cfg.layerNormEps;
  const bias = (b: Tensor | null) => b ?? undefined;
  const e = 'chunks' in w.word ? embeddingQuantized(ctx, rec, x.ids, w.word) : embedding(ctx, rec, x.ids, w.word); // [B*T, H]
  let h = layerNorm(ctx, rec, e, m.embNorm[0], m.embNorm[1], eps);
  e.dispose();
  m.layers.forEach((l, i) => {
    const local = isLocalLayer(opt, i);
    const a = l.attnNorm ? layerNorm(ctx, rec, h, l.attnNorm[0], l.attnNorm[1], eps) : h;
    tap?.(rec, `layers.${i}.qkv`, a);
    const qkv = linear(ctx, rec, a, l.qkv, { bias: bias(l.qkvBias) }); // [B*T, 3H]
    if (a !== h) a.dispose();
    ropeQkv(ctx, rec, qkv, local ? x.rope!.local : x.rope!.global, { seqLen: x.T, heads: cfg.numHeads });
    const att = attention(ctx, rec, qkv, x.mask, { batch: x.B, seqLen: x.T, heads: cfg.numHeads, window: local ? opt.localHalfWindow : undefined }); // [B*T, H]
    qkv.dispose();
    tap?.(rec, `layers.${i}.attnOut`, att);
    const h1 = linear(ctx, rec, att, l.attnOut, { bias: bias(l.attnOutBias), residual: h }); // h + att Wo^T
    att.dispose();
    h.dispose();
    const n = layerNorm(ctx, rec, h1, l.mlpNorm[0], l.mlpNorm[1], eps);
    tap?.(rec, `layers.${i}.wi`, n);
    const wi = linear(ctx, rec, n, l.wi, { bias: bias(l.wiBias) }); // [B*T, 2I]
    n.dispose();
    const g = geglu(ctx, rec, wi); // [B*T, I]
    wi.dispose();
    tap?.(rec, `layers.${i}.mlpOut`, g);
    h = linear(ctx, rec, g, l.mlpOut, { bias: bias(l.mlpOutBias), residual: h1 }); // h1 + mlp
    g.dispose();
    h1.dispose();
  });
  const out = layerNorm(ctx, rec, h, m.finalNorm[0], m.finalNorm[1], eps);
  h.dispose();
  return out;
}

/** Classification logits [B, labels] from the pooled state [B, H] (cls or mean: classifier_pooling): classifier(norm(act(dense(x)))). */
export function modernBertHead(ctx: GpuContext, rec: Recorder, m: ModernBertGpu, cfg: BertConfig, pooled: Tensor, tap?: LinearTap): Tensor {
  const hd = m.head!;
  tap?.(rec, 'head.dense', pooled);
  const d = linear(ctx, rec, pooled, hd.dense, { bias: hd.denseBias ?? undefined, activation: cfg.modern!.classifierActivation });
  const n = layerNorm(ctx, rec, d, hd.norm[0], hd.norm[1], cfg.layerNormEps);
  d.dispose();
  tap?.(rec, 'classifier', n);
  const logits = linear(ctx, rec, n, hd.classifier, { bias: hd.classifierBias });
  n.dispose();
  return logits;
}
