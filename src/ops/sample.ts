/**
 * Token sampling on the GPU for generation: repetition penalty, temperature (0 = argmax), top-k,
 * top-p, min-p and a seeded draw, in Hugging Face transformers' order, as one dispatch of one
 * workgroup (shaders/sample.wgsl). Only the token id crosses back: the kernel writes it to
 * `next` (the next decode step's input), to the `ids` ring and into the `seen` bitset, so a decode
 * loop never reads back per token. The CPU reference is src/reference/sample.ts.
 */
import { ShapeError, WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import { expectTensor, type Tensor } from '../gpu/tensor.ts';

export interface SamplingParams {
  temperature: number; // 0 = greedy (argmax, lowest index on ties)
  topK: number; // 0 = off
  topP: number; // 1 = off
  minP: number; // 0 = off
  repetitionPenalty: number; // 1 = off
  seed: number; // u32
}

export interface SamplerState {
  /** u32 [ceil(V/32)]: bit i set when token i is in the sequence (prompt bits from the CPU, see seenBitset). */
  seen: Tensor;
  /** u32 [4]: step[0] is this sampling step's index, step[1] the seed, written before each submit (writeSamplerStep). */
  step: Tensor;
  /** u32 [1]: the sampled id, the next decode step's input. */
  next: Tensor;
  /** u32 [R]: the sampled id also lands at ids[step[0] % R]. */
  ids: Tensor;
}

/** Everything off: greedy decoding. */
const DEFAULTS: SamplingParams = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0 };

const WG = 256;
const TINY = 1e-30;

/** Fills in defaults and rejects values the sampler cannot use, naming the field and the value. */
export function validateSamplingParams(p: Partial<SamplingParams>): SamplingParams {
  const out = { ...DEFAULTS };
  for (const k of Object.keys(DEFAULTS) as (keyof SamplingParams)[]) if (p[k] !== undefined) out[k] = p[k];
  const bad = (field: string, want: string, v: unknown) => {
    throw new WebqError('BAD_OPTION', `sampling: ${field} must be ${want}, got ${typeof v === 'number' ? String(v) : JSON.stringify(v)}`);
  };
  const num = (v: unknown): v is number => typeof v === 'number' && !Number.isNaN(v);
  const { temperature: t, topK, topP, minP, repetitionPenalty: rp, seed } = out;
  // The kernel multiplies by 1 / temperature and 1 / penalty in f32: below TINY those overflow.
  if (!num(t) || !Number.isFinite(t) || t < 0 || (t > 0 && t < TINY)) bad('temperature', `0 (greedy) or a finite number >= ${TINY}`, t);
  if (!num(topK) || !Number.isSafeInteger(topK) || topK < 0) bad('topK', 'a non-negative integer (0 = off)', topK);
  if (!num(topP) || !(topP > 0 && topP <= 1)) bad('topP', 'in (0, 1] (1 = off)', topP);
  if (!num(minP) || !(minP >= 0 && minP < 1)) bad('minP', 'in [0, 1) (0 = off)', minP);
  if (!num(rp) || !Number.isFinite(rp) || rp < TINY) bad('repetitionPenalty', `a finite number >= ${TINY} (1 = off)`, rp);
  if (!num(seed) || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) bad('seed', 'an integer in [0, 2^32)', seed);
  return out;
}

/** lowbias32 (Chris Wellons): a bijective 32-bit mix; the same integer ops as mix32 in sample.wgsl. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** The uniform in [0, 1) the kernel draws for (seed, step): a counter-based hash, exact in TS and WGSL (u32 integer ops only), so tests and every runtime agree. */
export function samplerUniform(seed: number, step: number): number {
  const h = mix32((mix32((seed ^ 0x9e3779b9) >>> 0) + step) >>> 0);
  return (h >>> 8) / 16777216; // 24 bits: exact in f32
}

/** The seen bitset for a vocabulary of `vocab` with `ids` set (the prompt's tokens). */
export function seenBitset(vocab: number, ids: Iterable<number>): Uint32Array {
  const bits = new Uint32Array(Math.ceil(vocab / 32));
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new WebqError('BAD_OPTION', `seenBitset: token id ${id} is outside the vocabulary [0, ${vocab})`);
    bits[id >>> 5] |= 1 << (id & 31);
  }
  return bits;
}

// writeBuffer copies at once, so one scratch serves every call.
const stepScratch = new Uint32Array(2);

/**
 * Writes step[0] (the RNG counter and the ring slot) and step[1] (SamplingParams.seed) before a
 * submit. The seed travels here rather than in the kernel's uniform, so calls with their own seeds
 * share one uniform buffer and one bind group.
 */
export function writeSamplerStep(ctx: GpuContext, state: SamplerState, step: number, seed: number): void {
  stepScratch[0] = step >>> 0;
  stepScratch[1] = seed >>> 0;
  ctx.dev.gpu.queue.writeBuffer(state.step.buffer, state.step.offset, stepScratch);
}

function checkState(vocab: number, s: SamplerState): void {
  const words = Math.ceil(vocab / 32);
  expectTensor('sampleToken', 'seen', s.seen, { dtype: 'u32' });
  if (s.seen.size !== words) throw new ShapeError(`sampleToken: seen must have ceil(${vocab} / 32) = ${words} elements (one bit per token), got ${s.seen.size}`);
  for (const [name, t, n] of [['step', s.step, 4], ['next', s.next, 1]] as const) {
    expectTensor('sampleToken', name, t, { dtype: 'u32' });
    if (t.size !== n) throw new ShapeError(`sampleToken: ${name} must have ${n} element${n > 1 ? 's' : ''}, got ${t.size}`);
  }
  expectTensor('sampleToken', 'ids', s.ids, { dtype: 'u32' });
  if (s.ids.size < 1) throw new ShapeError('sampleToken: ids (the ring of sampled ids) must have at least 1 element');
}

/**
 * Samples the next token from `logits` ([V] f32 or f16, the last position; finite or -inf, at least
 * one finite) into `state`: next[0], ids[step[0] % R] and the seen bit. Records one dispatch of one
 * workgroup; nothing is read back. `params.seed` is the one written to step[1] (writeSamplerStep).
 */
export function sampleToken(ctx: GpuContext, rec: Recorder, logits: Tensor, state: SamplerState, params: SamplingParams): void {
  const p = validateSamplingParams(params);
  expectTensor('sampleToken', 'logits', logits, { rank: 1, dtype: ['f32', 'f16'] });
  const vocab = logits.size;
  if (vocab < 1) throw new ShapeError('sampleToken: logits is empty');
  checkState(vocab, state);
  const greedy = p.temperature === 0;
  rec.dispatch(
    { shader: 'sample', entry: greedy ? 'argmax' : 'sample', variant: { precision: logits.dtype as 'f32' | 'f16' }, constants: { WG } },
    { logits, seen: state.seen, step: state.step, next: state.next, ids: state.ids },
    [1],
    {
      vocab,
      ring: state.ids.size,
      top_k: p.topK < vocab ? p.topK : 0, // k >= V keeps everything
      inv_temp: greedy ? 0 : 1 / p.temperature,
      top_p: p.topP,
      min_p: p.minP,
      penalty: p.repetitionPenalty,
      inv_penalty: 1 / p.repetitionPenalty,
    },
  );
}
