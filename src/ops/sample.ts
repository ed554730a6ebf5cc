/**
 * Token sampling on the GPU for generation: logit bias and a constraint's token mask, repetition penalty, temperature (0 = argmax), top-k,
 * top-p, min-p and a seeded draw, in Hugging Face transformers' order, as one dispatch of one
 * workgroup (shaders/sample.wgsl). Only the token id crosses back: the kernel writes it to
 * `next` (the next decode step's input), to the `ids` ring and into the `seen` bitset, so a decode
 * loop never reads back per token. With logprobs, the step's log-softmax (chosen token and the top
 * alternatives) goes to the `lp` ring beside it. The CPU reference is src/reference/sample.ts.
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
  /** u32 [ceil(V/32)]: bit i set when token i is allowed (read when SampleExtras.mask). */
  mask: Tensor;
  /** f32 [V]: added to the logits (read when SampleExtras.bias). */
  bias: Tensor;
  /** u32 [R * LOGPROB_WORDS]: per step, written when SampleExtras.topLogprobs is set (see decodeLogprobs). */
  lp: Tensor;
}

/** What a step reads and writes beyond the plain sampler; all off by default. */
export interface SampleExtras {
  /** Only tokens whose bit is set in state.mask can be drawn (a constraint's bitmask). */
  mask?: boolean;
  /** state.bias is added to the logits first (OpenAI's logit_bias). */
  bias?: boolean;
  /** Write logprobs with this many top alternatives (0..TOP_LOGPROBS_MAX) to state.lp. */
  topLogprobs?: number;
}

/** Most top_logprobs per step (OpenAI's limit). */
export const TOP_LOGPROBS_MAX = 20;
/** u32 words per step in state.lp: chosen id, its logprob, then TOP_LOGPROBS_MAX (id, logprob). */
export const LOGPROB_WORDS = 2 + 2 * TOP_LOGPROBS_MAX;

export interface StepLogprobs {
  token: number;
  logprob: number;
  /** Highest first; tokens with probability 0 (masked) are left out. */
  top: { token: number; logprob: number }[];
}

/** Reads one step's record from state.lp words (`at` = slot * LOGPROB_WORDS). */
export function decodeLogprobs(words: Uint32Array, at: number, topN: number): StepLogprobs {
  const f = new Float32Array(words.buffer, words.byteOffset, words.length);
  const top: { token: number; logprob: number }[] = [];
  for (let n = 0; n < topN; n++) {
    const token = words[at + 2 + 2 * n], logprob = f[at + 3 + 2 * n];
    if (token !== 0xffffffff && Number.isFinite(logprob)) top.push({ token, logprob });
  }
  return { token: words[at], logprob: f[at + 1], top };
}

/** Everything off: greedy decoding. */
const DEFAULTS: SamplingParams = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0 };

const WG = 256;
const MASK = 1, BIAS = 2, LOGPROBS = 4; // Params.flags in sample.wgsl
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

function checkState(vocab: number, s: SamplerState, x: SampleExtras): void {
  const words = Math.ceil(vocab / 32);
  expectTensor('sampleToken', 'seen', s.seen, { dtype: 'u32' });
  if (s.seen.size !== words) throw new ShapeError(`sampleToken: seen must have ceil(${vocab} / 32) = ${words} elements (one bit per token), got ${s.seen.size}`);
  for (const [name, t, n] of [['step', s.step, 4], ['next', s.next, 1]] as const) {
    expectTensor('sampleToken', name, t, { dtype: 'u32' });
    if (t.size !== n) throw new ShapeError(`sampleToken: ${name} must have ${n} element${n > 1 ? 's' : ''}, got ${t.size}`);
  }
  expectTensor('sampleToken', 'ids', s.ids, { dtype: 'u32' });
  if (s.ids.size < 1) throw new ShapeError('sampleToken: ids (the ring of sampled ids) must have at least 1 element');
  expectTensor('sampleToken', 'mask', s.mask, { dtype: 'u32' });
  expectTensor('sampleToken', 'bias', s.bias, { dtype: 'f32' });
  expectTensor('sampleToken', 'lp', s.lp, { dtype: 'u32' });
  if (x.mask && s.mask.size !== words) throw new ShapeError(`sampleToken: mask must have ceil(${vocab} / 32) = ${words} elements, got ${s.mask.size}`);
  if (x.bias && s.bias.size !== vocab) throw new ShapeError(`sampleToken: bias must have ${vocab} elements, got ${s.bias.size}`);
  if (x.topLogprobs !== undefined) {
    if (!Number.isInteger(x.topLogprobs) || x.topLogprobs < 0 || x.topLogprobs > TOP_LOGPROBS_MAX) throw new WebqError('BAD_OPTION', `sampling: topLogprobs must be an integer from 0 to ${TOP_LOGPROBS_MAX}, got ${x.topLogprobs}`);
    if (s.lp.size < s.ids.size * LOGPROB_WORDS) throw new ShapeError(`sampleToken: lp must have ${s.ids.size} * ${LOGPROB_WORDS} elements (one record per ring slot), got ${s.lp.size}`);
  }
}

/** sample.wgsl's uniforms for validated params over a vocabulary of `vocab` (flags: MASK | BIAS | LOGPROBS). */
export function samplerUniforms(p: SamplingParams, vocab: number, ring: number, flags = 0, topN = 0): Record<string, number> {
  const greedy = p.temperature === 0;
  return {
    vocab,
    ring,
    top_k: p.topK < vocab ? p.topK : 0, // k >= V keeps everything
    inv_temp: greedy ? 0 : 1 / p.temperature,
    top_p: p.topP,
    min_p: p.minP,
    penalty: p.repetitionPenalty,
    inv_penalty: 1 / p.repetitionPenalty,
    flags,
    top_n: topN,
    lp_inv_temp: greedy ? 1 : 1 / p.temperature,
    neg_inf: -Infinity,
  };
}

/**
 * Samples the next token from `logits` ([V] f32 or f16, the last position; finite or -inf, at least
 * one finite) into `state`: next[0], ids[step[0] % R] and the seen bit. Records one dispatch of one
 * workgroup; nothing is read back. `params.seed` is the one written to step[1] (writeSamplerStep).
 */
export function sampleToken(ctx: GpuContext, rec: Recorder, logits: Tensor, state: SamplerState, params: SamplingParams, extras: SampleExtras = {}): void {
  const p = validateSamplingParams(params);
  expectTensor('sampleToken', 'logits', logits, { rank: 1, dtype: ['f32', 'f16'] });
  const vocab = logits.size;
  if (vocab < 1) throw new ShapeError('sampleToken: logits is empty');
  checkState(vocab, state, extras);
  const greedy = p.temperature === 0;
  const logprobs = extras.topLogprobs !== undefined;
  rec.dispatch(
    { shader: 'sample', entry: greedy ? 'argmax' : 'sample', variant: { precision: logits.dtype as 'f32' | 'f16' }, constants: { WG } },
    { logits, seen: state.seen, step: state.step, next: state.next, ids: state.ids, mask: state.mask, bias: state.bias, lp: state.lp },
    [1],
    samplerUniforms(p, vocab, state.ids.size, (extras.mask ? MASK : 0) | (extras.bias ? BIAS : 0) | (logprobs ? LOGPROBS : 0), extras.topLogprobs ?? 0),
  );
}
