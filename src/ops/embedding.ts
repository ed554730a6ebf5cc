/** Embedding gather: ids [T] (u32) from table [V, D] -> out [T, D]. */
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { expectTensor, type Tensor } from '../gpu/tensor.ts';
import { floatPrecision, grid1d } from './common.ts';

const WG = 256;

export function embedding(ctx: GpuContext, rec: Recorder, ids: Tensor, table: Tensor, out?: Tensor): Tensor {
  expectTensor('embedding', 'ids', ids, { dtype: 'u32' });
  expectTensor('embedding', 'table', table, { rank: 2 });
  const [vocab, dim] = table.shape as [number, number];
  const tokens = ids.size;
  const o = out ?? ctx.empty([...ids.shape, dim], table.dtype);
  expectTensor('embedding', 'out', o, { dtype: table.dtype });
  const precision = floatPrecision('embedding', { table, out: o });
  rec.dispatch({ shader: 'embedding', variant: { precision }, constants: { WG } }, { ids, table, out: o }, grid1d(tokens * dim, WG), { tokens, dim, vocab });
  return o;
}
