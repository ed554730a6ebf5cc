// RoBERTa, XLM-RoBERTa and DistilBERT through the one encoder forward, on the GPU, against the
// independent CPU fp32 forward (src/reference/bert.ts), on tiny checkpoints written in each
// family's Hugging Face layout and config fields (fixtures/tiny-bert.ts), with two LayerNorm outlier
// channels at 20x as trained encoders have. Also: the Unigram tokenizer, classification heads,
// cross-encoder reranking, and the errors for what does not fit.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { parseBertConfig, type BertConfig } from '../../src/models/config.ts';
import type { LinearDType } from '../../src/ops/linear.ts';
import { bertClassify, bertEncode, meanPool } from '../../src/reference/bert.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { writeTinyBert, type TinyBert, type TinyBertOptions } from '../../fixtures/tiny-bert.ts';

// The last text is past 32 tokens, so MPNet's distances reach the logarithmic buckets' edges (16, 32).
const TEXTS = [
  'the cat sat on the mat',
  'a much longer sentence about the weather and the city in the morning',
  'hello world',
  'zyx qwv',
  'the people of the city found the river near the old house and the children saw a big tree where the mountain road came down to the sea in the long summer night',
];
const DOCS = ['the weather in the city', 'a cat on a mat', 'music and song', 'the morning sun over the river', 'hello'];
const QUERY = 'what is the weather like in the morning';
const BASE: TinyBertOptions = { hidden: 64, heads: 4, intermediate: 128, layers: 2, maxPositions: 48, normOutliers: 20 };

let dir: string;
let ctx: GpuContext;
const models: Record<string, TinyBert> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-encoders-'));
  ctx = await GpuContext.create();
  const w = (name: string, o: TinyBertOptions) => writeTinyBert(join(dir, name), { ...BASE, ...o }).then((m) => (models[name] = m));
  await w('xlmr', { family: 'xlm-roberta', seed: 11 });
  await w('roberta', { family: 'roberta', prefix: 'roberta.', dtype: 'BF16', seed: 12 });
  await w('distilbert', { family: 'distilbert', seed: 13 });
  await w('mpnet', { family: 'mpnet', seed: 18 });
  await w('mpnetCls', { family: 'mpnet', prefix: 'mpnet.', labels: ['a', 'b'], seed: 19 });
  await w('distilbertSin', { family: 'distilbert', sinusoidal: true, prefix: 'distilbert.', seed: 14 });
  await w('xlmrCls', { family: 'xlm-roberta', prefix: 'roberta.', labels: ['no', 'maybe', 'yes'], seed: 15 });
  await w('distilCls', { family: 'distilbert', prefix: 'distilbert.', labels: ['negative', 'positive'], seed: 16 });
  await w('reranker', { family: 'xlm-roberta', prefix: 'roberta.', labels: ['LABEL_0'], seed: 17 });
}, 120_000);

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** Tokenizes as the model does (token types only for BERT: these families' tokenizers return none). */
async function encode(m: TinyBert, texts: string[], pairs?: string[]) {
  const cfg = parseBertConfig(m.config);
  const tok = await loadTokenizer(await openModelFiles(m.dir), { padTokenId: cfg.padTokenId });
  const enc = tok.encodeBatch(texts, { maxLength: cfg.maxTokens, pairs });
  return { cfg, enc, input: { ids: enc.ids, attentionMask: enc.attentionMask, batch: enc.batch } };
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) [ab, aa, bb] = [ab + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]];
  return ab / Math.sqrt(aa * bb);
}

describe('SentencePiece-Unigram tokenizer.json (XLM-R layout)', () => {
  it('splits into ▁pieces, falls back to characters, and builds <s> A </s> </s> B </s> pairs with type ids 0', async () => {
    const tok = await loadTokenizer(await openModelFiles(models.xlmr.dir), { padTokenId: 1 });
    const v = models.xlmr.vocab;
    const one = tok.encode('hello world zyx');
    expect(one.ids.map((i) => v[i])).toEqual(['<s>', '▁hello', '▁world', '▁z', 'y', 'x', '</s>']);
    const pair = tok.encode('hello', { pair: 'world' });
    expect(pair.ids.map((i) => v[i])).toEqual(['<s>', '▁hello', '</s>', '</s>', '▁world', '</s>']);
    expect(tok.specialTokenCount(true)).toBe(4);
    const batch = tok.encodeBatch(['hello', 'hello world']);
    expect(Array.from(batch.ids.subarray(0, batch.seqLen))).toContain(1); // padded with <pad> = 1
  });
});

