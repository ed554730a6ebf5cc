/**
 * The KV cache, in two parts:
 *
 *   KvShared (one per model): the cache's shape, the RoPE cos|sin table [cap, D], the split count
 *     of decode attention and its scratch for the split (flash-decoding) partial results. Made once
 *     and read by every sequence's forward (forwards run one after another on the queue).
 *   KvCache (one per sequence): keys and values per layer, allocated once up to the context cap
 *     and reused by every prefill and decode step, and the position buffer the CPU writes before
 *     each submit (so decode steps share uniforms and bind groups), with the token ids it holds.
 *
 * Per layer, keys and values are [nkv, cap, D] (a head's positions contiguous), in f16, f32 or
 * int8. int8 keeps codes packed four to a u32 and one f32 scale per (token, KV head):
 *
 *   k  u32 [nkv, cap, D/4]   byte b of word w = code of dimension 4w + b (two's complement)
 *   ks f32 [nkv, cap]        K[h, t, d] = code * ks[h, t]       (the same for v / vs)
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Precision } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';

export type KvDType = 'f16' | 'f32' | 'int8';
export const KV_DTYPES: readonly KvDType[] = ['f16', 'f32', 'int8'];

/**
 * Workgroups a decode step's attention aims for (splits x KV heads x head chunks): enough to
 * spread a long context over a GPU's compute units, few enough that the combine stays trivial.
 */
export const DECODE_WORKGROUPS = 64;
/** Query rows up to which attention splits along the context (decode and tiny prefills). */
export const SPLIT_MAX_T = 4;
/** attn_dec_lib.wgsl: keys per block, query heads x head dim per workgroup, heads per workgroup. */
const BK = 64;
const MAX_GD = 1024;
const MAX_GC = 16;

/**
 * How attention groups rows into workgroups: GC of a KV head's query heads (hchunks groups of them)
 * times QT consecutive query rows, within the kernel's MAX_GC rows and MAX_GD row values.
 */
export function headChunks(heads: number, kvHeads: number, headDim: number, T = 1): { GC: number; hchunks: number; QT: number } {
  const G = heads / kvHeads;
  const rows = Math.min(Math.floor(MAX_GD / headDim), MAX_GC);
  const GC = Math.min(G, rows);
  const QT = Math.max(1, Math.min(T, Math.floor(rows / GC)));
  return { GC, hchunks: Math.ceil(G / GC), QT };
}

export interface KvLayer {
  k: Tensor;
  v: Tensor;
  /** int8 only: scales [nkv, cap]. */
  ks: Tensor | null;
  vs: Tensor | null;
}

export interface KvCacheShape {
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  cap: number;
  dtype: KvDType;
}

/** What every sequence of one model shares: the shape, the RoPE table and decode attention's scratch. */
export class KvShared {
  readonly shape: KvCacheShape;
  /** f32 [cap, D]: cos(p * f_i) | sin(p * f_i) for i < D/2. */
  readonly rope: Tensor;
  /** f32 [cap, D]: the same for the local layers' frequencies (Gemma 3's sliding layers), or null. */
  readonly ropeLocal: Tensor | null;
  /** f32 [SPLIT_MAX_T, heads, splits, 2 + D]: the split partials of decode attention. */
  readonly part: Tensor;
  /** Splits along the context for decode steps (fixed per model, see attn_dec_lib.wgsl). */
  readonly splits: number;
  private disposed = false;

  private constructor(shape: KvCacheShape, rope: Tensor, ropeLocal: Tensor | null, part: Tensor, splits: number) {
    this.shape = shape;
    this.rope = rope;
    this.ropeLocal = ropeLocal;
    this.part = part;
    this.splits = splits;
  }

  /** Element type of a float cache in the shaders' KV alias. */
  get floatType(): Precision {
    return this.shape.dtype === 'f16' ? 'f16' : 'f32';
  }

