/**
 * Speculative decoding: each step drafts up to k tokens continuing the text so far (drafters.ts:
 * prompt lookup, the model's own first layers, or a draft model), runs the last token and the drafts through the target in one forward
 * (the prefill path over the cached prefix), and verifies on the GPU (ops/verify.ts): the kernel
 * writes each position's token (greedy: the argmax; sampling: the sampler's draw for that token
 * index, which realizes the rejection rule for a one-hot draft) and the accepted count. The tokens
 * kept are the accepted drafts and the target's own next token, what decoding without speculation
 * produces one token at a time from the same logits (prefill and decode logits agree,
 * test/node/spec-numerics.test.ts). The keys and values of the rejected drafts are cut from the cache.
 *
 * The count and the kept ids (k + 2 words) are read back once per verification
 * step, because the drafter runs on the CPU over the text so far; the plain decoder instead runs
 * ahead of the CPU by two batches (decoder.ts).
 */
import { WebqError } from '../errors.ts';
import { llamaForward } from '../models/llama/llama.ts';
import type { SamplingParams } from '../ops/sample.ts';
import { verifyDrafts, verifySampledDrafts } from '../ops/verify.ts';
import { abortError, type DecodedBatch, type Decoder } from './decoder.ts';
import type { Drafter } from './drafters.ts';

export const SPECULATIVE_METHODS = ['lookup', 'self', 'draft'] as const;
export type SpeculativeMethod = (typeof SPECULATIVE_METHODS)[number];
/** Most drafted tokens per verification step. */
export const MAX_DRAFT_TOKENS = 16;
export const DEFAULT_DRAFT_TOKENS = 4;

/** A loaded draft model (an LlmModel; the api layer checks it is one). */
export interface DraftModelRef {
  readonly describe: string;
}

export interface SpeculativeOptions {
  /**
   * 'lookup': n-gram drafts from the prompt and the text so far. 'self': the model's own first
   * `layers` layers (and its final norm and LM head, the same GPU buffers) draft. 'draft': a
   * smaller model with the same vocabulary (`model`) drafts on the same GPU context.
   */
  method: SpeculativeMethod;
  /** Most drafted tokens per target forward, 1..16 (default 4). */
  k?: number;
  /** 'draft': the draft model, loaded (an LlmModel on the target's context) or a path / hub id to load once. */
  model?: DraftModelRef | string;
  /** 'self': how many of the model's first layers draft (1 .. numLayers - 1; default half, rounded down, at least 1). */
  layers?: number;
}

/** Counts of one speculative generation, filled in as it runs. */
export interface SpeculativeStats {
  /** Forwards of the target model (the prefill included). */
  forwards: number;
  /** Drafted tokens the target agreed with (each saved a forward). */
  accepted: number;
  /** Drafted tokens the target disagreed with (their keys and values were cut back). */
  rejected: number;
}

/** Checks `speculative` and returns its draft count; BAD_OPTION naming the field otherwise. */
export function checkSpeculative(s: SpeculativeOptions): number {
  if (typeof s !== 'object' || s === null) throw new WebqError('BAD_OPTION', `speculative must be an object { method, k }, got ${JSON.stringify(s)}`);
  if (!SPECULATIVE_METHODS.includes(s.method)) throw new WebqError('BAD_OPTION', `speculative.method must be one of ${SPECULATIVE_METHODS.join(', ')}, got ${JSON.stringify(s.method)}`);
  const k = s.k ?? DEFAULT_DRAFT_TOKENS;
  if (!Number.isSafeInteger(k) || k < 1 || k > MAX_DRAFT_TOKENS) throw new WebqError('BAD_OPTION', `speculative.k (draft tokens) must be an integer from 1 to ${MAX_DRAFT_TOKENS}, got ${JSON.stringify(s.k)}`);
  if (s.method === 'draft' && (s.model == null || (typeof s.model !== 'string' && typeof s.model !== 'object') || s.model === '')) {
    throw new WebqError('BAD_OPTION', `speculative.model must be the draft model (an LlmModel or a path / hub id) with method 'draft', got ${typeof s.model === 'string' ? JSON.stringify(s.model) : String(s.model)}`);
  }
  if (s.method !== 'draft' && s.model !== undefined) throw new WebqError('BAD_OPTION', `speculative.model is for method 'draft', not ${JSON.stringify(s.method)}`);
  if (s.layers !== undefined && (s.method !== 'self' || !Number.isSafeInteger(s.layers) || s.layers < 1)) {
    throw new WebqError('BAD_OPTION', `speculative.layers must be a positive integer with method 'self', got ${JSON.stringify(s.layers)} with method ${JSON.stringify(s.method)}`);
  }
  return k;
}

/**
 * The draft count of a call with `speculative`, checked before generation starts against the call's
 * sampling and the options speculation does not combine with (`others`: option name -> set).
 */
