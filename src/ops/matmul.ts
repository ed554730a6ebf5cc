/**
 * Float matmul: C[..., M, N] = A[..., M, K] x B^T (B [..., N, K], transB, the Linear layout) or
 * A x B (B [..., K, N]), plus an optional bias [N]. Leading dimensions are a batch; a B without
 * them is shared by every batch (a weight).
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { shapeStr, type Tensor } from '../gpu/tensor.ts';
import { floatPrecision } from './common.ts';

export interface MatmulOptions {
  /** B is stored [N, K] (default true). */
  transB?: boolean;
  bias?: Tensor;
  out?: Tensor;
}

const TILE = 64;
const dummies = new WeakMap<GpuContext, Record<string, Tensor>>();

/** A placeholder for the bias binding when HAS_BIAS is false (the binding is declared either way). */
function dummy(ctx: GpuContext, dtype: 'f32' | 'f16'): Tensor {
  let d = dummies.get(ctx);
  if (!d) dummies.set(ctx, (d = {}));
  return (d[dtype] ??= dtype === 'f16' ? ctx.upload(new Uint16Array(2), [2], 'f16', 'webq:no-bias') : ctx.upload(new Float32Array(1), [1], 'f32', 'webq:no-bias'));
}

export function matmul(ctx: GpuContext, rec: Recorder, a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transB = opts.transB ?? true;
  if (a.shape.length < 2 || b.shape.length < 2) throw new ShapeError(`matmul: A ${shapeStr(a.shape)} and B ${shapeStr(b.shape)} need rank >= 2`);
  const M = a.shape[a.shape.length - 2];
  const K = a.shape[a.shape.length - 1];
  const batchShape = a.shape.slice(0, -2);
  const batch = batchShape.reduce((x, y) => x * y, 1);
  const [bK, N] = transB ? [b.shape[b.shape.length - 1], b.shape[b.shape.length - 2]] : [b.shape[b.shape.length - 2], b.shape[b.shape.length - 1]];
  if (bK !== K) throw new ShapeError(`matmul: A ${shapeStr(a.shape)} has K=${K} but B ${shapeStr(b.shape)}${transB ? ' (stored [N, K])' : ' (stored [K, N])'} has K=${bK}`);
  const bBatch = b.size / (N * K);
  if (bBatch !== 1 && bBatch !== batch) throw new ShapeError(`matmul: B ${shapeStr(b.shape)} must have no batch or the batch of A ${shapeStr(a.shape)}`);
  if (opts.bias && opts.bias.size !== N) throw new ShapeError(`matmul: bias must have N=${N} elements, got ${shapeStr(opts.bias.shape)}`);
  const out = opts.out ?? ctx.empty([...batchShape, M, N], a.dtype);
  if (out.size !== batch * M * N) throw new ShapeError(`matmul: out ${shapeStr(out.shape)} must hold ${batch}x${M}x${N} values`);
  const precision = floatPrecision('matmul', opts.bias ? { a, b, bias: opts.bias, out } : { a, b, out });
  rec.dispatch(
    { shader: 'matmul', variant: { precision }, constants: { TRANS_B: transB, HAS_BIAS: !!opts.bias } },
    { a, b, bias: opts.bias ?? dummy(ctx, precision), c: out },
    [Math.ceil(N / TILE), Math.ceil(M / TILE), batch],
    { M, N, K, strideA: M * K, strideB: bBatch === 1 ? 0 : N * K, strideC: M * N },
  );
  return out;
}