  /** The local RoPE table; a model without one asks for it by mistake. */
  localRope(): Tensor {
    if (!this.ropeLocal) throw new WebqError('SHAPE', 'KvCache: a layer asks for local RoPE, but the cache was made without local frequencies');
    return this.ropeLocal;
  }

  /** `localInvFreq`: a second RoPE table for layers that rotate with other frequencies (Gemma 3). */
  static create(ctx: GpuContext, shape: KvCacheShape, invFreq: Float32Array, localInvFreq: Float32Array | null = null): KvShared {
    const { kvHeads, headDim: D, cap, dtype } = shape;
    if (!KV_DTYPES.includes(dtype)) throw new WebqError('BAD_OPTION', `kv must be one of ${KV_DTYPES.join(', ')}, got ${JSON.stringify(dtype)}`);
    if (dtype === 'f16' && !ctx.caps.f16) throw new WebqError('NO_F16', `kv 'f16' needs shader-f16, which this device (${ctx.caps.adapter}) lacks; use kv 'f32' or 'int8'`);
    if (!Number.isSafeInteger(cap) || cap < 1) throw new WebqError('BAD_OPTION', `contextLength must be a positive integer, got ${cap}`);
    for (const f of [invFreq, localInvFreq]) if (f && f.length !== D / 2) throw new WebqError('SHAPE', `KvCache: ${f.length} RoPE frequencies for head dim ${D}; expected ${D / 2}`);
    const rope = ctx.upload(ropeTable(invFreq, cap), [cap, D], 'f32', 'kv.rope');
    let ropeLocal: Tensor | null = null;
    try {
      ropeLocal = localInvFreq ? ctx.upload(ropeTable(localInvFreq, cap), [cap, D], 'f32', 'kv.rope.local') : null;
      const { hchunks } = headChunks(shape.heads, kvHeads, D);
      const splits = Math.max(1, Math.min(Math.ceil(cap / BK), Math.ceil(DECODE_WORKGROUPS / (kvHeads * hchunks))));
      const part = ctx.upload(new Float32Array(SPLIT_MAX_T * shape.heads * splits * (2 + D)), [SPLIT_MAX_T, shape.heads, splits, 2 + D], 'f32', 'kv.part');
      return new KvShared({ ...shape }, rope, ropeLocal, part, splits);
    } catch (e) {
      rope.dispose();
      ropeLocal?.dispose();
      throw e;
    }
  }

  /** Frees the tables (the caller first disposes the sequences made from them). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.rope.dispose();
    this.ropeLocal?.dispose();
    this.part.dispose();
  }
}

/** The cache of one sequence: keys, values and position, read with its model's KvShared. */
export class KvCache {
  readonly shared: KvShared;
  readonly layers: KvLayer[];
  /** u32 [4]: [position of the first row of the current step, 0, 0, 0]. */
  readonly pos: Tensor;
  /** Token ids whose keys and values the cache holds, in order (for reusing a common prefix). */
  readonly ids: number[] = [];
  /** Bytes of keys and values (the shared tables not included). */
  readonly bytes: number;
  /** setPosition's words, reused (queue.writeBuffer copies them at the call). */
  private readonly posWords = new Uint32Array(4);
  /** Whether dispose() frees `shared` too (a cache made by create() alone). */
  private readonly ownsShared: boolean;
  private disposed = false;

  private constructor(shared: KvShared, layers: KvLayer[], pos: Tensor, ownsShared: boolean) {
    this.shared = shared;
    this.layers = layers;
    this.pos = pos;
    this.ownsShared = ownsShared;
    this.bytes = layers.reduce((s, l) => s + l.k.byteLength + l.v.byteLength + (l.ks?.byteLength ?? 0) + (l.vs?.byteLength ?? 0), 0);
  }

  get shape(): KvCacheShape {
    return this.shared.shape;
  }

  get length(): number {
    return this.ids.length;
  }

