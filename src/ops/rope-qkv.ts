/**
 * RoPE for encoders, in place on the fused QKV projection (shaders/rope_qkv.wgsl): Q and K heads of
 * qkv [B*T, 3H] rotated by their token's position t (0..T-1 in every row), V untouched. The cos | sin
 * table [T, D] comes from ropeTable(), once per batch and RoPE base.
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { expectTensor, shapeStr, type Tensor } from '../gpu/tensor.ts';
import { floatPrecision, grid1d } from './common.ts';

const WG = 256;

/**
 * cos | sin rows [T, D] for positions 0..T-1 as transformers computes them in float32:
 * inv_freq[k] = 1 / base^(2k / D), angle = t * inv_freq[k] (an f32 product), cos at k, sin at D/2 + k.
 */
export function ropeTable(T: number, D: number, base: number): Float32Array {
  const f = Math.fround;
  const half = D / 2;
  const out = new Float32Array(T * D);
  for (let k = 0; k < half; k++) {
    const inv = f(1 / f(Math.pow(base, f((2 * k) / D))));
    for (let t = 0; t < T; t++) {
      const a = f(t * inv);
      out[t * D + k] = Math.cos(a);
      out[t * D + half + k] = Math.sin(a);
    }
  }
  return out;
}

/** Rotates the Q and K heads of qkv [B*T, 3H] in place; `table` is ropeTable(T, D, base) as f32 [T, D]. */
export function ropeQkv(ctx: GpuContext, rec: Recorder, qkv: Tensor, table: Tensor, dims: { seqLen: number; heads: number }): void {
  const { seqLen: T, heads } = dims;
  expectTensor('ropeQkv', 'table', table, { dtype: 'f32' });
  const H3 = qkv.shape[qkv.shape.length - 1];
  const H = H3 / 3;
  const D = H / heads;
  if (!Number.isInteger(H) || !Number.isInteger(D) || D % 2 !== 0) throw new ShapeError(`ropeQkv: qkv ${shapeStr(qkv.shape)} must be [rows, 3H] with H an even head size times ${heads} heads`);
  const rows = qkv.size / H3;
  if (rows % T !== 0) throw new ShapeError(`ropeQkv: ${rows} rows are not whole sequences of ${T}`);
  if (table.size !== T * D) throw new ShapeError(`ropeQkv: table ${shapeStr(table.shape)} must be [${T}, ${D}]`);
  const precision = floatPrecision('ropeQkv', { qkv });
  const n = rows * H;
  rec.dispatch({ shader: 'rope_qkv', variant: { precision }, constants: { WG } }, { qkv, rope: table }, grid1d(n, WG), { n, T, H, D });
}
