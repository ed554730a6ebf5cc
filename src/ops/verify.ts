/**
 * Greedy verification of drafted tokens on the GPU (shaders/verify.wgsl): the argmax of every row
 * of the target's logits, then the accepted count, both written to `out` by kernels so that only
 * `out` (1 + rows words) need leave the GPU. The CPU reference is src/reference/verify.ts.
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { expectTensor, type Tensor } from '../gpu/tensor.ts';

const WG = 256;

/**
 * Records: out[1 + r] = argmax of logits row r (lowest index on ties), then out[0] = the longest n
 * with draft[i] == out[1 + i] for every i < n, n <= rows - 1. `logits` is [rows, V] f32 or f16,
 * `draft` u32 [>= rows - 1], `out` u32 [>= 1 + rows].
 */
export function verifyDrafts(ctx: GpuContext, rec: Recorder, logits: Tensor, draft: Tensor, out: Tensor): void {
  expectTensor('verifyDrafts', 'logits', logits, { rank: 2, dtype: ['f32', 'f16'] });
  const [rows, vocab] = logits.shape;
  expectTensor('verifyDrafts', 'draft', draft, { dtype: 'u32' });
  expectTensor('verifyDrafts', 'out', out, { dtype: 'u32' });
  if (draft.size < rows - 1) throw new ShapeError(`verifyDrafts: draft must hold the ${rows - 1} drafted ids, has ${draft.size}`);
  if (out.size < rows + 1) throw new ShapeError(`verifyDrafts: out must hold ${rows + 1} words (the count, then one argmax per row), has ${out.size}`);
  const variant = { precision: logits.dtype as 'f32' | 'f16' };
  const uniforms = { vocab, rows };
  rec.dispatch({ shader: 'verify', entry: 'argmax_rows', variant, constants: { WG } }, { logits, draft, out }, [rows], uniforms);
  rec.dispatch({ shader: 'verify', entry: 'accept', variant, constants: { WG } }, { logits, draft, out }, [1], uniforms);
}