describe('config.json of each family', () => {
  it('reads positions, heads, sizes and defaults per model_type', () => {
    const p = parseBertConfig(models.mpnet.config);
    expect([p.family, p.positions, p.paddingIdx, p.relativeBuckets, p.typeVocabSize, p.head, p.maxTokens]).toEqual(['mpnet', 'after-padding', 1, 32, 0, 'dense-tanh', 48]);
    const x = parseBertConfig(models.xlmr.config);
    expect([x.family, x.positions, x.head, x.padTokenId, x.maxPositions, x.maxTokens, x.typeVocabSize, x.layerNormEps]).toEqual(['xlm-roberta', 'after-padding', 'dense-tanh', 1, 50, 48, 1, 1e-5]);
    const d = parseBertConfig(models.distilbert.config);
    expect([d.family, d.positions, d.head, d.hiddenSize, d.numLayers, d.numHeads, d.intermediateSize, d.typeVocabSize, d.maxTokens]).toEqual(['distilbert', 'absolute', 'dense-relu', 64, 2, 4, 128, 0, 48]);
  });

  it('refuses what the forward does not do, naming config.json and the field', () => {
    const bad = (family: TinyBert, patch: Record<string, unknown>) => () => parseBertConfig({ ...family.config, ...patch }, 'm/config.json');
    expect(bad(models.distilbert, { activation: 'relu' })).toThrow(/m\/config\.json: activation "relu" is not supported/);
    expect(bad(models.distilbert, { sinusoidal_pos_embds: 'yes' })).toThrow(/sinusoidal_pos_embds/);
    expect(bad(models.xlmr, { position_embedding_type: 'relative_key' })).toThrow(/m\/config\.json: position_embedding_type "relative_key" is not supported/);
    expect(bad(models.xlmr, { max_position_embeddings: 2 })).toThrow(/max_position_embeddings/);
    expect(bad(models.distilbert, { n_heads: 5 })).toThrow(/dim 64 is not divisible by n_heads 5/);
    expect(bad(models.mpnet, { relative_attention_num_buckets: 64 })).toThrow(/m\/config\.json: field "relative_attention_num_buckets".*32/);
    try {
      bad(models.xlmr, { hidden_act: 'gelu_new' })();
      expect.unreachable();
    } catch (e) {
      expect((e as { code: string }).code).toBe('CONFIG_UNSUPPORTED_FEATURE');
    }
  });
});

describe('f32 last hidden state against the CPU fp32 forward (within 1e-3, padding rows included)', () => {
  for (const name of ['xlmr', 'roberta', 'distilbert', 'distilbertSin', 'mpnet']) {
    it(name, async () => {
      const m = models[name];
      const { cfg, enc, input } = await encode(m, TEXTS);
      const want = bertEncode(cfg, m.weights, input);
      const model = await BertModel.load(m.dir, { dtype: 'f32', context: ctx });
      try {
        const got = await model.hidden(TEXTS);
        expect([got.batch, got.seqLen]).toEqual([enc.batch, enc.seqLen]);
        const err = maxAbs(got.data, want);
        expect(err).toBeLessThan(1e-3);
        if (cfg.positions === 'after-padding') {
          // The test can tell: BERT's 0..T-1 positions give another hidden state.
          const absolute: BertConfig = { ...cfg, positions: 'absolute' };
          expect(maxAbs(bertEncode(absolute, m.weights, input), want)).toBeGreaterThan(0.05);
        }
        if (cfg.relativeBuckets > 0) {
          // ... and so does leaving out MPNet's relative position bias.
          const noBias: BertConfig = { ...cfg, relativeBuckets: 0 };
          expect(maxAbs(bertEncode(noBias, m.weights, input), want)).toBeGreaterThan(0.05);
        }
      } finally {
        model.dispose();
      }
    }, 60_000);
  }
});

/**
 * Mean-pooled cosine of q8 / q4 (int8 activations, the default) against the fp32 reference, lowest
 * over TEXTS. Measured on lavapipe: xlmr q8 0.99973, q4 0.99784; distilbert q8 0.99997, q4 0.98457
 * (README's architecture table).
 */
const QUANT_FLOOR: Record<string, Partial<Record<LinearDType, number>>> = {
  xlmr: { q8: 0.9995, q4: 0.995 },
  distilbert: { q8: 0.9995, q4: 0.98 },
  mpnet: { q8: 0.9995, q4: 0.98 },
};

