/**
 * Verification of drafted tokens on the GPU (speculative decoding), so that only `out` (the
 * accepted count, then one token per row: 1 + rows words) need leave the GPU.
 *
 * Greedy (verifyDrafts, shaders/verify.wgsl): each row's argmax, then the accepted count.
 *
 * Sampled (verifySampledDrafts): the drafters propose one token per position deterministically, so
 * the draft distribution q is one-hot and the rejection rule (accept x with probability
 * min(1, p(x)/q(x)) = p(x); on rejection draw from normalize(max(0, p - q)), p without x) is
 * realized by drawing t ~ p at every row with the sampler's own uniform for that token (the
 * `sample_rows` entry of shaders/sample.wgsl) and accepting x exactly when t = x: that happens
 * with probability p(x), and when it does not, t is distributed as p conditioned on t != x, the
 * residual. After all drafts are accepted the last row's t is the extra token drawn from p. So the
 * kept tokens are the tokens plain sampling with the same seed draws from the same logits.
 * The CPU references are src/reference/verify.ts.
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { expectTensor, type Tensor } from '../gpu/tensor.ts';
import { samplerUniforms, validateSamplingParams, type SamplingParams } from './sample.ts';

const WG = 256;

function check(op: string, logits: Tensor, draft: Tensor, out: Tensor): [number, number] {
  expectTensor(op, 'logits', logits, { rank: 2, dtype: ['f32', 'f16'] });
  const [rows, vocab] = logits.shape;
  expectTensor(op, 'draft', draft, { dtype: 'u32' });
  expectTensor(op, 'out', out, { dtype: 'u32' });
  if (draft.size < rows - 1) throw new ShapeError(`${op}: draft must hold the ${rows - 1} drafted ids, has ${draft.size}`);
  if (out.size < rows + 1) throw new ShapeError(`${op}: out must hold ${rows + 1} words (the count, then one token per row), has ${out.size}`);
  return [rows, vocab];
}

/**
 * Records: out[1 + r] = argmax of logits row r (lowest index on ties), then out[0] = the longest n
 * with draft[i] == out[1 + i] for every i < n, n <= rows - 1. `logits` is [rows, V] f32 or f16,
 * `draft` u32 [>= rows - 1], `out` u32 [>= 1 + rows].
 */
export function verifyDrafts(ctx: GpuContext, rec: Recorder, logits: Tensor, draft: Tensor, out: Tensor): void {
  const [rows, vocab] = check('verifyDrafts', logits, draft, out);
  const variant = { precision: logits.dtype as 'f32' | 'f16' };
  const uniforms = { vocab, rows };
  rec.dispatch({ shader: 'verify', entry: 'argmax_rows', variant, constants: { WG } }, { logits, draft, out }, [rows], uniforms);
  rec.dispatch({ shader: 'verify', entry: 'accept', variant, constants: { WG } }, { logits, draft, out }, [1], uniforms);
}

/** The sampler buffers sample.wgsl binds: `step` (step[0] = the first row's token index, step[1] = the seed), and seen/mask/bias (bound, not read: no penalty, mask or bias with speculation). */
export interface VerifySamplerBuffers {
  step: Tensor;
  seen: Tensor;
  mask: Tensor;
  bias: Tensor;
}

/**
 * Records: out[1 + r] = the token sampling draws from logits row r with `params` (temperature,
 * top-k, top-p, min-p; repetition penalty 1) and the uniform of token step[0] + r, then out[0] =
 * the accepted count as in verifyDrafts. Shapes as verifyDrafts; step[0..1] written before submit.
 */
export function verifySampledDrafts(ctx: GpuContext, rec: Recorder, logits: Tensor, draft: Tensor, out: Tensor, s: VerifySamplerBuffers, params: SamplingParams): void {
  const [rows, vocab] = check('verifySampledDrafts', logits, draft, out);
  const p = validateSamplingParams(params);
  if (p.temperature === 0 || p.repetitionPenalty !== 1) throw new ShapeError(`verifySampledDrafts: needs temperature > 0 and repetitionPenalty 1, got ${p.temperature}, ${p.repetitionPenalty}`);
  const variant = { precision: logits.dtype as 'f32' | 'f16' };
  rec.dispatch(
    { shader: 'sample', entry: 'sample_rows', variant, constants: { WG } },
    { logits, seen: s.seen, step: s.step, ids: out, mask: s.mask, bias: s.bias },
    [rows],
    samplerUniforms(p, vocab, out.size),
  );
  rec.dispatch({ shader: 'verify', entry: 'accept', variant, constants: { WG } }, { logits, draft, out }, [1], { vocab, rows });
}
