/**
 * Encoder self-attention over a fused QKV projection: qkv [B*T, 3H] (Q | K | V) and a padding
 * mask [B*T] (u32, 0 = pad) -> out [B*T, H], heads side by side. One fused kernel; see
 * shaders/attention.wgsl.
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { expectTensor, shapeStr, type Tensor } from '../gpu/tensor.ts';
import { floatPrecision } from './common.ts';

const WG = 64;
export const MAX_HEAD_DIM = 128;

/**
 * `dims.window` (ModernBERT's local layers): query i sees only keys j with |i - j| <= window, on
 * top of the padding mask; absent, every key (a global layer).
 * `bias` (MPNet's relative position bias): table f32 [buckets, heads] and buckets u32 [2T - 1];
 * table[buckets[j - i + T - 1], h] is added to the scaled score of query i and key j in head h.
 */
export function attention(ctx: GpuContext, rec: Recorder, qkv: Tensor, mask: Tensor, dims: { batch: number; seqLen: number; heads: number; window?: number }, out?: Tensor, bias?: { table: Tensor; buckets: Tensor }): Tensor {
  const { batch: B, seqLen: T, heads } = dims;
  expectTensor('attention', 'mask', mask, { dtype: 'u32' });
  const H3 = qkv.shape[qkv.shape.length - 1];
  if (H3 % 3 !== 0 || qkv.size !== B * T * H3) throw new ShapeError(`attention: qkv ${shapeStr(qkv.shape)} must be [${B}*${T}, 3H]`);
  const H = H3 / 3;
  if (H % heads !== 0) throw new ShapeError(`attention: hidden ${H} is not divisible by ${heads} heads`);
  const D = H / heads;
  if (D > MAX_HEAD_DIM || D % 4 !== 0) throw new ShapeError(`attention: head dim ${D} must be a multiple of 4 up to ${MAX_HEAD_DIM}`);
  const win = dims.window ?? 0xffffffff;
  if (!Number.isInteger(win) || win < 0 || win > 0xffffffff) throw new ShapeError(`attention: window ${dims.window} must be a whole number of positions`);
  if (mask.size !== B * T) throw new ShapeError(`attention: mask must have ${B}*${T} entries, got ${shapeStr(mask.shape)}`);
  if (bias) {
    expectTensor('attention', 'bias.table', bias.table, { dtype: 'f32' });
    expectTensor('attention', 'bias.buckets', bias.buckets, { dtype: 'u32' });
    if (bias.table.shape[1] !== heads || bias.buckets.size !== 2 * T - 1) {
      throw new ShapeError(`attention: bias table ${shapeStr(bias.table.shape)} must be [buckets, ${heads}] and buckets ${shapeStr(bias.buckets.shape)} [${2 * T - 1}]`);
    }
  }
  const o = out ?? ctx.empty([B * T, H], qkv.dtype);
  const precision = floatPrecision('attention', { qkv, out: o });
  // CPU-emulated adapters: keys and values pass between lanes by subgroup shuffles (attention_sg.wgsl).
  const sg = ctx.caps.kernels === 'cpu';
  const kernel = sg ? { shader: 'attention_sg', variant: { precision, subgroups: true } } : { shader: 'attention', variant: { precision } };
  // attention_sg.wgsl: two queries per lane, 2 WG per workgroup.
  const perWorkgroup = sg ? 2 * WG : WG;
  rec.dispatch({ ...kernel, constants: { WG, HD: D, HAS_BIAS: !!bias } }, { qkv, mask, out: o, relTable: bias?.table ?? ctx.placeholder('f32'), relBuckets: bias?.buckets ?? ctx.placeholder('u32') }, [Math.ceil(T / perWorkgroup), heads, B], {
    T,
    H,
    heads,
    D,
    scale: 1 / Math.sqrt(D),
    win,
  });
  return o;
}
