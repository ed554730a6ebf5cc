/**
 * New versions of a float checkpoint folder, as a fine-tune would make them: some tensors nudged,
 * some renamed, added or dropped, config edits. Everything else is copied byte for byte.
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { writeSafetensorsFile, type TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { rng } from '../kernels/check.ts';

export interface CheckpointEdit {
  /** Tensors (matched by this test) whose values move by N(0, 1)-ish noise times `by` of their scale. */
  nudge?: RegExp;
  by?: number;
  /** name -> new name. */
  rename?: (name: string) => string;
  /** Tensors to drop. */
  drop?: RegExp;
  /** Tensors to add (F32). */
  add?: TensorToWrite[];
  /** Edits config.json. */
  config?: (c: Record<string, unknown>) => void;
  seed?: number;
}

export async function editCheckpoint(src: string, dst: string, e: CheckpointEdit): Promise<string> {
  await cp(src, dst, { recursive: true });
  const st = await SafetensorsFile.open(join(src, 'model.safetensors'));
  const rand = rng(e.seed ?? 11);
  const out: TensorToWrite[] = [];
  for (const t of st.tensors) {
    if (e.drop?.test(t.name)) continue;
    const name = e.rename ? e.rename(t.name) : t.name;
    if (e.nudge?.test(t.name)) {
      const a = Float32Array.from((await st.readAs(t.name, 'f32')) as Float32Array);
      const scale = Math.sqrt(a.reduce((s, x) => s + x * x, 0) / a.length);
      for (let i = 0; i < a.length; i++) a[i] += (rand() - 0.5) * 2 * (e.by ?? 0.05) * scale;
      out.push({ name, dtype: 'F32', shape: t.shape, data: a });
    } else out.push({ name, dtype: t.dtype, shape: t.shape, data: await st.readBytes(t.name) });
  }
  await st.close();
  out.push(...(e.add ?? []));
  await writeSafetensorsFile(join(dst, 'model.safetensors'), out, { format: 'pt' });
  if (e.config) {
    const c = JSON.parse(await readFile(join(src, 'config.json'), 'utf8'));
    e.config(c);
    await writeFile(join(dst, 'config.json'), JSON.stringify(c, null, 2));
  }
  return dst;
}
