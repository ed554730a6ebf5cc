/** What LlmModel.generate gives: the result, its stream chunks, and the usage each carries. */
import type { TokenLogprob } from './generate-extras.ts';

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens whose keys and values were already in the cache (a common prefix). */
  cachedTokens: number;
  /** Prompt tokens run per second, to the first sampled token. */
  prefillTokensPerSecond: number;
  /** Tokens generated per second after the first. */
  decodeTokensPerSecond: number;
  /** With `speculative`: drafted tokens the target accepted and rejected (OpenAI's prediction counts). */
  completionTokensDetails?: { acceptedPredictionTokens: number; rejectedPredictionTokens: number };
  /** With `speculative`: forwards of the target model, the prefill included (plain decoding runs one per token). */
  targetForwards?: number;
}

export type FinishReason = 'stop' | 'length';

export interface GenerationChunk {
  text: string;
  tokens: number[];
  /** So far: a stream stopped early (an abort) ends with the usage of what it gave. */
  usage: Usage;
  /** With the logprobs option: one entry per token of `tokens`. */
  logprobs?: TokenLogprob[];
}

export interface GenerationResult {
  text: string;
  /** Generated ids (an end-of-sequence id that stopped generation not included). */
  tokens: number[];
  promptIds: number[];
  finishReason: FinishReason;
  usage: Usage;
  /** With the logprobs option: one entry per generated token. */
  logprobs?: TokenLogprob[];
}

export interface StreamingGeneration extends AsyncIterable<GenerationChunk> {
  /** Settles when the stream has been read to its end. */
  readonly result: Promise<GenerationResult>;
}
