/**
 * Embedding gather: ids [T] (u32) from a table [V, D] -> out [T, D]. The table may be one tensor
 * or row chunks (a vocabulary too big for one storage binding, e.g. 151936 x 896 in f16), the
 * same chunks a tied LM head multiplies with.
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { expectTensor, type Tensor } from '../gpu/tensor.ts';
import { floatPrecision, grid1d } from './common.ts';
import type { QWeight } from './qweight.ts';

const WG = 256;

export interface RowChunks {
  chunks: { n0: number; N: number; w: Tensor }[];
}

export function embedding(ctx: GpuContext, rec: Recorder, ids: Tensor, table: Tensor | RowChunks, out?: Tensor): Tensor {
  expectTensor('embedding', 'ids', ids, { dtype: 'u32' });
  const chunks = 'chunks' in table ? table.chunks : [{ n0: 0, N: table.shape[0], w: table }];
  if (!chunks.length) throw new ShapeError('embedding: the table has no rows');
  for (const c of chunks) expectTensor('embedding', 'table', c.w, { rank: 2 });
  const dim = chunks[0].w.shape[1];
  const vTotal = chunks.reduce((s, c) => s + c.N, 0);
  const tokens = ids.size;
  const o = out ?? ctx.empty([...ids.shape, dim], chunks[0].w.dtype);
  expectTensor('embedding', 'out', o, { dtype: chunks[0].w.dtype });
  for (const c of chunks) {
    if (c.w.shape[1] !== dim) throw new ShapeError(`embedding: table chunks disagree on the row size (${c.w.shape[1]} vs ${dim})`);
    const precision = floatPrecision('embedding', { table: c.w, out: o });
    rec.dispatch({ shader: 'embedding', variant: { precision }, constants: { WG } }, { ids, table: c.w, out: o }, grid1d(tokens * dim, WG), {
      tokens,
      dim,
      vocab: c.N,
      vOff: c.n0,
      vTotal,
    });
  }
  return o;
}

/**
 * Embedding gather from a quantized table (int8 or int4, any group size, symmetric or not), row
 * chunks and all: the tied LM head's weight read as the embedding table (shaders/embedding_q.wgsl).
 */
export function embeddingQuantized(ctx: GpuContext, rec: Recorder, ids: Tensor, table: QWeight, out?: Tensor): Tensor {
  expectTensor('embeddingQuantized', 'ids', ids, { dtype: 'u32' });
  const dim = table.K;
  const tokens = ids.size;
  const o = out ?? ctx.empty([...ids.shape, dim], table.precision);
  if (o.size !== tokens * dim) throw new ShapeError(`embeddingQuantized: out must hold ${tokens}x${dim} values`);
  const ph = ctx.placeholder(table.precision);
  for (const c of table.chunks) {
    const precision = floatPrecision('embeddingQuantized', { scales: c.scales, out: o });
    rec.dispatch(
      { shader: 'embedding_q', variant: { precision }, constants: { WG, BITS: table.bits, SYM: table.symmetric, G: table.groupSize } },
      { ids, w: c.values, scales: c.scales, zeros: c.zeros ?? ph, out: o },
      grid1d(tokens * dim, WG),
      { tokens, dim, Kp: table.Kp, groups: table.groups, vocab: c.N, vOff: c.n0, vTotal: table.N },
    );
  }
  return o;
}
