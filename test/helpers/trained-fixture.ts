/**
 * The trained test fixture: test/fixtures/trained-llama, a small LlamaForCausalLM trained on
 * template stories by scripts/train-fixture.mjs (its README says how and what it reached), with
 * its word-level tokenizer and a held-out text (heldout.txt: stories of another seed, one per
 * line, never trained on). Tests read it as a model folder; nothing here trains.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';

export const TRAINED_LLAMA = process.env.WEBQ_TRAINED_LLAMA ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'trained-llama');

/** Every tensor of the fixture as f32, by name (for the CPU reference forward). */
export async function trainedWeights(): Promise<Record<string, Float32Array>> {
  const st = await SafetensorsFile.open(join(TRAINED_LLAMA, 'model.safetensors'));
  try {
    const w: Record<string, Float32Array> = {};
    for (const t of st.tensors) w[t.name] = (await st.readAs(t.name, 'f32')) as Float32Array;
    return w;
  } finally {
    await st.close();
  }
}
