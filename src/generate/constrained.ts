/**
 * The decode loop under a constraint. The mask for step t+1 depends on the token drawn at step t,
 * so each token is read back before the next draw. What keeps the GPU busy meanwhile:
 *
 *   - overlap: the forward of step t+1 reads token t from the sampler's `next` buffer on the GPU,
 *     so it is submitted right after step t's draw, before token t reaches the CPU. The CPU then
 *     advances the matcher and computes mask t+1 while that forward runs; only the draw waits.
 *   - jump-forward: where the constraint forces text (a key, a closing brace), its tokens are
 *     appended without drawing and run through one forward together, as a prefill does.
 *   - the end: once only end-of-sequence is allowed the generation ends without another forward.
 *
 * Nothing is allocated per token on the GPU: the mask, step and staging buffers are the decoder's.
 */
import { WebqError } from '../errors.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { decodeLogprobs, LOGPROB_WORDS, sampleToken, type SampleExtras, type SamplingParams } from '../ops/sample.ts';
import type { ForcedTokenizer } from '../structured/forced-tokens.ts';
import type { TokenMatcher } from '../structured/engine.ts';
import { abortError, type DecodedBatch, type DecodeOptions, type Decoder } from './decoder.ts';

const MAP_READ = 0x0001;

/** Measurements of one constrained generation (for the bench and usage). */
export interface ConstrainedStats {
  /** Tokens drawn by the sampler. */
  sampled: number;
  /** Tokens appended because the constraint forced them (no draw, no forward of their own). */
  forced: number;
  /** Forward passes submitted (the prefill included). */
  forwards: number;
  /** CPU time in the matcher (accept, mask, forced text), ms. */
  maskMs: number;
}

export interface Guide {
  matcher: TokenMatcher;
  forced: ForcedTokenizer;
  /** Yielded to end the generation when the constraint is complete (the model's end-of-sequence id). */
  eosId: number;
  stats?: ConstrainedStats;
}

const now = () => (globalThis.performance ?? Date).now();

/**
 * Like Decoder.generate, under `guide`'s constraint: yields ids (one draw, or a draw followed by
 * forced tokens) as they are known, ending with guide.eosId when the constraint is complete.
 */
