/**
 * The tiny chat Llama that the cross-runtime tests share: Node (test/node/llm-runtimes.test.ts),
 * Deno (test/deno/llm_test.ts), Chromium (test/browser/llm-page.ts) and the chat demo's test.
 * It says how the model is written, the prompt, and the two decodes every runtime must agree on.
 * No Node imports here: the browser page imports this file too.
 */
import type { LlamaConfig } from '../../src/models/llama/llama-config.ts';
import { samplerUniform, validateSamplingParams } from '../../src/ops/sample.ts';
import { llamaReferenceForward, type LlamaWeightsF32 } from '../../src/reference/llama.ts';
import { referenceSampleTrace } from '../../src/reference/sample.ts';
import type { TinyLlamaOptions } from '../../fixtures/tiny-llama.ts';

/** A ChatML template (the shape Qwen and SmolLM2 use), for llama2's tokenizer, which has none. */
export const CHATML =
  "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** llama2's tokenizer forces vocab 32000; hidden 64 keeps the LM head at 8 MiB for SwiftShader. */
export const TINY_CHAT_LLAMA: TinyLlamaOptions = { modelType: 'llama', tokenizer: 'llama2', chatTemplate: CHATML, hidden: 64, layers: 2, maxPositions: 256, seed: 31 };

export const RUNTIME_PROMPT = 'Once upon a time';
/** Both decodes run past end-of-sequence ids, so every runtime produces exactly maxTokens ids. */
export const GREEDY = { maxTokens: 16, temperature: 0, ignoreEos: true } as const;
export const SEEDED = { maxTokens: 24, temperature: 0.8, topK: 40, topP: 0.9, seed: 1234, ignoreEos: true } as const;

/** What each runtime reports for RUNTIME_PROMPT (f32 weights, f32 KV cache). */
export interface RuntimeIds {
  promptIds: number[];
  greedy: number[];
  sample: number[];
}

/**
 * The fp32 CPU reference for both decodes, by full recompute: greedy argmax, and the seeded draw
 * exactly as the GPU sampler makes it (step k draws samplerUniform(seed, k); the seen set is the
 * sequence so far). `margin` is the sampled steps' smallest distance from a float decision
 * boundary: a fixture far from one cannot flip between runtimes on rounding.
 */
export function referenceIds(cfg: LlamaConfig, w: LlamaWeightsF32, promptIds: readonly number[]): { greedy: number[]; sample: number[]; margin: number } {
  const V = cfg.vocabSize;
  const lastRow = (seq: readonly number[]) => llamaReferenceForward(cfg, w, seq).subarray((seq.length - 1) * V);
  const greedy: number[] = [];
  let seq = [...promptIds];
  for (let k = 0; k < GREEDY.maxTokens; k++) {
    const logits = lastRow(seq);
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[v] > logits[best]) best = v;
    greedy.push(best);
    seq.push(best);
  }
  const params = validateSamplingParams(SEEDED);
  const sample: number[] = [];
  let margin = Infinity;
  seq = [...promptIds];
  for (let k = 0; k < SEEDED.maxTokens; k++) {
    const t = referenceSampleTrace(lastRow(seq), new Set(seq), params, samplerUniform(SEEDED.seed, k));
    margin = Math.min(margin, t.margin);
    sample.push(t.token);
    seq.push(t.token);
  }
  return { greedy, sample, margin };
}
