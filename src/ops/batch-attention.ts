/**
 * Decode attention of B sequences (the first B of the batch) in one dispatch (shaders/attn_dec_batch_lib.wgsl): q [B, nh D],
 * row b sequence b's query at its own position (kv.whole.pos[b]), over its own region of the
 * batch's cache. Splits along each sequence's context as one-sequence decode does (the model's
 * KvShared.splits), merged by attn_combine.wgsl with one row per sequence.
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { floatPrecision } from './common.ts';
import type { KvBatch } from './kv-batch.ts';
import { headChunks } from './kv-cache.ts';

export interface BatchedAttentionOptions {
  /** Keys a query sees, itself included (0 = all). */
  window?: number;
  /** Multiplies q.k before the softmax; default 1 / sqrt(D). */
  scale?: number;
  /** Scores s -> softcap tanh(s / softcap) after the scale (Gemma 2); 0 or absent: none. */
  softcap?: number;
}

export function batchedDecoderAttention(ctx: GpuContext, rec: Recorder, q: Tensor, kv: KvBatch, layer: number, opts: BatchedAttentionOptions = {}): Tensor {
  const { heads: nh, kvHeads: nkv, headDim: D, cap } = kv.shared.shape;
  const B = q.size / (nh * D);
  if (!Number.isInteger(B) || B < 1 || B > kv.size) throw new ShapeError(`batchedDecoderAttention: q ${JSON.stringify(q.shape)} must be 1 to ${kv.size} sequences x ${nh} heads x ${D}`);
  const out = ctx.empty([B, nh * D], q.dtype, 'webq:attn');
  const precision = floatPrecision('batchedDecoderAttention', { q, out });
  const { GC, hchunks } = headChunks(nh, nkv, D, 1);
  const nsplit = kv.shared.splits;
  const c = kv.whole.layers[layer];
  const int8 = kv.shared.shape.dtype === 'int8';
  rec.dispatch(
    { shader: int8 ? 'attn_dec_batch_q8' : 'attn_dec_batch', variant: { precision, ...(!int8 && { kv: kv.shared.floatType }) } },
    { q, pos: kv.whole.pos, out, part: kv.part, kf: c.k, vf: c.v, kq: c.k, vq: c.v, ks: c.ks ?? ctx.placeholder('f32'), vs: c.vs ?? ctx.placeholder('f32') },
    [nsplit, nkv * hchunks, B],
    { B, nh, nkv, D, cap, seqRows: kv.seqRows, GC, hchunks, nsplit, window: opts.window ?? 0, scale: opts.scale ?? 1 / Math.sqrt(D), softcap: opts.softcap ?? 0 },
  );
  if (nsplit > 1) rec.dispatch({ shader: 'attn_combine', variant: { precision } }, { part: kv.part, out }, [nh, B], { nh, D, nsplit });
  return out;
}
