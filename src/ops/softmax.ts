/** Softmax over the last dimension. */
import type { GpuContext } from '../gpu/context.ts';
import { grid, type Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { floatPrecision, rowsCols, sameShape } from './common.ts';

const WG = 64;

export function softmax(ctx: GpuContext, rec: Recorder, x: Tensor, out?: Tensor): Tensor {
  const { rows, cols } = rowsCols(x);
  const o = out ?? ctx.empty(x.shape, x.dtype);
  sameShape('softmax', x, o, 'x', 'out');
  const precision = floatPrecision('softmax', { x, out: o });
  rec.dispatch({ shader: 'softmax', variant: { precision }, constants: { WG } }, { x, out: o }, grid(rows), { rows, cols });
  return o;
}
