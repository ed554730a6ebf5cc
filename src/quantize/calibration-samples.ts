/**
 * Data-free calibration for decoders: with no --calib file, `webq quantize` calibrates on text the
 * float model writes itself, sampled on the GPU at temperature 1 from its BOS (half the samples)
 * and from a few generic openings, with a fixed seed. Such text has the model's own statistics
 * (its vocabulary, its domain, its typical activations), which a fixed paragraph of everyday
 * English lacks for a model trained on stories, code or another language; LLM-QAT (Liu et al.
 * 2023) calibrates on samples this way.
 *
 * The samples are token ids (no decode and re-encode), each at most CALIB_MAX_TOKENS long; a
 * sample ends early at an end-of-sequence id, and sampling goes on until the budget is met.
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { Decoder } from '../generate/decoder.ts';
import { kvCacheFor } from '../generate/kv.ts';
import { validateSamplingParams } from '../ops/sample.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';
import { CALIB_MAX_TOKENS, type ModelRunner } from './runner.ts';
import type { LlamaConfig } from '../models/llama/llama-config.ts';
import type { LlamaGpuWeights } from '../models/llama/llama.ts';

/** Tokens sampled unless told (a few thousand: GPTQ's Hessians want several times the layer width). */
export const SELF_CALIBRATION_TOKENS = 4096;
/** Openings of every other sample (the rest start from BOS alone). */
export const SAMPLE_OPENINGS = ['The', 'Once upon a time', 'In', 'I', 'It is', 'There was', 'We', 'This'];

export interface SelfCalibrationOptions {
  /** Tokens to sample in all, openings included (default SELF_CALIBRATION_TOKENS). */
  tokens?: number;
  /** Seed of the first sample; sample i uses seed + i (default 0). */
  seed?: number;
  onProgress?: (done: number, total: number) => void;
}

/** The samples' ids; the float runner's weights generate them. */
export async function sampleCalibration(ctx: GpuContext, runner: ModelRunner, config: LlamaConfig, tokenizer: TextTokenizer, opts: SelfCalibrationOptions = {}): Promise<number[][]> {
  const budget = opts.tokens ?? SELF_CALIBRATION_TOKENS;
  if (!(Number.isSafeInteger(budget) && budget >= 1)) throw new WebqError('BAD_OPTION', `calibration tokens must be a positive integer, got ${budget}`);
  const seed = opts.seed ?? 0;
  const cap = Math.min(config.maxPositions, CALIB_MAX_TOKENS);
  const eos = new Set([...config.eosTokenIds, ...(tokenizer.eosTokenId === undefined ? [] : [tokenizer.eosTokenId])]);
  // A tokenizer that adds no BOS (Qwen) starts a bare sample from its end-of-text token instead.
  const start = tokenizer.encode('', { addSpecialTokens: true }).ids;
  const bare = start.length ? start : [config.bosTokenId ?? tokenizer.bosTokenId ?? [...eos][0]].filter((id): id is number => id !== undefined);
  const cache = kvCacheFor(ctx, config, cap, 'f32');
  const decoder = new Decoder(ctx, config, runner.weights as LlamaGpuWeights, cache);
  const samples: number[][] = [];
  try {
    let total = 0;
    // Every kept sample has 2 tokens or more, so `budget` tries always suffice: nothing loops forever.
    for (let i = 0; total < budget && i < budget; i++) {
      opts.onProgress?.(total, budget);
      const opening = i % 2 === 0 ? '' : SAMPLE_OPENINGS[(i >> 1) % SAMPLE_OPENINGS.length];
      let prompt = opening ? tokenizer.encode(opening, { addSpecialTokens: true }).ids : bare;
      // The last sample fits the budget exactly: from BOS alone when an opening would not leave room.
      if (prompt.length >= budget - total) prompt = bare;
      if (bare.length >= budget - total) break;
      if (!prompt.length || prompt.length >= cap) {
        if (i > 2 * SAMPLE_OPENINGS.length && !samples.length) throw new WebqError('CALIBRATION', `${tokenizer.name}: cannot start a calibration sample (no BOS or end-of-text token); give --calib FILE`);
        continue;
      }
      const ids = [...prompt];
      const params = validateSamplingParams({ temperature: 1, seed: (seed + i) >>> 0 });
      decoder.cache.truncate(0);
      gen: for await (const batch of decoder.generate(prompt, params, { maxTokens: Math.min(cap - prompt.length, budget - total - prompt.length), batch: 16 })) {
        for (const id of batch) {
          if (eos.has(id)) break gen;
          ids.push(id);
        }
      }
      if (ids.length < 2) continue;
      samples.push(ids);
      total += ids.length;
    }
    if (!samples.length) throw new WebqError('CALIBRATION', `${tokenizer.name}: the model wrote no calibration text (every sample ended at once); give --calib FILE`);
    opts.onProgress?.(budget, budget);
    return samples;
  } finally {
    decoder.dispose();
  }
}
