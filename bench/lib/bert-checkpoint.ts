/**
 * The load suite's model: a BERT checkpoint at a real vocabulary size (MiniLM's 30522 by
 * default), written as a Hugging Face folder with seeded random weights and a WordPiece tokenizer
 * of the same size, so that a load reads, tokenizer included, what loading all-MiniLM-L6-v2 reads.
 * (bench/lib/minilm.ts keeps the test tokenizer's 632-token vocabulary: fine for forward timing,
 * not for load timing or file sizes, where the table is half of MiniLM.)
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeSafetensorsFile, type TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { tinyVocab } from '../../test/helpers/tiny-bert-vocab.ts';
import { tinyTokenizerFiles } from '../../test/helpers/tiny-tokenizer.ts';
import { randn } from '../../test/kernels/check.ts';

export interface BertShape {
  vocab: number; //   30522
  hidden: number; //  384
  layers: number; //  6
  maxPositions: number; // 512
}

export const MINILM_SHAPE: BertShape = { vocab: 30522, hidden: 384, layers: 6, maxPositions: 512 };

/** Heads of 32 and an FFN 4x wide, as MiniLM; embeddings N(0, 0.02), Linears N(0, 0.05), norms N(1, 0.1). */
export async function writeBertCheckpoint(dir: string, s: BertShape): Promise<{ config: Record<string, unknown>; describe: string }> {
  const { vocab: V, hidden: H, layers: L, maxPositions: P } = s;
  const I = 4 * H;
  if (H % 32) throw new Error(`hidden ${H} must be a multiple of 32 (heads of 32)`);
  const words = tinyVocab();
  if (V < words.length) throw new Error(`vocab ${V} is smaller than the tokenizer's ${words.length} tokens`);
  // The test tokenizer's words, then made-up pieces up to the model's vocabulary.
  for (let i = words.length; i < V; i++) words.push(`##w${i}`);
  let seed = 1;
  const tensors: TensorToWrite[] = [];
  const add = (name: string, shape: number[], std: number, mean = 0) => {
    const data = randn(shape.reduce((a, b) => a * b, 1), seed++, std);
    if (mean) for (let i = 0; i < data.length; i++) data[i] += mean;
    tensors.push({ name, dtype: 'F32', shape, data });
  };
  const linear = (base: string, n: number, k: number) => {
    add(`${base}.weight`, [n, k], 0.05);
    add(`${base}.bias`, [n], 0.02);
  };
  const norm = (base: string) => {
    add(`${base}.weight`, [H], 0.1, 1);
    add(`${base}.bias`, [H], 0.02);
  };
  add('embeddings.word_embeddings.weight', [V, H], 0.02);
  add('embeddings.position_embeddings.weight', [P, H], 0.02);
  add('embeddings.token_type_embeddings.weight', [2, H], 0.02);
  norm('embeddings.LayerNorm');
  for (let l = 0; l < L; l++) {
    const b = `encoder.layer.${l}`;
    for (const x of ['query', 'key', 'value']) linear(`${b}.attention.self.${x}`, H, H);
    linear(`${b}.attention.output.dense`, H, H);
    norm(`${b}.attention.output.LayerNorm`);
    linear(`${b}.intermediate.dense`, I, H);
    linear(`${b}.output.dense`, H, I);
    norm(`${b}.output.LayerNorm`);
  }
  linear('pooler.dense', H, H);
  const config = {
    architectures: ['BertModel'], model_type: 'bert', hidden_act: 'gelu', hidden_size: H, intermediate_size: I,
    layer_norm_eps: 1e-12, max_position_embeddings: P, num_attention_heads: H / 32, num_hidden_layers: L,
    pad_token_id: 0, position_embedding_type: 'absolute', type_vocab_size: 2, vocab_size: V,
  };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const { tokenizerJson, tokenizerConfig } = tinyTokenizerFiles(P, words);
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));
  const shape = V === MINILM_SHAPE.vocab && H === 384 && L === 6 && P === 512 ? 'MiniLM-shaped' : 'BERT';
  return { config, describe: `${shape} (vocab ${V}, hidden ${H}, ${L} layers, ${H / 32} heads, FFN ${I}, random weights)` };
}