  /** A sequence with its own KvShared, freed with it (one model, one sequence). */
  static create(ctx: GpuContext, shape: KvCacheShape, invFreq: Float32Array, localInvFreq: Float32Array | null = null): KvCache {
    const shared = KvShared.create(ctx, shape, invFreq, localInvFreq);
    try {
      return KvCache.allocate(ctx, shared, true);
    } catch (e) {
      shared.dispose();
      throw e;
    }
  }

  /** One more sequence of the model `shared` belongs to; disposing it leaves `shared` alone. */
  static forShared(ctx: GpuContext, shared: KvShared): KvCache {
    return KvCache.allocate(ctx, shared, false);
  }

  /**
   * @internal A sequence over layers made elsewhere (views into a batch's buffers, src/ops/kv-batch.ts):
   * dispose() frees its position buffer alone.
   */
  static over(ctx: GpuContext, shared: KvShared, layers: KvLayer[], posWords = 4): KvCache {
    return new KvCache(shared, layers, ctx.upload(new Uint32Array(posWords), [posWords], 'u32', 'kv.pos'), false);
  }

  private static allocate(ctx: GpuContext, shared: KvShared, owns: boolean): KvCache {
    const { layers: L, kvHeads, headDim: D, cap, dtype } = shared.shape;
    const made: Tensor[] = [];
    const keep = (t: Tensor) => (made.push(t), t);
    try {
      const n = kvHeads * cap * D;
      const layers: KvLayer[] = [];
      for (let l = 0; l < L; l++) {
        const label = `kv.${l}`;
        if (dtype === 'int8') {
          layers.push({
            k: keep(ctx.upload(new Uint32Array(n / 4), [kvHeads, cap, D / 4], 'u32', `${label}.k`)),
            v: keep(ctx.upload(new Uint32Array(n / 4), [kvHeads, cap, D / 4], 'u32', `${label}.v`)),
            ks: keep(ctx.upload(new Float32Array(kvHeads * cap), [kvHeads, cap], 'f32', `${label}.ks`)),
            vs: keep(ctx.upload(new Float32Array(kvHeads * cap), [kvHeads, cap], 'f32', `${label}.vs`)),
          });
        } else {
          const zeros = () => (dtype === 'f16' ? new Uint16Array(n) : new Float32Array(n));
          layers.push({
            k: keep(ctx.upload(zeros(), [kvHeads, cap, D], dtype, `${label}.k`)),
            v: keep(ctx.upload(zeros(), [kvHeads, cap, D], dtype, `${label}.v`)),
            ks: null,
            vs: null,
          });
        }
      }
      const pos = keep(ctx.upload(new Uint32Array(4), [4], 'u32', 'kv.pos'));
      return new KvCache(shared, layers, pos, owns);
    } catch (e) {
      made.forEach((t) => t.dispose());
      throw e;
    }
  }

  /** Sets the position of the next step's first row (queue.writeBuffer: ordered before the next submit). */
  setPosition(ctx: GpuContext, position: number): void {
    this.posWords[0] = position;
    ctx.dev.gpu.queue.writeBuffer(this.pos.buffer, this.pos.offset, this.posWords);
  }

  /** Forgets everything from position `n` on (the next write starts there). */
  truncate(n: number): void {
    if (n < 0 || n > this.ids.length) throw new WebqError('BAD_OPTION', `KvCache.truncate(${n}): the cache holds ${this.ids.length} tokens`);
    this.ids.length = n;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const l of this.layers) [l.k, l.v, l.ks, l.vs].forEach((t) => t?.dispose());
    this.pos.dispose();
    if (this.ownsShared) this.shared.dispose();
  }
}

/** cos | sin of position x frequency, in f64 then rounded, for positions 0..cap-1. */
export function ropeTable(invFreq: Float32Array, cap: number): Float32Array {
  const half = invFreq.length;
  const D = 2 * half;
  const out = new Float32Array(cap * D);
  for (let p = 0; p < cap; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * invFreq[i];
      out[p * D + i] = Math.cos(a);
      out[p * D + half + i] = Math.sin(a);
    }
  }
  return out;
}
