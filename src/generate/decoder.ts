/**
 * The generation loop on the GPU for one model and one sequence (its KV cache): prefill, then
 * decode steps that run ahead of the CPU. Each step is one command encoder: the forward for the
 * previous token (read from the sampler's `next` buffer, never from the CPU), then the sampler,
 * which writes the new id to `next` and to a ring. The CPU only writes the step's position and
 * index (queue.writeBuffer, ordered before the submit) and, every `batch` steps, copies a slice
 * of the ring into one of two mapped staging buffers. So up to two batches are in flight while the
 * CPU streams text and checks stops; whatever was sampled past a stop is discarded.
 *
 * Nothing here allocates per token: the cache, sampler buffers and staging buffers are made once,
 * the forward's temporaries come from the pool, and uniforms and bind groups are cached by content.
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { llamaForward, type LlamaGpuWeights } from '../models/llama/llama.ts';
import type { LlamaConfig } from '../models/llama/llama-config.ts';
import type { KvCache } from '../ops/kv-cache.ts';
import { LOGPROB_WORDS, sampleToken, type SampleExtras, type SamplingParams, type SamplerState } from '../ops/sample.ts';

const MAP_READ = 0x0001;
const COPY_DST = 0x0008;

export interface DecodeOptions {
  /** Most tokens to sample. */
  maxTokens: number;
  /** Token ids read back per batch (default 8): the run-ahead window is two batches. */
  batch?: number;
  /** Ids in the first read-back (default 1, the time to first token; a drafter takes all at once). */
  firstBatch?: number;
  signal?: AbortSignal;
  /** f32 [V] added to the logits every step (OpenAI's logit_bias), uploaded once. */
  bias?: Float32Array;
  /** Read back logprobs with this many top alternatives per step (0..20); see DecodedBatch.logprobs. */
  topLogprobs?: number;
}

/** Ids read back together; with topLogprobs, their log probabilities as u32 words (LOGPROB_WORDS each). */
export interface DecodedBatch extends Array<number> {
  logprobs?: Uint32Array;
  /** Ids from this index on were forced by a constraint, not drawn (and have no logprobs record). */
  forcedFrom?: number;
}

export function abortError(signal: AbortSignal): Error {
  const reason = signal.reason;
  if (reason instanceof Error) return reason;
  const e = new WebqError('ABORTED', 'generation was aborted');
  e.name = 'AbortError';
  return e;
}

export class Decoder {
  readonly ctx: GpuContext;
  readonly cfg: LlamaConfig;
  private w: LlamaGpuWeights;
  readonly cache: KvCache;
  /** @internal sampler buffers, shared with the constrained loop (constrained.ts) */
  readonly seen: Tensor;
  /** @internal */ readonly step: Tensor;
  /** @internal */ readonly next: Tensor;
  /** @internal u32 [ceil(V/32)] a constraint's bitmask */ readonly mask: Tensor;
  /** @internal f32 [V] the logit bias */ readonly bias: Tensor;
  private ring: Tensor | null = null;
  private lp: Tensor | null = null;
  private staging: GPUBuffer[] = [];
  private lpStaging: GPUBuffer[] = [];
  private batch = 0;
  private batches = 0;
  private verifyBuf: GPUBuffer | null = null;

  constructor(ctx: GpuContext, cfg: LlamaConfig, weights: LlamaGpuWeights, cache: KvCache) {
    this.ctx = ctx;
    this.cfg = cfg;
    this.w = weights;
    this.cache = cache;
    this.seen = ctx.upload(new Uint32Array(Math.ceil(cfg.vocabSize / 32)), [Math.ceil(cfg.vocabSize / 32)], 'u32', 'sampler.seen');
    this.step = ctx.upload(new Uint32Array(4), [4], 'u32', 'sampler.step');
    this.next = ctx.upload(new Uint32Array(1), [1], 'u32', 'sampler.next');
    this.mask = ctx.upload(new Uint32Array(Math.ceil(cfg.vocabSize / 32)), [Math.ceil(cfg.vocabSize / 32)], 'u32', 'sampler.mask');
    this.bias = ctx.upload(new Float32Array(cfg.vocabSize), [cfg.vocabSize], 'f32', 'sampler.bias');
  }

  /** The weights every forward runs on. */
  get weights(): LlamaGpuWeights {
    return this.w;
  }

  /**
   * Runs on `weights` from the next forward on (an update, between two calls). The cached keys and
   * values were computed by the old weights, so no prefix of them is reused.
   */
  setWeights(weights: LlamaGpuWeights): void {
    this.w = weights;
    this.cache.truncate(0);
  }

  get contextLength(): number {
    return this.cache.shape.cap;
  }

