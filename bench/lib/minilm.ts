/**
 * The model suites' workload (bert, ort): a MiniLM-shaped BERT checkpoint with random weights,
 * written as a Hugging Face safetensors folder, and a batch of random token ids.
 */
import { parseBertConfig, type BertConfig } from '../../src/models/config.ts';
import { writeTinyBert, type TinyBert } from '../../fixtures/index.ts';

export interface MiniLM {
  tiny: TinyBert;
  cfg: BertConfig;
  /** A one-line description for the reports. */
  model: string;
}

/** The checkpoint's max_position_embeddings: the longest --seq the model suites accept. */
export const MINILM_MAX_POSITIONS = 512;

/** 6 layers by default, hidden 384, 12 heads, FFN 1536 (all-MiniLM-L6-v2's shape), written to `dir`. */
export async function writeMiniLM(dir: string, layers: number): Promise<MiniLM> {
  const tiny = await writeTinyBert(dir, { hidden: 384, layers, heads: 12, intermediate: 1536, maxPositions: MINILM_MAX_POSITIONS, linearStd: 0.05, tokenizer: false, seed: 1 });
  return { tiny, cfg: parseBertConfig(tiny.config), model: `MiniLM-shaped (${layers} layers, hidden 384, 12 heads, FFN 1536, random weights)` };
}

/** n seeded token ids below `vocab` (timing needs no tokenizer; every token is real). */
export function randomIds(n: number, vocab: number): Uint32Array {
  let s = 1;
  return new Uint32Array(n).map(() => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % vocab));
}
