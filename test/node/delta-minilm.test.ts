// The size target at full scale: a MiniLM-shaped q4 model (vocab 30522, hidden 384,
// 6 layers, FFN 1536) whose layer 3 feed-forward weights were fine-tuned ships as a delta under
// 1 MB, and the patched folder equals a fresh quantization of the new checkpoint byte for byte.
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { writeBertCheckpoint, MINILM_SHAPE } from '../../fixtures/bert-checkpoint.ts';
import { main } from '../../src/cli/main.ts';
import { editCheckpoint } from '../../fixtures/checkpoint-edit.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-delta-minilm-');

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

async function files(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of await readdir(dir, { recursive: true })) {
    const p = join(dir, f);
    if ((await stat(p)).isFile()) out[f] = createHash('sha256').update(await readFile(p)).digest('hex');
  }
  return out;
}

it('MiniLM-shaped q4: a one-layer FFN change is a delta under 1 MB; the patch equals a fresh quantization', async () => {
  const v1 = join(tmp.dir, 'v1');
  await writeBertCheckpoint(v1, MINILM_SHAPE);
  const v2 = await editCheckpoint(v1, join(tmp.dir, 'v2'), { nudge: /^encoder\.layer\.3\.(intermediate|output)\.dense\.weight$/ });
  const q1 = join(tmp.dir, 'q1');
  const q2 = join(tmp.dir, 'q2');
  expect((await cli('quantize', v1, '--dtype', 'q4', '--out', q1)).code).toBe(0);
  expect((await cli('quantize', v2, '--dtype', 'q4', '--out', q2)).code).toBe(0);
  const delta = join(tmp.dir, 'delta.safetensors');
  const d = await cli('diff', q1, v2, '--out', delta);
  expect(d.code).toBe(0);
  expect(d.out).toMatch(/2 changed, 0 added, 0 removed, 0 renamed/);
  const size = (await stat(delta)).size;
  const full = (await stat(join(q2, 'model.safetensors'))).size;
  const float = (await stat(join(v2, 'model.safetensors'))).size;
  // Measured: see the README's delta table (printed here for it).
  console.log(`MiniLM q4 delta: ${size} bytes; q4 model ${full} bytes; f32 checkpoint ${float} bytes`);
  expect(size).toBeLessThan(1024 * 1024);
  expect((await cli('patch', q1, delta)).code).toBe(0);
  expect(await files(q1)).toEqual(await files(q2));
}, 300_000);
