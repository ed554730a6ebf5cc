/**
 * Decoder attention inputs from a fused QKV projection (shaders/rope_kv.wgsl): RMSNorm of q and k
 * where the model has it (per head: Qwen3; over all of q and of k: OLMo 2), RoPE on q and k (all of
 * each head, its first `rotary` dimensions, or none), and k / v written into the KV cache
 * at positions pos0.. (pos0 is in cache.pos, written by the caller before submitting).
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { floatPrecision } from './common.ts';
import type { KvCache } from './kv-cache.ts';

const WG = 64;

export interface RopeKvOptions {
  /**
   * q_norm / k_norm weights with the model's RMSNorm eps: [D] each, normalizing each head (Qwen3),
   * or [nh D] and [nkv D] with `all`, normalizing all of q and all of k (OLMo 2).
   */
  qkNorm?: { q: Tensor; k: Tensor; eps: number; all?: boolean };
  /** Dimensions of each head RoPE rotates, the first ones (default D; 0: none, a NoPE layer). */
  rotary?: number;
  /** Multiplies cos and sin (longrope's attention factor); default 1. */
  ropeScale?: number;
  /** Rotate with the cache's local RoPE table (Gemma 3's sliding layers: rope_local_base_freq). */
  localRope?: boolean;
  /**
   * Batched decode (src/ops/kv-batch.ts): row t is sequence t at position cache.pos[t], its keys and
   * values at rows t * seqRows + h * cap + position of the batch's cache buffers (default 0: off).
   */
  seqRows?: number;
}

/** qkv [T, (nh + 2 nkv) D] -> q [T, nh D] (roped); K and V of layer `layer` go into the cache. */
export function ropeKv(ctx: GpuContext, rec: Recorder, qkv: Tensor, cache: KvCache, layer: number, opts: RopeKvOptions = {}): Tensor {
  const { heads: nh, kvHeads: nkv, headDim: D, cap } = cache.shape;
  const width = (nh + 2 * nkv) * D;
  if (qkv.shape[qkv.shape.length - 1] !== width) throw new ShapeError(`ropeKv: qkv ${JSON.stringify(qkv.shape)} must end in (${nh} + 2*${nkv}) * ${D} = ${width}`);
  const T = qkv.size / width;
  const rot = opts.rotary ?? D;
  if (!Number.isInteger(rot) || rot < 0 || rot > D || rot % 2 !== 0) throw new ShapeError(`ropeKv: rotary ${rot} must be an even number of dimensions up to the head's ${D}`);
  const all = opts.qkNorm?.all ?? false;
  if (opts.qkNorm && (opts.qkNorm.q.size !== (all ? nh : 1) * D || opts.qkNorm.k.size !== (all ? nkv : 1) * D)) {
    throw new ShapeError(`ropeKv: q_norm / k_norm have ${opts.qkNorm.q.size} / ${opts.qkNorm.k.size} values; expected ${all ? `${nh * D} / ${nkv * D} (all heads)` : `${D} / ${D} (one head)`}`);
  }
  const q = ctx.empty([T, nh * D], qkv.dtype, 'webq:q');
  const precision = floatPrecision('ropeKv', { qkv, q, ...(opts.qkNorm && { qnorm: opts.qkNorm.q, knorm: opts.qkNorm.k }) });
  const c = cache.layers[layer];
  const int8 = cache.shape.dtype === 'int8';
  const ph = ctx.placeholder(precision);
  rec.dispatch(
    { shader: 'rope_kv', entry: int8 ? 'int8_cache' : 'float_cache', variant: { precision, kv: cache.shared.floatType }, constants: { WG, HAS_NORM: !!opts.qkNorm, NORM_ALL: all, ...(opts.seqRows && { SEQ_ROWS: opts.seqRows }) } },
    {
      qkv,
      pos: cache.pos,
      rope: opts.localRope ? cache.shared.localRope() : cache.shared.rope,
      qnorm: opts.qkNorm?.q ?? ph,
      knorm: opts.qkNorm?.k ?? ph,
      q,
      kf: c.k,
      vf: c.v,
      kq: c.k,
      vq: c.v,
      ks: c.ks ?? ctx.placeholder('f32'),
      vs: c.vs ?? ctx.placeholder('f32'),
    },
    [nh + nkv, T],
    { T, nh, nkv, D, cap, eps: opts.qkNorm?.eps ?? 0, rot, mscale: opts.ropeScale ?? 1 },
  );
  return q;
}
