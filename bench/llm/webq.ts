/**
 * webq's side of `npm run bench -- llm`: a Decoder per (weights, KV type) and wall-clock timings
 * of what a caller sees, host to host: a prefill is token ids in, the last position's logits out
 * (Decoder.logits); decoding is a Decoder.generate call with greedy sampling over a cache that
 * already holds the prompt, so that every step it times is a one-token forward.
 */
import { Decoder } from '../../src/generate/decoder.ts';
import { kvCacheFor } from '../../src/generate/kv.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import { f32ArrayToF16 } from '../../src/io/safetensors/half.ts';
import type { LlamaGpuWeights } from '../../src/models/llama/llama.ts';
import type { LlamaConfig } from '../../src/models/llama/llama-config.ts';
import type { KvCache, KvDType } from '../../src/ops/kv-cache.ts';
import { validateSamplingParams } from '../../src/ops/sample.ts';
import { seeded } from '../lib/measure.ts';

const GREEDY = validateSamplingParams({});

/** A decoder over `w` with a fresh KV cache of `cap` positions; dispose() frees the cache, not the weights. */
export function makeDecoder(ctx: GpuContext, cfg: LlamaConfig, w: LlamaGpuWeights, kv: KvDType, cap: number): Decoder {
  const cache = kvCacheFor(ctx, cfg, cap, kv);
  return new Decoder(ctx, cfg, w, cache);
}

/** Deterministic token ids in [0, V): a prompt that is not one token repeated. */
export function promptIds(n: number, V: number, seed = 7): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % V);
}

/** Milliseconds to run `prompt` from an empty cache to its last logits (the cache then holds it). */
export async function timePrefill(dec: Decoder, prompt: readonly number[]): Promise<{ ms: number; logits: Float32Array }> {
  dec.cache.truncate(0);
  const t0 = performance.now();
  const logits = await dec.logits(prompt);
  return { ms: performance.now() - t0, logits };
}

export interface DecodeTiming {
  /** Wall-clock milliseconds per step, the whole generate() call over its steps. */
  msPerToken: number;
  /** Every sampled id. */
  ids: number[];
}

/**
 * Greedy decoding after `prompt`, read back every `batch` tokens, with the cache already holding
 * the prompt (timePrefill): generate() then re-runs only its last token, so every one of its
 * n + 1 steps is a one-token forward at the end of the cache, and the call's time over n + 1 is the
 * time per token, first submit to last read-back included.
 */
export async function timeDecode(dec: Decoder, prompt: readonly number[], n: number, batch: number): Promise<DecodeTiming> {
  if (dec.cachedPrefix(prompt) !== prompt.length - 1) throw new Error('timeDecode: run the prompt first (timePrefill), so that generate() re-runs one token');
  const ids: number[] = [];
  const t0 = performance.now();
  for await (const b of dec.generate(prompt, GREEDY, { maxTokens: n + 1, batch })) ids.push(...b);
  return { msPerToken: (performance.now() - t0) / ids.length, ids };
}

/**
 * Writes random keys and values into every position of every layer of `cache` (f16 values, or
 * int8 codes with small scales: its own layouts, see src/ops/kv-cache.ts) without running the
 * model. A decode step reads the same bytes whatever they hold, so its time at context C is the
 * same as after a prefill of C tokens; the caller then sets cache.ids to the C tokens it stands for.
 */
export function fillRandom(ctx: GpuContext, cache: KvCache, seed: number): void {
  const q = ctx.dev.gpu.queue;
  const { kvHeads, cap, headDim: D, dtype } = cache.shape;
  const n = kvHeads * cap * D;
  const write = (t: Tensor, data: Float32Array | Uint16Array | Uint32Array) => q.writeBuffer(t.buffer, t.offset, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  cache.layers.forEach((l, i) => {
    if (dtype === 'int8') {
      write(l.k, randomWords(n / 4, seed + 4 * i));
      write(l.v, randomWords(n / 4, seed + 4 * i + 1));
      write(l.ks!, new Float32Array(kvHeads * cap).fill(1 / 127));
      write(l.vs!, new Float32Array(kvHeads * cap).fill(1 / 127));
    } else {
      const k = seeded(n, seed + 4 * i + 2);
      const v = seeded(n, seed + 4 * i + 3);
      write(l.k, dtype === 'f16' ? f32ArrayToF16(k) : k);
      write(l.v, dtype === 'f16' ? f32ArrayToF16(v) : v);
    }
  });
}

/** Random u32 words: four random int8 codes each. */
function randomWords(n: number, seed: number): Uint32Array {
  const out = new Uint32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) out[i] = s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  return out;
}

/** Compiles the pipelines of a prefill and of decode steps (a short prompt, two steps). */
export async function warmUp(dec: Decoder, prompt: readonly number[]): Promise<void> {
  dec.cache.truncate(0);
  for await (const _ of dec.generate(prompt.slice(0, Math.min(prompt.length, 32)), GREEDY, { maxTokens: 3, batch: 2 })) void _;
  dec.cache.truncate(0);
}