describe('q8 / q4 mean-pooled embeddings against fp32', () => {
  for (const [name, floors] of Object.entries(QUANT_FLOOR)) {
    for (const [dtype, floor] of Object.entries(floors) as [LinearDType, number][]) {
      it(`${name} ${dtype}: cosine >= ${floor}`, async () => {
        const m = models[name];
        const { cfg, enc, input } = await encode(m, TEXTS);
        const want = meanPool(bertEncode(cfg, m.weights, input), enc.attentionMask, enc.batch);
        const model = await BertModel.load(m.dir, { dtype, context: ctx });
        try {
          const got = await model.embed(TEXTS, { pooling: 'mean', normalize: false });
          const H = cfg.hiddenSize;
          const cos = got.map((v, i) => cosine(v, want.subarray(i * H, (i + 1) * H)));
          console.log(`${name} ${dtype}: mean-pooled cosine vs fp32 min ${Math.min(...cos).toFixed(5)}`);
          expect(Math.min(...cos)).toBeGreaterThanOrEqual(floor);
        } finally {
          model.dispose();
        }
      }, 60_000);
    }
  }
});

describe('sequence classification heads', () => {
  for (const name of ['xlmrCls', 'distilCls', 'mpnetCls']) {
    it(`${name}: softmax of the head's logits within 1e-4 of the reference`, async () => {
      const m = models[name];
      const { cfg, enc, input } = await encode(m, TEXTS);
      const logits = bertClassify(cfg, m.weights, bertEncode(cfg, m.weights, input), enc.batch, enc.seqLen);
      const model = await BertModel.load(m.dir, { dtype: 'f32', context: ctx });
      try {
        const got = await model.classify(TEXTS);
        const L = cfg.numLabels;
        got.forEach((g, r) => {
          const row = logits.subarray(r * L, (r + 1) * L);
          const z = row.reduce((s, v) => s + Math.exp(v), 0);
          for (const s of g.scores) expect(Math.abs(s.score - Math.exp(row[Object.values(cfg.id2label!).indexOf(s.label)]) / z)).toBeLessThan(1e-4);
        });
      } finally {
        model.dispose();
      }
    }, 60_000);
  }
});

describe('rerank: a one-label XLM-R cross-encoder', () => {
  it('scores sigmoid(logit) of (query, doc) pairs, sorted as the reference orders them', async () => {
    const m = models.reranker;
    const { cfg, enc, input } = await encode(m, DOCS.map(() => QUERY), DOCS);
    const logits = bertClassify(cfg, m.weights, bertEncode(cfg, m.weights, input), enc.batch, enc.seqLen);
    const want = Array.from(logits, (v, index) => ({ index, score: 1 / (1 + Math.exp(-v)) })).sort((a, b) => b.score - a.score);
    const model = await BertModel.load(m.dir, { dtype: 'f32', context: ctx });
    try {
      const got = await model.rerank(QUERY, DOCS);
      expect(got.map((r) => r.index)).toEqual(want.map((r) => r.index));
      for (let i = 0; i < got.length; i++) expect(Math.abs(got[i].score - want[i].score)).toBeLessThan(1e-4);
      expect(new Set(got.map((r) => r.score.toFixed(4))).size).toBeGreaterThan(2); // the scores differ: the order means something
      await expect(model.rerank('', DOCS)).rejects.toMatchObject({ code: 'EMPTY_TEXT' });
      await expect(model.rerank(QUERY, ['ok', '  '])).rejects.toThrow(/document 2 of 2 is empty/);
      await expect(model.rerank(QUERY, 'one doc' as unknown as string[])).rejects.toMatchObject({ code: 'BAD_TEXTS' });
    } finally {
      model.dispose();
    }
  }, 60_000);

  it('refuses a head with more than one label, and a model without a head', async () => {
    const cls = await BertModel.load(models.xlmrCls.dir, { dtype: 'f32', context: ctx });
    const bare = await BertModel.load(models.xlmr.dir, { dtype: 'f32', context: ctx });
    try {
      await expect(cls.rerank(QUERY, DOCS)).rejects.toThrow(/has 3 labels.*a cross-encoder reranker has one/);
      await expect(bare.rerank(QUERY, DOCS)).rejects.toMatchObject({ code: 'NO_CLASSIFIER' });
      await expect(bare.classify(TEXTS)).rejects.toMatchObject({ code: 'NO_CLASSIFIER' });
    } finally {
      cls.dispose();
      bare.dispose();
    }
  }, 60_000);
});