export function checkSpeculativeCall(s: SpeculativeOptions, params: SamplingParams, others: Record<string, boolean>): number {
  const k = checkSpeculative(s);
  if (params.repetitionPenalty !== 1) throw new WebqError('BAD_OPTION', `speculative: repetitionPenalty must be 1 (off), got ${params.repetitionPenalty}`);
  const bad = Object.keys(others).filter((name) => others[name]);
  if (bad.length) throw new WebqError('BAD_OPTION', `speculative does not combine with ${bad.join(', ')}; drop one of them`);
  return k;
}

const MAP_READ = 0x0001;

/**
 * Generation after `prompt` with `drafter`'s drafts (greedy or sampled, no repetition penalty), yielding each verification step's kept ids.
 * Leaves the cache holding keys and values of every kept token but the last (as decoder.generate).
 */
export async function* generateSpeculative(d: Decoder, prompt: readonly number[], params: SamplingParams, o: { maxTokens: number; k: number; drafter: Drafter; stats: SpeculativeStats; signal?: AbortSignal }): AsyncGenerator<DecodedBatch, void, undefined> {
  d.checkPrompt(prompt);
  if (params.repetitionPenalty !== 1) {
    throw new WebqError('BAD_OPTION', `speculative: repetitionPenalty must be 1 (off), got ${params.repetitionPenalty}`);
  }
  if (!Number.isSafeInteger(o.maxTokens) || o.maxTokens < 1) throw new WebqError('BAD_OPTION', `maxTokens must be a positive integer, got ${o.maxTokens}`);
  o.signal?.throwIfAborted();
  const { ctx, cache } = d;
  const cap = d.contextLength;
  const total = Math.min(o.maxTokens, cap - prompt.length + 1);
  const staging = d.verifyStaging(o.k);
  const seq = [...prompt];
  const greedy = params.temperature === 0;
  const stepWords = new Uint32Array(2);
  let cached = d.reuse(prompt); // cache.ids === seq.slice(0, cached) between steps
  let produced = 0;
  try {
    while (produced < total) {
      if (o.signal?.aborted) throw abortError(o.signal);
      const pending = seq.slice(cached);
      // Drafts after the prefill only, never past maxTokens or the context (the forward writes
      // keys and values for every drafted position).
      const room = Math.min(o.k, total - produced - 1, cap - seq.length);
      const draft = produced === 0 || room < 1 ? [] : (await o.drafter.draft(seq, room, o.signal)).slice(0, room);
      const rows = draft.length + 1;
      const ids = ctx.write(Uint32Array.from([...pending, ...draft]), [pending.length + draft.length], 'u32', 'input_ids');
      const dr = ctx.write(Uint32Array.from(draft.length ? draft : [0]), [Math.max(1, draft.length)], 'u32', 'spec.draft');
      const out = ctx.empty([1 + rows], 'u32', 'spec.out');
      try {
        const rec = ctx.record({ label: produced === 0 ? 'llm:prefill' : 'llm:verify' });
        cache.setPosition(ctx, cached);
        // One row means a plain step (the decode kernels); with drafts, every position's logits.
        const logits = llamaForward(ctx, rec, d.weights, d.cfg, cache, { ids, pos0: cached, lastOnly: rows === 1 });
        const rowLogits = logits.view([rows, d.cfg.vocabSize]);
        if (greedy) verifyDrafts(ctx, rec, rowLogits, dr, out);
        else {
          // Row r draws token `produced + r` with the sampler's uniform for that index (ops/verify.ts).
          stepWords[0] = produced;
          stepWords[1] = params.seed;
          ctx.dev.gpu.queue.writeBuffer(d.step.buffer, d.step.offset, stepWords);
          verifySampledDrafts(ctx, rec, rowLogits, dr, out, d, params);
        }
        logits.dispose();
        rec.copy(out.buffer, out.offset, staging, 0, (1 + rows) * 4);
        void rec.submit();
        await d.ctx.dev.race(staging.mapAsync(MAP_READ, 0, (1 + rows) * 4));
      } finally {
        ids.dispose();
        dr.dispose();
        out.dispose();
      }
      const words = new Uint32Array(staging.getMappedRange(0, (1 + rows) * 4).slice(0));
      staging.unmap();
      const n = words[0];
      const kept: DecodedBatch = [...draft.slice(0, n), words[1 + n]];
      o.stats.forwards++;
      o.stats.accepted += n;
      o.stats.rejected += draft.length - n;
      // Keys and values stand for the pending tokens and the accepted drafts; the rest is cut back.
      cache.truncate(cached);
      cache.ids.push(...pending, ...draft.slice(0, n));
      seq.push(...kept);
      cached = seq.length - 1;
      produced += kept.length;
      yield kept;
    }
  } finally {
    if (cache.ids.length > cached) cache.truncate(cached);
  }
}
