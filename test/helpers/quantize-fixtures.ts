/**
 * Tiny models with planted outliers for the quantization tests (not a test file itself).
 *
 * BERT: fixtures/tiny-bert.ts's checkpoint, then a few hidden channels of every LayerNorm made 25x larger
 * (weight and bias), as trained BERTs have a few outlier dimensions in their LayerNorms: the
 * residual stream and every Linear reading it carry them.
 * LLaMA: fixtures/tiny-llama.ts already plants them (20x embedding channels, 6x salient weight columns).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { writeSafetensorsFile, type TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { writeTinyBert, type TinyBertOptions } from '../../fixtures/tiny-bert.ts';

export const BERT_OUTLIER_SCALE = 25;

export async function writeOutlierBert(dir: string, opts: TinyBertOptions = {}): Promise<{ dir: string; channels: number[] }> {
  const m = await writeTinyBert(dir, { ...opts, prefix: '' });
  const H = m.config.hidden_size as number;
  const channels = [Math.floor(H / 7), Math.floor(H / 2) + 3, H - 5];
  const file = join(dir, 'model.safetensors');
  const st = await SafetensorsFile.open(file);
  const tensors: TensorToWrite[] = [];
  for (const t of st.tensors) {
    const a = Float32Array.from((await st.readAs(t.name, 'f32')) as Float32Array);
    if (/LayerNorm\.(weight|bias)$/.test(t.name)) for (const c of channels) a[c] *= BERT_OUTLIER_SCALE;
    tensors.push({ name: t.name, dtype: 'F32', shape: t.shape, data: a });
  }
  await st.close();
  await writeSafetensorsFile(file, tensors, { format: 'pt' });
  return { dir, channels };
}

/** A short calibration file: the first `n` lines of the built-in text (fast tests). */
export async function writeLines(path: string, lines: readonly string[]): Promise<string> {
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}
