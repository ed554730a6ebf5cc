// BERT end to end on the GPU against the independent CPU fp32 forward (src/reference/bert.ts),
// on tiny generated checkpoints in the Hugging Face layouts.
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { parseBertConfig } from '../../src/models/config.ts';
import type { LinearDType } from '../../src/ops/linear.ts';
import { bertClassify, bertEncode, clsPool, l2normalize, meanPool } from '../../src/reference/bert.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { writeTinyBert, type TinyBert } from '../../fixtures/tiny-bert.ts';

const TEXTS = ['the cat sat on the mat', 'a much longer sentence about the weather and the city in the morning', 'hello world'];
let dir: string;
let ctx: GpuContext;
const models: Record<string, TinyBert> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-bert-'));
  ctx = await GpuContext.create();
  // MiniLM-like proportions at a tiny size: head dim 32, 4 heads, GELU FFN 4x.
  // linearStd 0.075 gives each Linear the gain of a trained MiniLM's (std ~0.043 at hidden 384: 0.043*sqrt(384) = 0.075*sqrt(128)).
  const base = { hidden: 128, heads: 4, intermediate: 512, layers: 2, maxPositions: 64, linearStd: 0.075 };
  models.plain = await writeTinyBert(join(dir, 'plain'), { ...base, seed: 1 });
  models.prefixed = await writeTinyBert(join(dir, 'prefixed'), { ...base, prefix: 'bert.', dtype: 'BF16', seed: 2 });
  models.f16 = await writeTinyBert(join(dir, 'f16'), { ...base, dtype: 'F16', sharded: true, seed: 3 });
  models.cls = await writeTinyBert(join(dir, 'cls'), { ...base, prefix: 'bert.', labels: ['negative', 'neutral', 'positive'], seed: 4 });
}, 120_000);

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** CPU reference: tokenize exactly as the model does, then the fp32 forward. */
async function reference(m: TinyBert, texts: string[]) {
  const cfg = parseBertConfig(m.config);
  const files = await openModelFiles(m.dir);
  const tok = await loadTokenizer(files, { padTokenId: cfg.padTokenId });
  const enc = tok.encodeBatch(texts, { maxLength: cfg.maxPositions });
  const input = { ids: enc.ids, attentionMask: enc.attentionMask, tokenTypeIds: enc.tokenTypeIds, batch: enc.batch };
  return { cfg, enc, hidden: bertEncode(cfg, m.weights, input) };
}

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) [ab, aa, bb] = [ab + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]];
  return ab / Math.sqrt(aa * bb);
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('BERT f32 path against the CPU fp32 forward', () => {
  for (const name of ['plain', 'prefixed', 'f16']) {
    it(`${name}: last hidden state within 1e-4 (max abs)`, async () => {
      const m = await BertModel.load(models[name].dir, { dtype: 'f32', context: ctx });
      try {
        const got = await m.hidden(TEXTS);
        const ref = await reference(models[name], TEXTS);
        expect([got.batch, got.seqLen]).toEqual([ref.enc.batch, ref.enc.seqLen]);
        const err = maxAbs(got.data, ref.hidden);
        expect(err).toBeLessThanOrEqual(1e-4);
        // pooled outputs too
        const emb = await m.embed(TEXTS, { normalize: true });
        const refEmb = l2normalize(meanPool(ref.hidden, ref.enc.attentionMask, ref.enc.batch), ref.cfg.hiddenSize);
        for (let i = 0; i < TEXTS.length; i++) expect(maxAbs(emb[i], refEmb.subarray(i * 128, (i + 1) * 128))).toBeLessThanOrEqual(1e-5);
        const cls = await m.embed(TEXTS, { pooling: 'cls' });
        const refCls = clsPool(ref.hidden, ref.enc.batch, ref.enc.seqLen);
        for (let i = 0; i < TEXTS.length; i++) expect(maxAbs(cls[i], refCls.subarray(i * 128, (i + 1) * 128))).toBeLessThanOrEqual(1e-4);
      } finally {
        m.dispose();
      }
    });
  }

  it('padding in a batch changes no embedding', async () => {
    const m = await BertModel.load(models.plain.dir, { dtype: 'f32', context: ctx });
    try {
      const together = await m.embed(TEXTS);
      for (let i = 0; i < TEXTS.length; i++) {
        const [alone] = await m.embed([TEXTS[i]]);
        expect(maxAbs(alone, together[i])).toBeLessThanOrEqual(1e-5);
      }
    } finally {
      m.dispose();
    }
  });

  it('classifies like the CPU head (pooler + classifier), labels from id2label', async () => {
    const m = await BertModel.load(models.cls.dir, { dtype: 'f32', context: ctx });
    try {
      const got = await m.classify(TEXTS);
      const ref = await reference(models.cls, TEXTS);
      const logits = bertClassify(ref.cfg, models.cls.weights, ref.hidden, ref.enc.batch, ref.enc.seqLen);
      for (let i = 0; i < TEXTS.length; i++) {
        const row = Array.from(logits.subarray(i * 3, i * 3 + 3));
        const best = row.indexOf(Math.max(...row));
        expect(got[i].label).toBe(['negative', 'neutral', 'positive'][best]);
        const z = row.map((v) => Math.exp(v - Math.max(...row)));
        const p = z.map((v) => v / z.reduce((s, x) => s + x, 0));
        expect(Math.abs(got[i].score - p[best])).toBeLessThanOrEqual(1e-4);
        expect(got[i].scores.reduce((s, x) => s + x.score, 0)).toBeCloseTo(1, 5);
      }
    } finally {
      m.dispose();
    }
  });

  it('follows a sentence-transformers export: 1_Pooling (cls) and a Normalize module', async () => {
    const st = join(dir, 'st');
    await cp(models.plain.dir, st, { recursive: true });
    await mkdir(join(st, '1_Pooling'));
    await writeFile(join(st, '1_Pooling/config.json'), JSON.stringify({ word_embedding_dimension: 128, pooling_mode_cls_token: true, pooling_mode_mean_tokens: false }));
    await writeFile(join(st, 'modules.json'), JSON.stringify([
      { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
      { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
      { idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' },
    ]));
    const m = await BertModel.load(st, { dtype: 'f32', context: ctx });
    try {
      expect(m.pooling).toEqual({ pooling: 'cls', normalize: true });
      const [byDefault, explicit] = [await m.embed(TEXTS), await m.embed(TEXTS, { pooling: 'cls', normalize: true })];
      for (let i = 0; i < TEXTS.length; i++) expect(Array.from(byDefault[i])).toEqual(Array.from(explicit[i]));
      expect(Math.hypot(...byDefault[0])).toBeCloseTo(1, 5);
    } finally {
      m.dispose();
    }
    await writeFile(join(st, '1_Pooling/config.json'), JSON.stringify({ pooling_mode_max_tokens: true }));
    await expect(BertModel.load(st, { dtype: 'f32', context: ctx })).rejects.toThrow(/enables pooling_mode_max_tokens; webq implements exactly one of/);
  });

  it('a model without a classifier head says so', async () => {
    const m = await BertModel.load(models.plain.dir, { dtype: 'f32', context: ctx });
    try {
      await expect(m.classify(['x'])).rejects.toThrow(/has no pooler\/classifier weights/);
      await expect(m.embed([])).rejects.toThrow(/no texts/);
      // Past the context (64 positions here): truncated by default, an error on request.
      const long = Array(80).fill('cat').join(' ');
      expect((await m.embed([long])).length).toBe(1);
      await expect(m.embed(['short', long], { truncate: false })).rejects.toThrow(/text 2 is .*64/);
    } finally {
      m.dispose();
    }
  });
});

describe('quantized BERT against fp32 (cosine of mean-pooled embeddings)', () => {
  const bounds: [LinearDType, number][] = [['f16', 0.999], ['q8', 0.999], ['w8a8', 0.999], ['q4', 0.99], ['w4a8', 0.99]];
  for (const [dtype, bound] of bounds) {
    it(`${dtype}: cosine >= ${bound}`, async () => {
      const ref = await reference(models.plain, TEXTS);
      const refEmb = meanPool(ref.hidden, ref.enc.attentionMask, ref.enc.batch);
      // q4 as asymmetric groups of 32 with an int4 table, what this bound was set for: on this
      // small random BERT (Linear std 0.1, no outlier channels) the q4 default (symmetric groups of
      // 64, int8 table rows; bert-q4.test.ts checks it on a BERT with outlier channels) measured
      // 0.98882 at worst, asymmetric groups of 32 at least 0.99 (README "BERT at q4").
      const q4 = dtype === 'q4' ? { group: 32, symmetric: false, embeddings: 'int4' as const } : {};
      const m = await BertModel.load(models.plain.dir, { dtype, context: ctx, ...q4 });
      try {
        const emb = await m.embed(TEXTS);
        for (let i = 0; i < TEXTS.length; i++) {
          const c = cosine(emb[i], refEmb.subarray(i * 128, (i + 1) * 128));
          expect(c, `${dtype} text ${i}`).toBeGreaterThanOrEqual(bound);
        }
        expect(m.weightBytes).toBeGreaterThan(0);
      } finally {
        m.dispose();
      }
    });
  }
});

describe('GPU hygiene across calls', () => {
  it('repeated embeds of the same shape settle: no new pipelines, bind groups, uniforms or buffers', async () => {
    const m = await BertModel.load(models.plain.dir, { dtype: 'q8', context: ctx });
    try {
      // The first call compiles and allocates; the second may still pair pooled buffers with
      // kernels in a new order (the pool starts non-empty); from then on nothing is created.
      await m.embed(TEXTS);
      const first = await m.embed(TEXTS);
      const before = ctx.stats();
      const again = await m.embed(TEXTS);
      expect(ctx.stats()).toEqual(before);
      for (let i = 0; i < TEXTS.length; i++) expect(Array.from(again[i])).toEqual(Array.from(first[i]));
    } finally {
      m.dispose();
    }
  });
});
