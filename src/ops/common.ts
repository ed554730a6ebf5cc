/** Shared guards for ops: one float precision per call, and 1-D launch grids. */
import { ShapeError } from '../errors.ts';
import { grid } from '../gpu/recorder.ts';
import type { Precision } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';

/** All float operands of an op share one precision, which picks the shader variant. */
export function floatPrecision(op: string, tensors: Record<string, Tensor>): Precision {
  let p: Precision | null = null;
  for (const [name, t] of Object.entries(tensors)) {
    if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new ShapeError(`${op}: ${name} must be f32 or f16, got ${t.dtype}`);
    if (p && t.dtype !== p) throw new ShapeError(`${op}: ${name} is ${t.dtype} but other operands are ${p}; convert first`);
    p = t.dtype;
  }
  if (!p) throw new ShapeError(`${op}: no float operand`);
  return p;
}

export function sameShape(op: string, a: Tensor, b: Tensor, an: string, bn: string): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(`${op}: ${an} ${JSON.stringify(a.shape)} and ${bn} ${JSON.stringify(b.shape)} must have the same shape`);
  }
}

/** Workgroups for `n` threads at `wg` per workgroup, folded into 2-D past 65535. */
export function grid1d(n: number, wg: number): [number, number] {
  return grid(Math.ceil(n / wg));
}

/** The last dimension and the product of the others. */
export function rowsCols(t: Tensor): { rows: number; cols: number } {
  const cols = t.shape[t.shape.length - 1] ?? 1;
  return { rows: cols === 0 ? 0 : t.size / cols, cols };
}

/** Workgroups of 64 that give each row its own subgroup (the *_sg row kernels: norm, activation quantization). */
export function subgroupRowsGrid(subgroupSize: number, rows: number): [number, number] {
  return grid(Math.ceil(rows / (64 / subgroupSize)));
}
