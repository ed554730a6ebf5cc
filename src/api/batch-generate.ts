/**
 * Several generations decoded together (src/generate/batch.ts): LlmModel.generateBatch (different
 * prompts) and chat/completions' `n` (one prompt, one seed per choice). Each row streams its text,
 * applies its stops and end-of-sequence ids, and is cut at its own maxTokens; the batch stops once
 * every row has finished.
 *
 * generateBatch(prompts, opts): `opts` is every prompt's, or one per prompt. Each result equals
 * generate(prompt, opts) run alone (the same tokens; usage rates are the batch's), the cached
 * prefix of generate() aside: a batch prefills every prompt in full and leaves the model's
 * one-sequence cache as it was. Options that need the one-sequence path (responseFormat, tools,
 * logitBias, logprobs, speculative) run the prompts one after another instead, as does one prompt.
 */
import { WebqError } from '../errors.ts';
import { BatchDecoder, type BatchRow } from '../generate/batch.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { LlamaGpuWeights } from '../models/llama/llama.ts';
import type { LlamaConfig } from '../models/llama/llama-config.ts';
import type { KvShared } from '../ops/kv-cache.ts';
import type { SamplingParams } from '../ops/sample.ts';
import { TextStreamer } from '../text/text-stream.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';
import { callTimeout, deadline, type CallCounter, type Limits } from './limits.ts';
import type { GenerateOptions } from './llm-options.ts';
import type { FinishReason, GenerationResult } from './llm-results.ts';

/** Default new tokens (llm.ts's DEFAULT_MAX_TOKENS; restated: llm.ts imports this file). */
const DEFAULT_MAX_TOKENS = 256;

/** Most sequences one batched forward decodes (the batch's buffers are sized for what a call asks, up to this). */
export const MAX_BATCH = 16;

const now = () => (globalThis.performance ?? Date).now();

/** Whether options can run in a batch (the one-sequence extras cannot). */
export function batchable(o: GenerateOptions): boolean {
  return o.responseFormat == null && o.constraint == null && o.logitBias == null && o.logprobs == null && o.speculative == null;
}

/** One row of a batched call: its prompt, sampling, and what ends it. */
export interface BatchJob {
  ids: number[];
  params: SamplingParams;
  maxTokens: number;
  stop: string[];
  ignoreEos: boolean;
}

/**
 * The batch decoder of a model, made on first use and again only for a larger batch, all its
 * buffers sized for `size` rows (KvBatch, sampler rings, staging).
 */
export class BatchSlot {
  private dec: BatchDecoder | null = null;

  /** With `reserve` > 1 (LlmLoadOptions.batchSize), the decoder for that many rows is made now. */
  constructor(private readonly ctx: GpuContext, private readonly cfg: LlamaConfig, shared: KvShared, private readonly reserve: number) {
    if (reserve > 1) this.get(shared, reserve);
  }

  /** A decoder for at least `rows` sequences of `shared`'s model (and at least `reserve`). */
  get(shared: KvShared, rows: number): BatchDecoder {
    if (this.dec && this.dec.kv.shared === shared && this.dec.size >= rows) return this.dec;
    this.dispose();
    this.dec = new BatchDecoder(this.ctx, this.cfg, shared, Math.min(MAX_BATCH, Math.max(rows, this.reserve)));
    return this.dec;
  }

  dispose(): void {
    this.dec?.dispose();
    this.dec = null;
  }
}

/** Runs `jobs` (at most the decoder's size) together; one result per job, in order. */
export async function runBatch(dec: BatchDecoder, weights: LlamaGpuWeights, tokenizer: TextTokenizer, eosIds: readonly number[], jobs: readonly BatchJob[], signal?: AbortSignal): Promise<GenerationResult[]> {
  const rows: BatchRow[] = jobs.map((j) => ({ prompt: j.ids, params: j.params }));
  const maxTokens = Math.max(...jobs.map((j) => j.maxTokens));
  const state = jobs.map((j) => ({
    streamer: new TextStreamer(tokenizer, { skipSpecialTokens: true, stop: j.stop }),
    eos: new Set(j.ignoreEos ? [] : eosIds),
    tokens: [] as number[],
    finish: 'length' as FinishReason,
    done: false,
  }));
  const t0 = now();
  let tFirst = 0;
  const gen = dec.generate(weights, rows, { maxTokens, signal });
  for await (const step of gen) {
    if (!tFirst) tFirst = now();
    step.forEach((ids, b) => {
      const s = state[b];
      if (s.done) return;
      const room = jobs[b].maxTokens - s.tokens.length;
      const upTo = ids.slice(0, room);
      const end = upTo.findIndex((id) => s.eos.has(id));
      const accepted = end < 0 ? upTo : upTo.slice(0, end);
      const { stopped, used } = s.streamer.push(accepted);
      s.tokens.push(...accepted.slice(0, used));
      if (stopped || end >= 0) {
        s.finish = 'stop';
        s.done = true;
      } else if (s.tokens.length >= jobs[b].maxTokens) s.done = true;
    });
    if (state.every((s) => s.done)) break;
  }
  const t1 = now();
  const prefillS = Math.max(tFirst - t0, 1e-6) / 1000;
  const decodeS = Math.max(t1 - tFirst, 1e-6) / 1000;
  return state.map((s, b) => {
    s.streamer.flush();
    return {
      text: s.streamer.text,
      tokens: s.tokens,
      promptIds: jobs[b].ids,
      finishReason: s.finish,
      usage: {
        promptTokens: jobs[b].ids.length,
        completionTokens: s.tokens.length,
        cachedTokens: 0,
        // The batch's prefills run together and its steps are shared: these rates are the batch's, per row.
        prefillTokensPerSecond: jobs[b].ids.length / prefillS,
        decodeTokensPerSecond: s.tokens.length > 1 ? (s.tokens.length - 1) / decodeS : 0,
      },
    };
  });
}

