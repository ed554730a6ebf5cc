// embeddings.create (OpenAI's shape) on a tiny BERT: vectors equal embed()'s, dimensions cut and
// renormalize, base64 is the float32 little-endian bytes, usage counts the tokens, bad input errors.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-embeddings-');
let model: BertModel;
beforeAll(async () => {
  const t = await writeTinyBert(join(tmp.dir, 'bert'), { hidden: 64, heads: 2, intermediate: 128, layers: 2, maxPositions: 32, seed: 8 });
  model = await BertModel.load(t.dir, { dtype: 'f32' });
}, 60_000);
afterAll(() => model?.dispose());

describe('embeddings.create', () => {
  it('float and base64 vectors, dimensions, usage', async () => {
    const texts = ['the cat sat on the mat', 'hello world'];
    const want = await model.embed(texts);
    const r = await model.embeddings.create({ model: 'tiny', input: texts });
    expect(r.object).toBe('list');
    expect(r.model).toBe('tiny');
    expect(r.data.map((d) => d.index)).toEqual([0, 1]);
    r.data.forEach((d, i) => expect(d.embedding).toEqual(Array.from(want[i])));
    const b = await model.embeddings.create({ input: 'hello world', encoding_format: 'base64' });
    const bytes = Uint8Array.from(atob(b.data[0].embedding as string), (c) => c.charCodeAt(0));
    const dv = new DataView(bytes.buffer);
    const [alone] = await model.embed(['hello world']); // one text: no padding, as the request has
    expect(Array.from({ length: bytes.length / 4 }, (_, i) => dv.getFloat32(4 * i, true))).toEqual(Array.from(alone));
    const d = await model.embeddings.create({ input: texts, dimensions: 16 });
    for (const [i, e] of d.data.entries()) {
      const v = e.embedding as number[];
      expect(v.length).toBe(16);
      expect(Math.hypot(...v)).toBeCloseTo(1, 5);
      const n = Math.hypot(...want[i].slice(0, 16));
      v.forEach((x, k) => expect(x).toBeCloseTo(want[i][k] / n, 5));
    }
    expect(r.usage.prompt_tokens).toBeGreaterThan(8);
    expect(r.usage.total_tokens).toBe(r.usage.prompt_tokens);
  });

  it('bad input: a clear error', async () => {
    await expect(model.embeddings.create({ input: [] })).rejects.toThrow(/non-empty array of strings/);
    await expect(model.embeddings.create({ input: 'x', dimensions: 65 })).rejects.toThrow(/from 1 to 64/);
    await expect(model.embeddings.create({ input: 'x', encoding_format: 'int8' as 'float' })).rejects.toThrow(/'float' or 'base64'/);
  });
});
