/**
 * One turn of LlmModel.generate: the decode loop (plain, constrained or speculative) turned into
 * text chunks with stops, end-of-sequence, logprobs and usage, and the KV cache cut back to the
 * tokens that count, so the next call can reuse the prompt prefix.
 */
import type { Decoder } from '../generate/decoder.ts';
import type { Drafter } from '../generate/drafters.ts';
import { generateSpeculative, type SpeculativeStats } from '../generate/speculative.ts';
import type { SamplingParams } from '../ops/sample.ts';
import { TextStreamer } from '../text/text-stream.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';
import { logprobEntries, type PreparedExtras, type TokenLogprob } from './generate-extras.ts';
import type { FinishReason, GenerationChunk, GenerationResult, Usage } from './llm-results.ts';

const now = () => (globalThis.performance ?? Date).now();

/** One generation, run while the caller holds the model's queue: decodes, streams text, applies stops and keeps the cache to what counts. */
export async function* decodeTurn(
decoder: Decoder,
tokenizer: TextTokenizer,
eosTokenIds: readonly number[],
ids: number[],
params: SamplingParams,
extras: PreparedExtras,
o: { maxTokens: number; stop: string[]; ignoreEos?: boolean; readEvery?: number; signal?: AbortSignal; k: number; drafter?: Drafter },
): AsyncGenerator<GenerationChunk, GenerationResult> {
  const cachedBefore = decoder.cachedPrefix(ids);
  const streamer = new TextStreamer(tokenizer, { skipSpecialTokens: true, stop: o.stop });
  const eos = new Set(o.ignoreEos ? [] : eosTokenIds);
  const tokens: number[] = [];
  const lps: TokenLogprob[] | undefined = extras.topLogprobs === undefined ? undefined : [];
  let finish: FinishReason = 'length';
  const t0 = now();
  let tFirst = 0;
  const spec: SpeculativeStats | null = o.drafter ? { forwards: 0, accepted: 0, rejected: 0 } : null;
  const usageNow = (): Usage => {
    const prefillS = Math.max(tFirst - t0, 1e-6) / 1000;
    const decodeS = Math.max(now() - tFirst, 1e-6) / 1000;
    return {
      promptTokens: ids.length,
      completionTokens: tokens.length,
      cachedTokens: cachedBefore,
      prefillTokensPerSecond: (ids.length - cachedBefore) / prefillS,
      decodeTokensPerSecond: tokens.length > 1 ? (tokens.length - 1) / decodeS : 0,
      ...(spec && { completionTokensDetails: { acceptedPredictionTokens: spec.accepted, rejectedPredictionTokens: spec.rejected }, targetForwards: spec.forwards }),
    };
  };
  // The decoder reads back whole batches, so ids sampled past a stop arrive too: only the
  // ones up to the stop count (the result, usage, and what the cache keeps for reuse).
  let cacheKeep = Infinity;
  const batches = spec
    ? generateSpeculative(decoder, ids, params, { maxTokens: o.maxTokens, k: o.k, drafter: o.drafter!, stats: spec, signal: o.signal })
    : extras.decode(decoder, ids, params, { maxTokens: o.maxTokens, batch: o.readEvery, signal: o.signal });
  for await (const batch of batches) {
    if (!tFirst) tFirst = now();
    const end = batch.findIndex((id) => eos.has(id));
    const accepted = end < 0 ? batch : batch.slice(0, end);
    const { text, stopped, used } = streamer.push(accepted);
    const kept = accepted.slice(0, used);
    tokens.push(...kept);
    const lp = lps && logprobEntries(batch, kept.length, extras.topLogprobs!, tokenizer);
    lps?.push(...lp!);
    if (text || lp?.length) yield { text, tokens: kept, usage: usageNow(), ...(lp && { logprobs: lp }) };
    if (stopped || end >= 0) {
      finish = 'stop';
      // An end-of-sequence id stays cached: a chat template's next turn starts with it.
      cacheKeep = ids.length + tokens.length + (stopped ? 0 : 1);
      break;
    }
  }
  decoder.keepCached(cacheKeep);
  const usage = usageNow();
  const rest = streamer.flush();
  if (rest) yield { text: rest, tokens: [], usage };
  return { text: streamer.text, tokens, promptIds: ids, finishReason: finish, usage, ...(lps && { logprobs: lps }) };
}