describe('checkpoint errors name the tensor in the family layout', () => {
  it('a DistilBERT without a q_lin weight, a RoBERTa head without out_proj', async () => {
    const d = await writeTinyBert(join(dir, 'd-missing'), { ...BASE, family: 'distilbert', omit: ['encoder.layer.1.attention.self.query.weight'], seed: 21 });
    await expect(BertModel.load(d.dir, { dtype: 'f32', context: ctx })).rejects.toThrow(/missing tensor "transformer\.layer\.1\.attention\.q_lin\.weight"/);
    const r = await writeTinyBert(join(dir, 'r-half-head'), { ...BASE, family: 'roberta', prefix: 'roberta.', labels: ['a', 'b'], omit: ['classifier.out_proj.weight', 'classifier.out_proj.bias'], seed: 22 });
    await expect(BertModel.load(r.dir, { dtype: 'f32', context: ctx })).rejects.toThrow(/has "classifier\.dense\.weight" but no "classifier\.out_proj\.weight"/);
  }, 60_000);

  it('a checkpoint whose model_type says xlm-roberta but whose tensors are BERT-named', async () => {
    const b = await writeTinyBert(join(dir, 'b-as-x'), { ...BASE, prefix: 'bert.', seed: 23 });
    const cfg = JSON.parse(await readFile(join(b.dir, 'config.json'), 'utf8'));
    await writeFile(join(b.dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 'xlm-roberta' }));
    await expect(BertModel.load(b.dir, { dtype: 'f32', context: ctx })).rejects.toThrow(/missing tensor "embeddings\.word_embeddings\.weight" \(also looked for "roberta\.embeddings/);
  }, 60_000);
});

describe('webq rerank / webq embed on these families', () => {
  async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
    return { code, out, err };
  }

  it('rerank --json lists the documents in the reference order; embed --json matches the reference', async () => {
    const m = models.reranker;
    const { cfg, enc, input } = await encode(m, DOCS.map(() => QUERY), DOCS);
    const logits = bertClassify(cfg, m.weights, bertEncode(cfg, m.weights, input), enc.batch, enc.seqLen);
    const order = Array.from(logits, (v, i) => [v, i]).sort((a, b) => b[0] - a[0]).map((r) => r[1]);
    const r = await cli(['rerank', m.dir, '--query', QUERY, '--dtype', 'f32', '--json', ...DOCS]);
    expect(r.code, r.err).toBe(0);
    const rows = JSON.parse(r.out) as { index: number; score: number; text: string }[];
    expect(rows.map((x) => x.index)).toEqual(order);
    expect(rows.map((x) => x.text)).toEqual(order.map((i) => DOCS[i]));
    const text = await cli(['rerank', m.dir, '-q', QUERY, '--dtype', 'f32', ...DOCS]);
    expect(text.out.trimEnd().split('\n').map((l) => Number(l.trim().split(/\s+/)[0]))).toEqual(order);

    const x = models.xlmr;
    const e = await encode(x, TEXTS);
    const want = meanPool(bertEncode(e.cfg, x.weights, e.input), e.enc.attentionMask, e.enc.batch);
    const emb = await cli(['embed', x.dir, '--dtype', 'f32', '--json', ...TEXTS]);
    expect(emb.code, emb.err).toBe(0);
    const vecs = (JSON.parse(emb.out) as { embeddings: number[][] }).embeddings;
    const H = e.cfg.hiddenSize;
    // Directions: whether embed normalizes depends on the model's sentence-transformers config.
    vecs.forEach((v, i) => expect(cosine(v, want.subarray(i * H, (i + 1) * H))).toBeGreaterThan(0.99999));
  }, 60_000);

  it('rerank without --query or documents is a usage error', async () => {
    const a = await cli(['rerank', models.reranker.dir, 'doc']);
    expect(a.code).not.toBe(0);
    expect(a.err).toContain('--query Q is required');
    const b = await cli(['rerank', models.reranker.dir, '--query', QUERY]);
    expect(b.code).not.toBe(0);
    expect(b.err).toContain('no documents to rank');
  });
});

describe('webq quantize on these families', () => {
  for (const name of ['xlmrCls', 'distilCls']) {
    it(`${name}: the q8 file loads to the logits quantizing at load gives`, async () => {
      const m = models[name];
      const out = join(dir, `${name}-q8`);
      let err = '';
      const code = await main(['quantize', m.dir, '--dtype', 'q8', '--out', out], { stdout: () => undefined, stderr: (t) => void (err += t) });
      expect(code, err).toBe(0);
      const [atLoad, file] = [await BertModel.load(m.dir, { dtype: 'q8', context: ctx }), await BertModel.load(out, { context: ctx })];
      try {
        expect(file.dtype).toBe('q8');
        const [a, b] = [await atLoad.classify(TEXTS), await file.classify(TEXTS)];
        a.forEach((r, i) => r.scores.forEach((s) => expect(Math.abs(s.score - b[i].scores.find((x) => x.label === s.label)!.score)).toBeLessThan(1e-3)));
      } finally {
        atLoad.dispose();
        file.dispose();
      }
    }, 60_000);
  }
});
