/**
 * The KV cache of B sequences decoded together (src/generate/batch.ts). Per layer one buffer holds
 * every sequence's keys (and one its values, and for int8 one each the scales), sequence b's
 * region starting at row b * seqRows:
 *
 *   k  [B * seqRows, D]  (int8: u32 [B * seqRows, D/4])   row b * seqRows + h * cap + t
 *   ks [B * seqRows]     (int8 only)
 *
 * seqRows is nkv * cap rounded up so that every region starts on a storage-binding offset
 * alignment: `seqs[b]` is then a plain one-sequence KvCache over views of its region, and a
 * prompt's prefill runs through the one-sequence path unchanged. `whole` is the batch itself: its
 * layers are the full buffers and its position buffer holds one position per sequence, read by
 * ropeKv's batched mode and batchedDecoderAttention. Everything is made once, at its full size.
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { Tensor } from '../gpu/tensor.ts';
import { KvCache, type KvLayer, type KvShared } from './kv-cache.ts';

export class KvBatch {
  readonly shared: KvShared;
  /** Sequences the batch holds. */
  readonly size: number;
  /** Cache rows per sequence region (>= nkv * cap). */
  readonly seqRows: number;
  /** The whole batch: full-size layers, pos u32 [max(4, B)] (one position per sequence). */
  readonly whole: KvCache;
  /** Sequence b as a one-sequence cache (views into `whole`'s buffers, its own position buffer). */
  readonly seqs: KvCache[];
  /** f32 [B, nh, splits, 2 + D]: split partials of batched decode attention. */
  readonly part: Tensor;
  private readonly owned: Tensor[];
  private disposed = false;

  private constructor(shared: KvShared, size: number, seqRows: number, whole: KvCache, seqs: KvCache[], part: Tensor, owned: Tensor[]) {
    this.shared = shared;
    this.size = size;
    this.seqRows = seqRows;
    this.whole = whole;
    this.seqs = seqs;
    this.part = part;
    this.owned = owned;
  }

  /** Keys and values for `size` sequences of `shared`'s model (shape and cap). */
  static create(ctx: GpuContext, shared: KvShared, size: number): KvBatch {
    if (!Number.isSafeInteger(size) || size < 1) throw new WebqError('BAD_OPTION', `the batch size must be a positive integer, got ${size}`);
    const { layers: L, heads: nh, kvHeads: nkv, headDim: D, cap, dtype } = shared.shape;
    const int8 = dtype === 'int8';
    const rowBytes = int8 ? D : D * (dtype === 'f16' ? 2 : 4);
    // Rows per region: a multiple of `unit` puts every region (and its int8 scales, 4 bytes a row) on the alignment.
    const align = ctx.caps.minStorageBufferOffsetAlignment;
    const unit = lcm(align / gcd(align, rowBytes), int8 ? align / gcd(align, 4) : 1);
    const seqRows = Math.ceil((nkv * cap) / unit) * unit;
    const bytes = size * seqRows * rowBytes;
    if (bytes > ctx.caps.maxStorageBufferBindingSize) {
      throw new WebqError('BUFFER_TOO_LARGE', `a KV cache for ${size} sequences of ${cap} positions is ${bytes} bytes per layer, more than this device binds (${ctx.caps.maxStorageBufferBindingSize}); use fewer sequences or a smaller contextLength`);
    }
    const owned: Tensor[] = [];
    const keep = (t: Tensor) => (owned.push(t), t);
    const made: KvCache[] = [];
    try {
      const full: KvLayer[] = [];
      for (let l = 0; l < L; l++) {
        const label = `kv-batch.${l}`;
        const n = size * seqRows;
        if (int8) {
          full.push({
            k: keep(ctx.upload(new Uint32Array(n * D / 4), [n, D / 4], 'u32', `${label}.k`)),
            v: keep(ctx.upload(new Uint32Array(n * D / 4), [n, D / 4], 'u32', `${label}.v`)),
            ks: keep(ctx.upload(new Float32Array(n), [n], 'f32', `${label}.ks`)),
            vs: keep(ctx.upload(new Float32Array(n), [n], 'f32', `${label}.vs`)),
          });
        } else {
          const zeros = () => (dtype === 'f16' ? new Uint16Array(n * D) : new Float32Array(n * D));
          full.push({ k: keep(ctx.upload(zeros(), [n, D], dtype, `${label}.k`)), v: keep(ctx.upload(zeros(), [n, D], dtype, `${label}.v`)), ks: null, vs: null });
        }
      }
      const whole = KvCache.over(ctx, shared, full, Math.max(4, size));
      made.push(whole);
      const seqs: KvCache[] = [];
      for (let b = 0; b < size; b++) {
        const view = (t: Tensor, shape: number[], perRow: number) => new Tensor(t.buffer, shape, t.dtype, t.offset + b * seqRows * perRow);
        const layers = full.map((f): KvLayer => ({
          k: view(f.k, [nkv, cap, int8 ? D / 4 : D], rowBytes),
          v: view(f.v, [nkv, cap, int8 ? D / 4 : D], rowBytes),
          ks: f.ks && view(f.ks, [nkv, cap], 4),
          vs: f.vs && view(f.vs, [nkv, cap], 4),
        }));
        const seq = KvCache.over(ctx, shared, layers);
        made.push(seq);
        seqs.push(seq);
      }
      const part = keep(ctx.upload(new Float32Array(size * nh * shared.splits * (2 + D)), [size, nh, shared.splits, 2 + D], 'f32', 'kv-batch.part'));
      return new KvBatch(shared, size, seqRows, whole, seqs, part, owned);
    } catch (e) {
      made.forEach((c) => c.dispose());
      owned.forEach((t) => t.dispose());
      throw e;
    }
  }

  /** Bytes of keys and values (all sequences). */
  get bytes(): number {
    return this.owned.reduce((s, t) => s + t.byteLength, 0) - this.part.byteLength;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.whole.dispose();
    this.seqs.forEach((c) => c.dispose());
    this.owned.forEach((t) => t.dispose());
  }
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}
