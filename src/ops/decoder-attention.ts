/**
 * Causal attention of q [T, nh D] (rows at positions pos0 .. pos0+T-1) over the KV cache of one
 * layer, with grouped-query heads, an optional sliding window and score soft-capping (shaders/attn_dec_lib.wgsl). A
 * few query rows (decode) split the context into the model's cache.shared.splits pieces merged by
 * attn_combine.wgsl; a prefill has parallelism enough in its rows and runs one split, its rows
 * tiled so that each tile reads the cache once.
 */
import { ShapeError, WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { floatPrecision } from './common.ts';
import { headChunks, SPLIT_MAX_T, type KvCache } from './kv-cache.ts';

export interface DecoderAttentionOptions {
  /** Position of q's first row (the CPU's copy of what cache.pos holds for this step). */
  pos0: number;
  /** Keys a query sees, itself included (0 = all). */
  window?: number;
  /** Multiplies q.k before the softmax; default 1 / sqrt(D) (Granite's attention_multiplier replaces it). */
  scale?: number;
  /** Scores s -> softcap tanh(s / softcap) after the scale (Gemma 2's attn_logit_softcapping); 0 or absent: none. */
  softcap?: number;
}

export function decoderAttention(ctx: GpuContext, rec: Recorder, q: Tensor, cache: KvCache, layer: number, opts: DecoderAttentionOptions): Tensor {
  const { heads: nh, kvHeads: nkv, headDim: D, cap } = cache.shape;
  if (q.shape[q.shape.length - 1] !== nh * D) throw new ShapeError(`decoderAttention: q ${JSON.stringify(q.shape)} must end in ${nh} heads x ${D}`);
  const T = q.size / (nh * D);
  const kvLen = opts.pos0 + T;
  if (kvLen > cap) throw new WebqError('CONTEXT_FULL', `decoderAttention: positions up to ${kvLen} do not fit the KV cache of ${cap}`);
  const out = ctx.empty([T, nh * D], q.dtype, 'webq:attn');
  const precision = floatPrecision('decoderAttention', { q, out });
  const { GC, hchunks, QT } = headChunks(nh, nkv, D, T);
  const nsplit = T <= SPLIT_MAX_T ? cache.shared.splits : 1;
  const c = cache.layers[layer];
  const int8 = cache.shape.dtype === 'int8';
  rec.dispatch(
    { shader: int8 ? 'attn_dec_q8' : 'attn_dec', variant: { precision, ...(!int8 && { kv: cache.shared.floatType }) } },
    { q, pos: cache.pos, out, part: cache.shared.part, kf: c.k, vf: c.v, kq: c.k, vq: c.v, ks: c.ks ?? ctx.placeholder('f32'), vs: c.vs ?? ctx.placeholder('f32') },
    [nsplit, nkv * hchunks, Math.ceil(T / QT)],
    { T, nh, nkv, D, cap, GC, hchunks, QT, nsplit, window: opts.window ?? 0, scale: opts.scale ?? 1 / Math.sqrt(D), softcap: opts.softcap ?? 0 },
  );
  if (nsplit > 1) {
    rec.dispatch({ shader: 'attn_combine', variant: { precision } }, { part: cache.shared.part, out }, [nh, T], { nh, D, nsplit });
  }
  return out;
}
