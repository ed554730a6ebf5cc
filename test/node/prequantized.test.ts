// webq's pre-quantized checkpoints: `webq quantize` writes them, BertModel.load reads them, and the
// result equals quantizing the float checkpoint at load time.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { writeSafetensorsFile } from '../../src/io/safetensors/writer.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';

let dir: string;
let ctx: GpuContext;
const TEXTS = ['the cat sat on the mat', 'hello world'];

async function cli(...argv: string[]) {
  let out = '', err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-prequant-'));
  ctx = await GpuContext.create();
  await writeTinyBert(join(dir, 'float'), { hidden: 64, heads: 2, intermediate: 128, layers: 2, maxPositions: 32, prefix: 'bert.', labels: ['a', 'b'], seed: 9 });
}, 60_000);
afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('pre-quantized checkpoints', () => {
  for (const dtype of ['q4', 'q8', 'w8a8'] as const) {
    it(`${dtype}: quantize -> load gives the same embeddings and labels as quantizing at load`, async () => {
      const out = join(dir, `out-${dtype}`);
      const r = await cli('quantize', join(dir, 'float'), '--dtype', dtype, '--out', out);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).toContain(`linear weights as ${dtype}`);
      expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
      const st = await SafetensorsFile.open(join(out, 'model.safetensors'));
      expect(st.metadata['webq.dtype']).toBe(dtype);
      expect(st.has('bert.encoder.layer.0.attention.self.query.weight.qvalues')).toBe(true);
      expect(st.has('bert.encoder.layer.0.attention.self.query.weight')).toBe(false);
      await st.close();
      const pre = await BertModel.load(out, { context: ctx }); // dtype comes from the file
      const onLoad = await BertModel.load(join(dir, 'float'), { dtype, context: ctx });
      try {
        expect(pre.dtype).toBe(dtype);
        const [a, b] = [await pre.embed(TEXTS), await onLoad.embed(TEXTS)];
        for (let i = 0; i < TEXTS.length; i++) expect(Array.from(a[i])).toEqual(Array.from(b[i]));
        expect((await pre.classify(TEXTS)).map((c) => c.label)).toEqual((await onLoad.classify(TEXTS)).map((c) => c.label));
        expect(pre.weightBytes).toBe(onLoad.weightBytes);
      } finally {
        pre.dispose();
        onLoad.dispose();
      }
      await expect(BertModel.load(out, { dtype: 'f32', context: ctx })).rejects.toThrow(`is pre-quantized as ${dtype}; load it with dtype '${dtype}'`);
    });
  }

  it('a damaged pre-quantized tensor is an error naming it; quantize refuses bad options', async () => {
    const out = join(dir, 'out-q4');
    const st = await SafetensorsFile.open(join(out, 'model.safetensors'));
    const tensors = [];
    for (const t of st.tensors) {
      const bad = t.name === 'bert.encoder.layer.1.output.dense.weight.qscales';
      tensors.push({ name: t.name, dtype: t.dtype, shape: bad ? [t.shape[0] - 1, t.shape[1]] : t.shape, data: bad ? (await st.readBytes(t.name)).subarray(0, (t.shape[0] - 1) * t.shape[1] * 2) : await st.readBytes(t.name) });
    }
    const meta = { ...st.metadata };
    await st.close();
    const broken = join(dir, 'broken');
    await writeTinyBert(broken, { hidden: 64, heads: 2, intermediate: 128, layers: 2, maxPositions: 32, prefix: 'bert.', labels: ['a', 'b'], seed: 9 });
    await writeSafetensorsFile(join(broken, 'model.safetensors'), tensors, meta);
    await expect(BertModel.load(broken, { context: ctx })).rejects.toThrow(/bert\.encoder\.layer\.1\.output\.dense\.weight\.qscales" is F16 \[63, 2\], expected F16 or F32 \[64, 2\]/);
    expect((await cli('quantize', join(dir, 'float'), '--dtype', 'f16', '--out', join(dir, 'x'))).err).toMatch(/--dtype must be q8, q4, w8a8 or w4a8/);
    expect((await cli('quantize', join(dir, 'float'), '--dtype', 'q4')).err).toMatch(/--out DIR is required/);
    expect((await cli('quantize', out, '--dtype', 'q4', '--out', join(dir, 'y'))).err).toMatch(/already pre-quantized/);
    // An existing, non-empty output folder is refused and left as it was; no temporary folder stays.
    const r = await cli('quantize', join(dir, 'float'), '--dtype', 'q8', '--out', out);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/already exists and is not empty/);
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    expect((await readdir(dir)).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});