  /**
   * @internal Ring and staging buffers (ids, and logprobs records) for a read-back batch size, made
   * for the largest size asked so far (a smaller batch uses part of them: calls alternating sizes
   * would otherwise re-create them, and the sampler's bind groups with them, every call).
   */
  buffers(batch: number): { ring: Tensor; lp: Tensor; staging: GPUBuffer[]; lpStaging: GPUBuffer[] } {
    if (this.batch < batch || !this.ring || !this.lp) {
      this.ring?.dispose();
      this.lp?.dispose();
      [...this.staging, ...this.lpStaging].forEach((b) => b.destroy());
      this.ring = this.ctx.upload(new Uint32Array(2 * batch), [2 * batch], 'u32', 'sampler.ring');
      this.lp = this.ctx.upload(new Uint32Array(2 * batch * LOGPROB_WORDS), [2 * batch * LOGPROB_WORDS], 'u32', 'sampler.logprobs');
      this.staging = [0, 1].map((i) => this.ctx.dev.gpu.createBuffer({ size: 4 * batch, usage: MAP_READ | COPY_DST, label: `sampler.staging${i}` }));
      this.lpStaging = [0, 1].map((i) => this.ctx.dev.gpu.createBuffer({ size: 4 * batch * LOGPROB_WORDS, usage: MAP_READ | COPY_DST, label: `sampler.lp-staging${i}` }));
      this.batch = batch;
    }
    return { ring: this.ring, lp: this.lp, staging: this.staging, lpStaging: this.lpStaging };
  }

  /** @internal The staging buffer speculative verification reads back through (speculative.ts), made once. */
  verifyStaging(k: number): GPUBuffer {
    const size = 4 * (k + 2);
    if (!this.verifyBuf || this.verifyBuf.size < size) {
      this.verifyBuf?.destroy();
      this.verifyBuf = this.ctx.dev.gpu.createBuffer({ size: Math.max(size, 4 * 18), usage: MAP_READ | COPY_DST, label: 'spec.staging' });
    }
    return this.verifyBuf;
  }

  /** @internal The sampler's buffers with ring `ring` and logprobs ring `lp`. */
  samplerState(ring: Tensor, lp: Tensor): SamplerState {
    return { seen: this.seen, step: this.step, next: this.next, ids: ring, mask: this.mask, bias: this.bias, lp };
  }

  /** @internal Writes the seen bitset of `ids` and, when given, the logit bias (zeros otherwise are never read). */
  writeSamplerInputs(ids: readonly number[], bias?: Float32Array): void {
    const q = this.ctx.dev.gpu.queue;
    const seen = new Uint32Array(this.seen.size);
    for (const id of ids) seen[id >>> 5] |= 1 << (id & 31);
    q.writeBuffer(this.seen.buffer, this.seen.offset, seen);
    if (bias) {
      if (bias.length !== this.cfg.vocabSize) throw new WebqError('BAD_OPTION', `logit bias must have ${this.cfg.vocabSize} values (the vocabulary), got ${bias.length}`);
      q.writeBuffer(this.bias.buffer, this.bias.offset, bias as Float32Array<ArrayBuffer>);
    }
  }

  /** @internal */
  checkPrompt(prompt: readonly number[]): void {
    if (prompt.length === 0) throw new WebqError('EMPTY_PROMPT', 'the prompt has no tokens; give at least one');
    const V = this.cfg.vocabSize;
    for (let i = 0; i < prompt.length; i++) {
      const id = prompt[i];
      if (!Number.isSafeInteger(id) || id < 0 || id >= V) throw new WebqError('TOKEN_OUT_OF_RANGE', `prompt token ${i} is ${id}, outside the vocabulary of ${V}`);
    }
    if (prompt.length > this.contextLength) {
      throw new WebqError('CONTEXT_FULL', `the prompt is ${prompt.length} tokens, more than the context of ${this.contextLength}; shorten it or load the model with a larger contextLength (the CLI's --context; at most max_position_embeddings, ${this.cfg.maxPositions})`);
    }
  }

  /** Tokens of `prompt` already in the cache that can be kept (at least one must be run again). */
  cachedPrefix(prompt: readonly number[]): number {
    const ids = this.cache.ids;
    let n = 0;
    while (n < ids.length && n < prompt.length - 1 && ids[n] === prompt[n]) n++;
    return n;
  }

  /** Forgets cached tokens past the first `n`: those a caller discarded (sampled past a stop). */
  keepCached(n: number): void {
    if (n < this.cache.ids.length) this.cache.truncate(n);
  }

  /** @internal Keeps the cached common prefix of `prompt` (see cachedPrefix) and returns its length. */
  reuse(prompt: readonly number[]): number {
    const n = this.cachedPrefix(prompt);
    this.cache.truncate(n);
    return n;
  }