export function checkBatchSize(n: number | undefined): void {
  if (n !== undefined && (!Number.isInteger(n) || n < 1 || n > MAX_BATCH)) throw new WebqError('BAD_OPTION', `batchSize must be an integer from 1 to ${MAX_BATCH}, got ${n}`);
}

/** What generateBatch needs of its model (LlmModel passes its private parts here). */
export interface BatchHost {
  readonly describe: string;
  readonly contextLength: number;
  readonly generationDefaults: { maxNewTokens?: number };
  readonly tokenizer: TextTokenizer;
  readonly eosTokenIds: readonly number[];
  samplingFor(o: GenerateOptions): SamplingParams;
  generate(prompt: string | readonly number[], opts: GenerateOptions & { stream: false }): Promise<GenerationResult>;
}

export interface BatchAccess {
  /** The prompt's ids, checked against the input limit. */
  ids(prompt: string | readonly number[], o: GenerateOptions): number[];
  /** The model's queue and call limits. */
  turn: { calls: CallCounter; limits: Limits; acquire(signal?: AbortSignal): Promise<() => void>; checkLive(): void };
  /** The batch decoder for `rows` sequences and the weights it runs on (read once the turn is held). */
  decoder(rows: number): { dec: BatchDecoder; weights: LlamaGpuWeights };
}

export async function generateBatch(m: BatchHost, prompts: readonly (string | readonly number[])[], opts: GenerateOptions | readonly GenerateOptions[], a: BatchAccess): Promise<GenerationResult[]> {
  if (!Array.isArray(prompts)) throw new WebqError('BAD_PROMPT', 'generateBatch takes an array of prompts (strings or token id arrays)');
  const each = Array.isArray(opts) ? (opts as readonly GenerateOptions[]) : prompts.map(() => opts as GenerateOptions);
  if (each.length !== prompts.length) throw new WebqError('BAD_OPTION', `generateBatch: ${each.length} options for ${prompts.length} prompts; give one, or one per prompt`);
  if (prompts.length === 0) return [];
  if (prompts.length === 1 || !each.every(batchable)) {
    const out: GenerationResult[] = [];
    for (const [i, p] of prompts.entries()) out.push(await m.generate(p, { ...each[i], stream: false }));
    return out;
  }
  const cap = m.contextLength;
  const jobs: BatchJob[] = prompts.map((p, i) => {
    const o = each[i];
    const maxTokens = o.maxTokens ?? m.generationDefaults.maxNewTokens ?? DEFAULT_MAX_TOKENS;
    if (!Number.isSafeInteger(maxTokens) || maxTokens < 1) throw new WebqError('BAD_OPTION', `maxTokens must be a positive integer, got ${maxTokens}`);
    const stop = o.stop === undefined ? [] : typeof o.stop === 'string' ? [o.stop] : [...o.stop];
    if (stop.some((x) => typeof x !== 'string' || x.length === 0)) throw new WebqError('BAD_OPTION', `stop must be a non-empty string or a list of them, got ${JSON.stringify(o.stop)}`);
    const ids = a.ids(p, o);
    if (ids.length === 0) throw new WebqError('EMPTY_PROMPT', `prompt ${i} has no tokens; give at least one`);
    if (ids.length > cap) throw new WebqError('CONTEXT_FULL', `prompt ${i} is ${ids.length} tokens, more than the context of ${cap}; shorten it or load the model with a larger contextLength`);
    // Token k is fed back at position P + k - 1, inside the cache (as generate() cuts it).
    return { ids, params: m.samplingFor(o), maxTokens: Math.min(maxTokens, cap - ids.length + 1), stop, ignoreEos: o.ignoreEos === true };
  });
  const t = a.turn;
  const out = t.calls.enter(t.limits);
  const limit = deadline(callTimeout(each[0].timeoutMs, t.limits), `${m.describe}: generateBatch`, each[0].signal);
  try {
    limit.signal?.throwIfAborted();
    const release = await t.acquire(limit.signal);
    try {
      t.checkLive();
      const results: GenerationResult[] = [];
      for (let i = 0; i < jobs.length; i += MAX_BATCH) {
        const group = jobs.slice(i, i + MAX_BATCH);
        const { dec, weights } = a.decoder(group.length);
        results.push(...(await runBatch(dec, weights, m.tokenizer, m.eosTokenIds, group, limit.signal)));
      }
      return results;
    } finally {
      release();
    }
  } finally {
    out();
    limit.done();
  }
}
