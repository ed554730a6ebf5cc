// Matryoshka dimensions: embed(texts, { dimensions }) keeps the first D values and normalizes them
// again when the model's vectors are normalized; `webq embed --dimensions`, embeddings.create and
// the server's /v1/embeddings "dimensions" do the same; a bad D is an error naming the option.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { checkDimensions, truncateEmbedding } from '../../src/api/matryoshka.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { createApp } from '../../src/serve/app.ts';
import type { ModelRegistry, ServedModel } from '../../src/serve/models.ts';
import { ModelQueue } from '../../src/serve/queue.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';

const TEXTS = ['the cat sat on the mat', 'hello world'];
let dir: string;
let ctx: GpuContext;
let model: BertModel;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-matryoshka-'));
  ctx = await GpuContext.create();
  await writeTinyBert(dir, { hidden: 32, seed: 7 });
  model = await BertModel.load(dir, { dtype: 'f32', context: ctx });
}, 60_000);

afterAll(async () => {
  model?.dispose();
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

const norm = (v: ArrayLike<number>) => Math.hypot(...Array.from(v));

describe('embed(texts, { dimensions })', () => {
  it('normalized vectors: the first D values of the full vector, at unit length again', async () => {
    const full = await model.embed(TEXTS, { normalize: true });
    for (const D of [1, 8, 31]) {
      const cut = await model.embed(TEXTS, { normalize: true, dimensions: D });
      cut.forEach((v, i) => {
        expect(v.length).toBe(D);
        expect(norm(v)).toBeCloseTo(1, 5);
        const n = norm(full[i].subarray(0, D));
        v.forEach((x, k) => expect(Math.abs(x - full[i][k] / n)).toBeLessThan(1e-6));
      });
    }
    // D equal to the hidden size changes nothing.
    expect(await model.embed(TEXTS, { normalize: true, dimensions: 32 })).toEqual(full);
  });

  it('unnormalized vectors are only cut', async () => {
    const full = await model.embed(TEXTS, { normalize: false });
    const cut = await model.embed(TEXTS, { normalize: false, dimensions: 5 });
    cut.forEach((v, i) => expect(Array.from(v)).toEqual(Array.from(full[i].subarray(0, 5))));
  });

  it('0, more than the hidden size, a fraction or a string: BAD_OPTION naming dimensions and the range', async () => {
    for (const bad of [0, 33, 2.5, '8' as unknown as number, Number.NaN]) {
      await expect(model.embed(TEXTS, { dimensions: bad })).rejects.toMatchObject({ code: 'BAD_OPTION', message: expect.stringMatching(/^embed\(\): dimensions must be an integer from 1 to 32 \(the model's embedding size\), got /) });
    }
    expect(() => checkDimensions(-1, 8, 'x')).toThrow(/x: dimensions must be an integer from 1 to 8 .* got -1/);
    expect(Array.from(truncateEmbedding(Float32Array.of(3, 4, 12), 2, true))).toEqual([0.6000000238418579, 0.800000011920929]);
  });

  it('embeddings.create shortens to unit length, as OpenAI does', async () => {
    const r = await model.embeddings.create({ input: TEXTS, dimensions: 4 });
    const full = await model.embed(TEXTS);
    r.data.forEach((d, i) => {
      const v = d.embedding as number[];
      expect(norm(v)).toBeCloseTo(1, 5);
      expect(v[0]).toBeCloseTo(full[i][0] / norm(full[i].subarray(0, 4)), 5);
    });
  });
});

describe('webq embed --dimensions', () => {
  const cli = async (argv: string[]) => {
    let out = '';
    let err = '';
    const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
    return { code, out, err };
  };
  it('--json prints D-dimensional unit vectors with --normalize; a bad D is a usage error or names the range', async () => {
    const r = await cli(['embed', dir, '--dtype', 'f32', '--normalize', '--dimensions', '6', '--json', ...TEXTS]);
    expect(r.code).toBe(0);
    const { dims, embeddings } = JSON.parse(r.out) as { dims: number; embeddings: number[][] };
    expect(dims).toBe(6);
    const want = await model.embed(TEXTS, { normalize: true, dimensions: 6 });
    embeddings.forEach((v, i) => v.forEach((x, k) => expect(x).toBeCloseTo(want[i][k], 5)));
    const zero = await cli(['embed', dir, '--dimensions', '0', 'hello']);
    expect([zero.code, zero.err]).toEqual([1, expect.stringContaining('--dimensions "0": expected a positive integer')]);
    const big = await cli(['embed', dir, '--dtype', 'f32', '--dimensions', '99', 'hello']);
    expect(big.code).not.toBe(0);
    expect(big.err).toContain('dimensions must be an integer from 1 to 32');
  }, 60_000);
});

describe('/v1/embeddings "dimensions"', () => {
  it('shortens to unit length; more than the model makes is a 400 naming the field', async () => {
    const vectors = [Float32Array.of(3, 4, 12, 0), Float32Array.of(1, 0, 0, 0)];
    const bert = { config: { hiddenSize: 4 }, lowerCase: false, maxLength: 16, embed: async () => vectors.map((v) => v.slice()) };
    const served = { id: 'enc', kind: 'embedding', bert, tokenizer: { encode: () => ({ ids: [1, 2, 3] }) }, queue: new ModelQueue('enc', 4) } as unknown as ServedModel;
    const reg = { list: () => [served], gauges: () => [], pick: () => served } as unknown as ModelRegistry;
    const app = createApp(reg, { maxBodyBytes: 4096, maxTokens: 16, maxInputs: 8 });
    const post = (body: unknown) => app.request('/v1/embeddings', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const ok = await (await post({ input: ['a', 'b'], dimensions: 2 })).json();
    expect(ok.data.map((d: { embedding: number[] }) => d.embedding)).toEqual([[0.6000000238418579, 0.800000011920929], [1, 0]]);
    const full = await (await post({ input: ['a'], dimensions: 4 })).json();
    expect(full.data[0].embedding).toEqual([3, 4, 12, 0]);
    const bad = await post({ input: ['a'], dimensions: 5 });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatchObject({ param: 'dimensions', message: expect.stringContaining('ask for 4 or fewer') });
  });
});
