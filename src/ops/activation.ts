/** out = gelu(x) (erf form) and out = silu(x). */
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { floatPrecision, grid1d, sameShape } from './common.ts';

const WG = 256;

function unary(entry: 'gelu' | 'silu', ctx: GpuContext, rec: Recorder, x: Tensor, out?: Tensor): Tensor {
  const o = out ?? ctx.empty(x.shape, x.dtype);
  sameShape(entry, x, o, 'x', 'out');
  const precision = floatPrecision(entry, { x, out: o });
  rec.dispatch({ shader: 'activation', entry, variant: { precision }, constants: { WG } }, { x, out: o }, grid1d(x.size, WG), { n: x.size });
  return o;
}

export const gelu = (ctx: GpuContext, rec: Recorder, x: Tensor, out?: Tensor): Tensor => unary('gelu', ctx, rec, x, out);
export const silu = (ctx: GpuContext, rec: Recorder, x: Tensor, out?: Tensor): Tensor => unary('silu', ctx, rec, x, out);
