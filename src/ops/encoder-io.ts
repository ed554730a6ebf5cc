/**
 * The ends of an encoder: summed input embeddings (word + position + token type) and sentence
 * pooling (mean over unmasked tokens or [CLS], optionally L2-normalized).
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { expectTensor, shapeStr, type Tensor } from '../gpu/tensor.ts';
import { floatPrecision, grid1d } from './common.ts';

/** ids, types [B*T] u32; word [V, H], pos [P >= T, H], type [TV, H] -> [B*T, H] */
export function embedSum(ctx: GpuContext, rec: Recorder, ids: Tensor, types: Tensor, tables: { word: Tensor; pos: Tensor; type: Tensor }, T: number): Tensor {
  expectTensor('embedSum', 'ids', ids, { dtype: 'u32' });
  expectTensor('embedSum', 'types', types, { dtype: 'u32' });
  const [V, H] = tables.word.shape;
  if (tables.pos.shape[0] < T) throw new ShapeError(`embedSum: ${T} positions but the position table has ${tables.pos.shape[0]}`);
  if (types.size !== ids.size || ids.size % T !== 0) throw new ShapeError(`embedSum: ids ${shapeStr(ids.shape)} and types ${shapeStr(types.shape)} must both be [B*${T}]`);
  const out = ctx.empty([ids.size, H], tables.word.dtype);
  const precision = floatPrecision('embedSum', { word: tables.word, pos: tables.pos, type: tables.type, out });
  rec.dispatch({ shader: 'embed_sum', variant: { precision }, constants: { WG: 256 } }, { ids, types, word: tables.word, pos: tables.pos, typ: tables.type, out }, grid1d(ids.size * H, 256), {
    rows: ids.size,
    T,
    H,
    vocab: V,
    typeVocab: tables.type.shape[0],
  });
  return out;
}

/** x [B*T, H], mask [B*T] u32 -> [B, H] */
export function pool(ctx: GpuContext, rec: Recorder, x: Tensor, mask: Tensor, B: number, opts: { mode: 'mean' | 'cls'; normalize: boolean }): Tensor {
  expectTensor('pool', 'mask', mask, { dtype: 'u32' });
  const H = x.shape[x.shape.length - 1];
  const T = x.size / H / B;
  if (!Number.isInteger(T) || mask.size !== B * T) throw new ShapeError(`pool: x ${shapeStr(x.shape)} and mask ${shapeStr(mask.shape)} do not make ${B} rows`);
  const out = ctx.empty([B, H], x.dtype);
  const precision = floatPrecision('pool', { x, out });
  rec.dispatch({ shader: 'pool', variant: { precision }, constants: { WG: 64, MEAN: opts.mode === 'mean', NORMALIZE: opts.normalize } }, { x, mask, out }, [B], { T, H });
  return out;
}
