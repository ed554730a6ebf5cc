/** LayerNorm (gamma, beta) and RMSNorm (gamma) over the last dimension. */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { KernelKey } from '../gpu/pipelines.ts';
import { grid, type Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { floatPrecision, rowsCols, sameShape, subgroupRowsGrid } from './common.ts';

const WG = 64;

/** norm.wgsl, or on CPU-emulated adapters norm_sg.wgsl (one subgroup per row, no barriers). */
function normKernel(ctx: GpuContext, entry: 'layernorm' | 'rmsnorm', precision: 'f32' | 'f16'): KernelKey {
  return ctx.caps.kernels === 'cpu'
    ? { shader: 'norm_sg', entry, variant: { precision, subgroups: true }, constants: { SG: ctx.caps.subgroupSize } }
    : { shader: 'norm', entry, variant: { precision }, constants: { WG } };
}

/** Workgroups: one per row, or on the subgroup kernel a subgroup per row. */
function normGrid(ctx: GpuContext, rows: number): [number, number] {
  return ctx.caps.kernels === 'cpu' ? subgroupRowsGrid(ctx.caps.subgroupSize, rows) : grid(rows);
}

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
  rec.dispatch(normKernel(ctx, 'layernorm', precision), { x, gamma, beta, out: o }, normGrid(ctx, rows), { rows, cols, eps });
  return o;
}

export function rmsNorm(ctx: GpuContext, rec: Recorder, x: Tensor, gamma: Tensor, eps: number, out?: Tensor): Tensor {
  const { rows, cols } = rowsCols(x);
  checkParam('rmsNorm', 'gamma', gamma, cols);
  const o = out ?? ctx.empty(x.shape, x.dtype);
  sameShape('rmsNorm', x, o, 'x', 'out');
  const precision = floatPrecision('rmsNorm', { x, gamma, out: o });
  rec.dispatch(normKernel(ctx, 'rmsnorm', precision), { x, gamma, out: o }, normGrid(ctx, rows), { rows, cols, eps });
  return o;
}