  /** @internal Records the forward of `ids` at positions pos0.. and returns the last position's logits [1, V]. */
  forward(rec: ReturnType<GpuContext['record']>, ids: Tensor, pos0: number): Tensor {
    this.cache.setPosition(this.ctx, pos0);
    return llamaForward(this.ctx, rec, this.w, this.cfg, this.cache, { ids, pos0, lastOnly: true });
  }

  /**
   * Logits [T, V] at every position of `prompt` under `weights` (by default the decoder's), from
   * an empty cache; the cache is left empty (an update's guard compares two versions with it).
   */
  async logitsAt(prompt: readonly number[], weights: LlamaGpuWeights = this.w): Promise<Float32Array> {
    this.checkPrompt(prompt);
    this.cache.truncate(0);
    const ids = this.ctx.write(Uint32Array.from(prompt), [prompt.length], 'u32', 'input_ids');
    try {
      const rec = this.ctx.record({ label: 'llm:logits-all' });
      this.cache.setPosition(this.ctx, 0);
      const logits = llamaForward(this.ctx, rec, weights, this.cfg, this.cache, { ids, pos0: 0, lastOnly: false });
      await rec.submit();
      const out = await this.ctx.readFloat(logits);
      logits.dispose();
      return out;
    } finally {
      ids.dispose();
    }
  }

  /**
   * Logits [n, V] at positions `from`..end of `prompt`, reusing the cached common prefix; the prompt
   * stays cached. A long text goes piece by piece (growing prompts, `from` the previous length), so
   * each call runs only the new positions and no logits buffer holds more than a piece.
   */
  async logitsFrom(prompt: readonly number[], from: number): Promise<Float32Array> {
    this.checkPrompt(prompt);
    if (!Number.isSafeInteger(from) || from < 0 || from >= prompt.length) throw new WebqError('BAD_OPTION', `logitsFrom: from must be a position of the prompt (0 to ${prompt.length - 1}), got ${from}`);
    const keep = Math.min(this.reuse(prompt), from);
    this.cache.truncate(keep);
    const ids = this.ctx.write(Uint32Array.from(prompt.slice(keep)), [prompt.length - keep], 'u32', 'input_ids');
    try {
      const rec = this.ctx.record({ label: 'llm:logits-from' });
      this.cache.setPosition(this.ctx, keep);
      const logits = llamaForward(this.ctx, rec, this.w, this.cfg, this.cache, { ids, pos0: keep, lastOnly: false });
      await rec.submit();
      const out = await this.ctx.readFloat(logits);
      logits.dispose();
      this.cache.ids.push(...prompt.slice(keep));
      return out.subarray((from - keep) * this.cfg.vocabSize);
    } catch (e) {
      this.cache.truncate(keep);
      throw e;
    } finally {
      ids.dispose();
    }
  }

  /** The last position's logits after running `prompt` (reusing the cached common prefix). */
  async logits(prompt: readonly number[]): Promise<Float32Array> {
    this.checkPrompt(prompt);
    const keep = this.reuse(prompt);
    const ids = this.ctx.write(Uint32Array.from(prompt.slice(keep)), [prompt.length - keep], 'u32', 'input_ids');
    try {
      const rec = this.ctx.record({ label: 'llm:logits' });
      const logits = this.forward(rec, ids, keep);
      await rec.submit();
      const out = await this.ctx.readFloat(logits);
      logits.dispose();
      this.cache.ids.push(...prompt.slice(keep));
      return out;
    } catch (e) {
      this.cache.truncate(keep);
      throw e;
    } finally {
      ids.dispose();
    }
  }

