/** LayerNorm (gamma, beta) and RMSNorm (gamma) over the last dimension. */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { grid, type Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { floatPrecision, rowsCols, sameShape } from './common.ts';

const WG = 64;

function checkParam(op: string, name: string, t: Tensor, cols: number): void {
  if (t.size !== cols) throw new ShapeError(`${op}: ${name} must have ${cols} elements (the last dimension of x), got ${JSON.stringify(t.shape)}`);
}

export function layerNorm(ctx: GpuContext, rec: Recorder, x: Tensor, gamma: Tensor, beta: Tensor, eps: number, out?: Tensor): Tensor {
  const { rows, cols } = rowsCols(x);
  checkParam('layerNorm', 'gamma', gamma, cols);
  checkParam('layerNorm', 'beta', beta, cols);
  const o = out ?? ctx.empty(x.shape, x.dtype);
  sameShape('layerNorm', x, o, 'x', 'out');
  const precision = floatPrecision('layerNorm', { x, gamma, beta, out: o });
  rec.dispatch({ shader: 'norm', entry: 'layernorm', variant: { precision }, constants: { WG } }, { x, gamma, beta, out: o }, grid(rows), { rows, cols, eps });
  return o;
}

export function rmsNorm(ctx: GpuContext, rec: Recorder, x: Tensor, gamma: Tensor, eps: number, out?: Tensor): Tensor {
  const { rows, cols } = rowsCols(x);
  checkParam('rmsNorm', 'gamma', gamma, cols);
  const o = out ?? ctx.empty(x.shape, x.dtype);
  sameShape('rmsNorm', x, o, 'x', 'out');
  const precision = floatPrecision('rmsNorm', { x, gamma, out: o });
  rec.dispatch({ shader: 'norm', entry: 'rmsnorm', variant: { precision }, constants: { WG } }, { x, gamma, out: o }, grid(rows), { rows, cols, eps });
  return o;
}