export async function* generateConstrained(d: Decoder, prompt: readonly number[], params: SamplingParams, opts: DecodeOptions, guide: Guide): AsyncGenerator<DecodedBatch, void, undefined> {
  d.checkPrompt(prompt);
  if (!Number.isSafeInteger(opts.maxTokens) || opts.maxTokens < 1) throw new WebqError('BAD_OPTION', `maxTokens must be a positive integer, got ${opts.maxTokens}`);
  opts.signal?.throwIfAborted();
  const { ctx, cache } = d;
  const q = ctx.dev.gpu.queue;
  const stats = guide.stats ?? { sampled: 0, forced: 0, forwards: 0, maskMs: 0 };
  const { ring, lp, staging, lpStaging } = d.buffers(opts.batch ?? 8);
  const state = d.samplerState(ring, lp);
  const withLp = opts.topLogprobs !== undefined;
  const extras: SampleExtras = { mask: true, bias: opts.bias !== undefined, topLogprobs: opts.topLogprobs };
  const P = prompt.length;
  const total = Math.min(opts.maxTokens, d.contextLength - P + 1);
  const keep = d.reuse(prompt);
  d.writeSamplerInputs(prompt, opts.bias);
  // The CPU's copy of the seen bitset: forced tokens are set from here, drawn ones by the sampler.
  const seen = new Uint32Array(d.seen.size);
  for (const id of prompt) seen[id >>> 5] |= 1 << (id & 31);
  const maskHost = new Uint32Array(d.mask.size);
  const stepWords = new Uint32Array(4);
  const out: number[] = []; // generated ids, drawn and forced
  let fed = 0; // generated ids whose forward was submitted (their keys and values are cached)
  let drawn = 0; // sampler steps (ring slots)
  let pending: Tensor | null = null; // logits of the last forward, not yet drawn from
  let inputs: Tensor | null = null;

  const timed = <T>(f: () => T): T => {
    const t0 = now();
    try {
      return f();
    } finally {
      stats.maskMs += now() - t0;
    }
  };
  const markSeen = (ids: readonly number[]) => {
    for (const id of ids) {
      const w = id >>> 5;
      seen[w] |= 1 << (id & 31);
      q.writeBuffer(d.seen.buffer, d.seen.offset + w * 4, seen, w, 1);
    }
  };
  /** Forced text from the matcher's state, as accepted token ids (at most `room`). */
  const forcedIds = (room: number) =>
    timed(() => {
      const text = room > 0 ? guide.matcher.forcedText() : '';
      if (!text) return [];
      let n = 0;
      return guide.forced.tokens(text, (id) => n < room && guide.matcher.accept(id) && ++n > 0);
    });
  /** Submits a forward of `ids` (uploaded) or of the sampler's `next`, at position `pos`. */
  const submitForward = (ids: readonly number[] | null, pos: number) => {
    const rec = ctx.record({ label: fed === 0 ? 'llm:prefill' : 'llm:decode' });
    inputs?.dispose();
    inputs = ids ? ctx.write(Uint32Array.from(ids), [ids.length], 'u32', 'input_ids') : null;
    pending?.dispose();
    pending = d.forward(rec, inputs ?? d.next, pos);
    void rec.submit();
    stats.forwards++;
  };

  try {
    // Text forced before the first draw joins the prompt's forward.
    // Forced ids are fed at once, so at most total - 1 of them (the last id is never fed).
    const head = forcedIds(total - 1);
    out.push(...head);
    stats.forced += head.length;
    markSeen(head);
    submitForward([...prompt.slice(keep), ...head], keep);
    fed = head.length;
    if (head.length) yield Object.assign([...head], { forcedFrom: 0 });
    let status = out.length < total ? await maskStep() : 'full';
    for (;;) {
      if (status === 'end' || status === 'none') {
        yield [guide.eosId];
        return;
      }
      if (status === 'full') return;
      // Draw from the last forward's logits under the mask, then read the id back.
      q.writeBuffer(d.mask.buffer, d.mask.offset, maskHost);
      stepWords[0] = drawn;
      stepWords[1] = params.seed; // the sampler's seed (see writeSamplerStep)
      q.writeBuffer(d.step.buffer, d.step.offset, stepWords);
      const rec = ctx.record({ label: 'llm:draw' });
      sampleToken(ctx, rec, pending!.view([pending!.size]), state, params, extras);
      const slot = drawn % ring.size;
      rec.copy(ring.buffer, slot * 4, staging[0], 0, 4);
      if (withLp) rec.copy(lp.buffer, slot * LOGPROB_WORDS * 4, lpStaging[0], 0, LOGPROB_WORDS * 4);
      void rec.submit();
      drawn++;
      stats.sampled++;
      const maps = [staging[0].mapAsync(MAP_READ, 0, 4)];
      if (withLp) maps.push(lpStaging[0].mapAsync(MAP_READ, 0, LOGPROB_WORDS * 4));
      const mapped = ctx.dev.race(Promise.all(maps));
      // Overlap: the next forward reads the drawn id on the GPU while the CPU waits for it.
      const more = out.length + 1 < total;
      if (more) {
        submitForward(null, P + fed);
        fed++;
      }
      try {
        await mapped;
      } catch (e) {
        maps.forEach((m) => m.catch(() => {}));
        throw e;
      }
      const id = new Uint32Array(staging[0].getMappedRange(0, 4))[0];
      staging[0].unmap();
      const batch: DecodedBatch = [id];
      if (withLp) {
        batch.logprobs = new Uint32Array(lpStaging[0].getMappedRange(0, LOGPROB_WORDS * 4).slice(0));
        lpStaging[0].unmap();
      }
      if (opts.signal?.aborted) throw abortError(opts.signal);
      seen[id >>> 5] |= 1 << (id & 31);
      out.push(id);
      if (!timed(() => guide.matcher.accept(id))) {
        throw new WebqError('CONSTRAINT_BROKEN', `the sampler drew token ${id}, which the constraint's mask did not allow (a webq bug; please report it)`);
      }
      // The constraint is complete when it took an end-of-sequence id; the caller ends on that id.
      if (!more || guide.matcher.terminated) {
        yield batch;
        return;
      }
      const forced = forcedIds(total - out.length - 1);
      if (forced.length) {
        // The forward just submitted (of the drawn id) is kept for its keys and values; the forced
        // tokens run through one more forward, whose last logits the next draw uses.
        out.push(...forced);
        stats.forced += forced.length;
        markSeen(forced);
        submitForward(forced, P + fed);
        fed += forced.length;
        batch.forcedFrom = 1;
        batch.push(...forced);
      }
      yield batch;
      status = out.length < total ? await maskStep() : 'full';
    }
  } finally {
    (pending as Tensor | null)?.dispose();
    (inputs as Tensor | null)?.dispose();
    // Let the work in flight finish before the buffers are reused; then the cache holds the
    // prompt and every generated id that went through a forward.
    await q.onSubmittedWorkDone().catch(() => {});
    cache.truncate(keep);
    if (stats.forwards > 0) cache.ids.push(...prompt.slice(keep), ...out.slice(0, fed));
  }

  async function maskStep(): Promise<'open' | 'end' | 'none'> {
    const t0 = now();
    try {
      return await guide.matcher.fillMask(maskHost);
    } finally {
      stats.maskMs += now() - t0;
    }
  }
}
