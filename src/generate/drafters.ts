/**
 * Drafters for speculative decoding (speculative.ts): each proposes up to `room` tokens continuing
 * the text so far, one per position and deterministically, so the draft distribution q is one-hot
 * on the drafted token (what the verification's rejection rule assumes, ops/verify.ts).
 *
 * - lookup: n-grams of the prompt and the text so far (lookup.ts), no model.
 * - a decoder: a draft model (or the target's own first layers, `selfDrafter`) runs greedily for
 *   `room` tokens on the GPU with its own KV cache. Its cache is cut back with the target's for
 *   free: the next call's text shares only the accepted prefix with what the draft cached, and
 *   Decoder.generate keeps exactly the cached common prefix.
 */
import type { GpuContext } from '../gpu/context.ts';
import type { LlamaGpuWeights } from '../models/llama/llama.ts';
import type { LlamaConfig } from '../models/llama/llama-config.ts';
import type { KvDType } from '../ops/kv-cache.ts';
import { validateSamplingParams } from '../ops/sample.ts';
import { Decoder } from './decoder.ts';
import { kvCacheFor } from './kv.ts';
import { lookupDraft } from './lookup.ts';

export interface Drafter {
  /** Up to `room` (>= 1) ids continuing `seq` (the prompt and every kept token). */
  draft(seq: readonly number[], room: number, signal?: AbortSignal): number[] | Promise<number[]>;
}

export const lookupDrafter: Drafter = { draft: (seq, room) => lookupDraft(seq, room) };

const GREEDY = validateSamplingParams({ temperature: 0 });

/** Greedy drafts from a decoder (a draft model's, or the target's first layers). */
export class DecoderDrafter implements Drafter {
  constructor(readonly decoder: Decoder) {}

  async draft(seq: readonly number[], room: number, signal?: AbortSignal): Promise<number[]> {
    // Past the draft's own context it has nothing to say; the target goes on one token a step.
    const n = Math.min(room, this.decoder.contextLength - seq.length + 1);
    if (n < 1) return [];
    const out: number[] = [];
    // One read-back for all n: the verification needs them together.
    for await (const b of this.decoder.generate(seq, GREEDY, { maxTokens: n, batch: n, firstBatch: n, signal })) out.push(...b);
    return out;
  }
}

/**
 * The target's first `layers` layers, then its final norm and LM head, sharing the target's GPU
 * buffers (nothing is uploaded): an early-exit draft model. Its own KV cache holds `layers` layers.
 */
export function selfDecoder(ctx: GpuContext, cfg: LlamaConfig, w: LlamaGpuWeights, layers: number, cap: number, kv: KvDType): Decoder {
  const c: LlamaConfig = { ...cfg, numLayers: layers, slidingWindow: cfg.slidingWindow.slice(0, layers), ropeLayers: cfg.ropeLayers.slice(0, layers) };
  const weights: LlamaGpuWeights = { ...w, layers: w.layers.slice(0, layers), dispose: () => {} };
  return new Decoder(ctx, c, weights, kvCacheFor(ctx, c, cap, kv));
}
