/** out = a + b and out = a * b, with b the same shape as a or repeated along a (bias rows). */
import { ShapeError } from '../errors.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { GpuContext } from '../gpu/context.ts';
import { floatPrecision, grid1d, sameShape } from './common.ts';

const WG = 256;

function binary(entry: 'add' | 'mul', ctx: GpuContext, rec: Recorder, a: Tensor, b: Tensor, out?: Tensor): Tensor {
  const precision = floatPrecision(entry, { a, b });
  if (b.size === 0 || a.size % b.size !== 0) {
    throw new ShapeError(`${entry}: b ${JSON.stringify(b.shape)} must match a ${JSON.stringify(a.shape)} or repeat along it (its size must divide ${a.size})`);
  }
  const o = out ?? ctx.empty(a.shape, a.dtype);
  sameShape(entry, a, o, 'a', 'out');
  floatPrecision(entry, { a, out: o });
  rec.dispatch({ shader: 'elementwise', entry, variant: { precision }, constants: { WG } }, { a, b, out: o }, grid1d(a.size, WG), { n: a.size, nb: b.size });
  return o;
}

export const add = (ctx: GpuContext, rec: Recorder, a: Tensor, b: Tensor, out?: Tensor): Tensor => binary('add', ctx, rec, a, b, out);
export const mul = (ctx: GpuContext, rec: Recorder, a: Tensor, b: Tensor, out?: Tensor): Tensor => binary('mul', ctx, rec, a, b, out);
