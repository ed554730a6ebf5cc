/**
 * The ends of an encoder: summed input embeddings (word + position + token type) and sentence
 * pooling (mean over unmasked tokens or [CLS], optionally L2-normalized).
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { expectTensor, shapeStr, type Tensor } from '../gpu/tensor.ts';
import { floatPrecision, grid1d } from './common.ts';
import type { QWeight } from './qweight.ts';

/**
 * ids, types, positions [B*T] u32; word [V, H], pos [P, H], type [TV, H] -> [B*T, H]. The word table is
 * float (shaders/embed_sum.wgsl) or quantized (embed_sum_q.wgsl: int8/int4 rows dequantized in
 * place, row chunks and all); pos and type are float in the activation precision.
 */
export function embedSum(ctx: GpuContext, rec: Recorder, ids: Tensor, types: Tensor, positions: Tensor, tables: { word: Tensor | QWeight; pos: Tensor; type: Tensor }, T: number): Tensor {
  expectTensor('embedSum', 'ids', ids, { dtype: 'u32' });
  expectTensor('embedSum', 'types', types, { dtype: 'u32' });
  expectTensor('embedSum', 'positions', positions, { dtype: 'u32' });
  const { word, pos, type } = tables;
  const [V, H] = 'chunks' in word ? [word.N, word.K] : word.shape;
  if (positions.size !== ids.size) throw new ShapeError(`embedSum: positions ${shapeStr(positions.shape)} must match ids ${shapeStr(ids.shape)}`);
  const posRows = pos.shape[0];
  if (pos.shape[1] !== H || type.shape[1] !== H) throw new ShapeError(`embedSum: the word table has rows of ${H} but position ${shapeStr(pos.shape)} and type ${shapeStr(type.shape)}`);
  if (types.size !== ids.size || ids.size % T !== 0) throw new ShapeError(`embedSum: ids ${shapeStr(ids.shape)} and types ${shapeStr(types.shape)} must both be [B*${T}]`);
  const rows = ids.size;
  const out = ctx.empty([rows, H], pos.dtype);
  const typeVocab = type.shape[0];
  if (!('chunks' in word)) {
    const precision = floatPrecision('embedSum', { word, pos, type, out });
    rec.dispatch({ shader: 'embed_sum', variant: { precision }, constants: { WG: 256 } }, { ids, types, positions, word, pos, typ: type, out }, grid1d(rows * H, 256), { rows, T, H, typeVocab, posRows, vocab: V, vOff: 0, vTotal: V });
    return out;
  }
  const zeros = ctx.placeholder(word.precision);
  for (const c of word.chunks) {
    const precision = floatPrecision('embedSum', { scales: c.scales, pos, type, out });
    rec.dispatch(
      { shader: 'embed_sum_q', variant: { precision }, constants: { WG: 256, BITS: word.bits, SYM: word.symmetric, G: word.groupSize } },
      { ids, types, positions, w: c.values, scales: c.scales, zeros: c.zeros ?? zeros, pos, typ: type, out },
      grid1d(rows * H, 256),
      { rows, T, H, typeVocab, posRows, Kp: word.Kp, groups: word.groups, vocab: c.N, vOff: c.n0, vTotal: V },
    );
  }
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