  /**
   * Samples up to maxTokens ids after `prompt`, yielding them in batches as they are read back.
   * Breaking out of the loop (a stop) or an abort waits for the steps in flight, then leaves the
   * cache holding exactly the tokens it has keys and values for.
   */
  async *generate(prompt: readonly number[], params: SamplingParams, opts: DecodeOptions): AsyncGenerator<DecodedBatch, void, undefined> {
    this.checkPrompt(prompt);
    const B = opts.batch ?? 8;
    if (!Number.isSafeInteger(B) || B < 1) throw new WebqError('BAD_OPTION', `batch must be a positive integer, got ${B}`);
    const F = Math.min(opts.firstBatch ?? 1, B);
    if (!Number.isSafeInteger(F) || F < 1) throw new WebqError('BAD_OPTION', `firstBatch must be a positive integer, got ${opts.firstBatch}`);
    if (!Number.isSafeInteger(opts.maxTokens) || opts.maxTokens < 1) throw new WebqError('BAD_OPTION', `maxTokens must be a positive integer, got ${opts.maxTokens}`);
    opts.signal?.throwIfAborted();
    const P = prompt.length;
    // Token k is fed back at position P + k - 1, which must stay inside the cache.
    const room = this.contextLength - P + 1;
    const total = Math.min(opts.maxTokens, room);
    // No batch reads back more than `total` ids: a huge readEvery allocates no more than that.
    const { ring, lp, staging, lpStaging } = this.buffers(Math.min(B, total));
    const extras: SampleExtras = { bias: opts.bias !== undefined, topLogprobs: opts.topLogprobs };
    const withLp = opts.topLogprobs !== undefined;
    const state = this.samplerState(ring, lp);
    const keep = this.reuse(prompt);
    const q = this.ctx.dev.gpu.queue;
    this.writeSamplerInputs(prompt, opts.bias);
    const input = this.ctx.write(Uint32Array.from(prompt.slice(keep)), [P - keep], 'u32', 'input_ids');
    const stepWords = new Uint32Array(4);
    let issued = 0; // sampling steps submitted
    const inFlight: { promise: Promise<void>; slot: number; count: number }[] = [];
    // The first read-back holds the prefill's token alone (time to first token); then `B` at a time.
    const issueBatch = () => {
      const first = issued;
      const count = Math.min(first === 0 ? F : B, total - first);
      const slot = this.batches++ % 2;
      for (let i = 0; i < count; i++) {
        const k = issued;
        const rec = this.ctx.record({ label: k === 0 ? 'llm:prefill' : 'llm:decode' });
        const logits = k === 0 ? this.forward(rec, input, keep) : this.forward(rec, this.next, P + k - 1);
        stepWords[0] = k;
        stepWords[1] = params.seed; // the sampler's seed (see writeSamplerStep)
        q.writeBuffer(this.step.buffer, 0, stepWords);
        sampleToken(this.ctx, rec, logits.view([logits.size]), state, params, extras);
        logits.dispose();
        if (i === count - 1) {
          // Ring slots first % R .. (first + count - 1) % R, in at most two pieces.
          const R = ring.size;
          const a = first % R;
          const n1 = Math.min(count, R - a);
          rec.copy(ring.buffer, a * 4, staging[slot], 0, n1 * 4);
          if (n1 < count) rec.copy(ring.buffer, 0, staging[slot], n1 * 4, (count - n1) * 4);
          if (withLp) {
            const W = LOGPROB_WORDS * 4;
            rec.copy(lp.buffer, a * W, lpStaging[slot], 0, n1 * W);
            if (n1 < count) rec.copy(lp.buffer, 0, lpStaging[slot], n1 * W, (count - n1) * W);
          }
        }
        void rec.submit();
        issued++;
      }
      const maps = [staging[slot].mapAsync(MAP_READ, 0, count * 4)];
      if (withLp) maps.push(lpStaging[slot].mapAsync(MAP_READ, 0, count * 4 * LOGPROB_WORDS));
      inFlight.push({ promise: this.ctx.dev.race(Promise.all(maps).then(() => undefined)), slot, count });
    };
    const sampled: number[] = [];
    try {
      issueBatch();
      while (inFlight.length) {
        if (issued < total && inFlight.length < 2 && !opts.signal?.aborted) issueBatch();
        const b = inFlight.shift()!;
        await b.promise;
        const ids: DecodedBatch = Array.from(new Uint32Array(staging[b.slot].getMappedRange(0, b.count * 4).slice(0)));
        staging[b.slot].unmap();
        if (withLp) {
          ids.logprobs = new Uint32Array(lpStaging[b.slot].getMappedRange(0, b.count * 4 * LOGPROB_WORDS).slice(0));
          lpStaging[b.slot].unmap();
        }
        if (opts.signal?.aborted) throw abortError(opts.signal);
        sampled.push(...ids);
        yield ids;
      }
    } finally {
      // Stopped early, aborted or failed: let the steps in flight finish before the buffers are reused.
      for (const b of inFlight) {
        await b.promise.then(() => {
          staging[b.slot].unmap();
          if (withLp) lpStaging[b.slot].unmap();
        }, () => {});
      }
      input.dispose();
      // Keys and values exist for the prompt (once the prefill ran) and for every token read back
      // and fed back in (all sampled but the last).
      this.cache.truncate(keep);
      if (issued > 0) this.cache.ids.push(...prompt.slice(keep), ...sampled.slice(0, Math.max(0, issued - 1)));
    }
  }

  dispose(): void {
    this.seen.dispose();
    this.step.dispose();
    this.next.dispose();
    this.mask.dispose();
    this.bias.dispose();
    this.ring?.dispose();
    this.lp?.dispose();
    [...this.staging, ...this.lpStaging].forEach((b) => b.destroy());
    this.verifyBuf?.destroy();
    this.cache.dispose();
  }
}
