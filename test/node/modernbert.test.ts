// ModernBERT through the encoder loader, on the GPU, against the independent CPU fp32 forward
// (src/reference/modernbert.ts, written from transformers' modeling_modernbert.py), on tiny
// checkpoints in exactly the Hugging Face layout (fixtures/tiny-modernbert.ts): 4 layers with
// global attention every 3 (layers 0 and 3 global, 1 and 2 local), local_attention 8 (4 each side)
// and texts of up to ~30 tokens, so the window cuts most of a long row; LayerNorm outlier channels
// at 20x and 50x. Also: the byte-level BPE tokenizer, the classification head with mean and cls
// pooling, sentence-transformers pooling, q8/q4 against fp32, the CLI, and config/weights errors
// (GPTQ and AWQ: modernbert-calibrated.test.ts).
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
import { l2normalize, meanPool } from '../../src/reference/bert.ts';
import { modernBertClassify, modernBertEncode } from '../../src/reference/modernbert.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { writeTinyModernBert, type TinyModernBert } from '../../fixtures/tiny-modernbert.ts';

const TEXTS = [
  'the cat sat on the mat',
  'the people of the city found the river near the old house and the children saw a big tree where the mountain road came down to the sea',
  'hello world',
  'zyx qwv 42!',
  'a much longer sentence about the weather and the city in the morning when the sun is up',
];
const DOCS = ['the weather in the city', 'a cat on a mat', 'music and song', 'the morning sun over the river', 'hello'];
const QUERY = 'what is the weather like in the morning';

let dir: string;
let ctx: GpuContext;
const models: Record<string, TinyModernBert> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-modernbert-'));
  ctx = await GpuContext.create();
  const w = async (name: string, o: Parameters<typeof writeTinyModernBert>[1]) => (models[name] = await writeTinyModernBert(join(dir, name), o));
  // ModernBERT-embed's shape of export: bare ModernBertModel, mean pooling, normalized.
  await w('embed', { seed: 31, sentenceTransformers: { pooling: 'mean', normalize: true } });
  // Every bias config.json can turn on, a task-model prefix, BF16 storage, mean-pooled head.
  await w('cls', { seed: 32, prefix: 'model.', biases: true, dtype: 'BF16', labels: ['neg', 'neutral', 'pos'], pooling: 'mean', normOutliers: 25 });
  // A cross-encoder: one label, [CLS] pooling, no biases.
  await w('rerank', { seed: 33, prefix: 'model.', labels: ['LABEL_0'], pooling: 'cls' });
}, 120_000);

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function encode(m: TinyModernBert, texts: string[], pairs?: string[]) {
  const cfg = parseBertConfig(m.config);
  const tok = await loadTokenizer(await openModelFiles(m.dir), { padTokenId: cfg.padTokenId });
  const enc = tok.encodeBatch(texts, { maxLength: cfg.maxTokens, pairs });
  return { cfg, enc, input: { ids: enc.ids, attentionMask: enc.attentionMask, batch: enc.batch } };
}

/** Largest |a - b| over the real (unmasked) rows of [B*T, H]: what pooling and heads read. */
function maxAbsReal(a: ArrayLike<number>, b: ArrayLike<number>, mask: ArrayLike<number>, H: number): number {
  let m = 0;
  for (let r = 0; r < mask.length; r++) if (mask[r]) for (let i = 0; i < H; i++) m = Math.max(m, Math.abs(a[r * H + i] - b[r * H + i]));
  return m;
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) [ab, aa, bb] = [ab + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]];
  return ab / Math.sqrt(aa * bb);
}

describe('byte-level BPE tokenizer.json (ModernBERT / GPT-NeoX layout)', () => {
  it('merges words with and without the leading Ġ, falls back to bytes, and wraps [CLS] A [SEP] (B [SEP])', async () => {
    const m = models.embed;
    const v = m.vocab;
    const tok = await loadTokenizer(await openModelFiles(m.dir), { padTokenId: v.indexOf('[PAD]') });
    const one = tok.encode('hello world zyx!').ids.map((i) => v[i]);
    // Byte-level pieces: the text back when Ġ is read as a space; whole words where the merges reach them.
    expect([one[0], one.at(-1)]).toEqual(['[CLS]', '[SEP]']);
    expect(one.slice(1, -1).join('').replace(/Ġ/g, ' ')).toBe('hello world zyx!');
    expect(one).toContain('hello');
    expect(one.length).toBeLessThan('hello world zyx!'.length); // merged, not one token per byte
    const pair = tok.encode('hello', { pair: 'world' });
    expect(pair.ids.map((i) => v[i])).toEqual(['[CLS]', 'hello', '[SEP]', ...tok.encode('world').ids.slice(1, -1).map((i) => v[i]), '[SEP]']);
    expect(pair.ids.at(-1)).toBe(v.indexOf('[SEP]'));
    expect(tok.specialTokenCount(true)).toBe(3);
    const batch = tok.encodeBatch(['hello', 'hello world']);
    expect(batch.ids[batch.seqLen - 1]).toBe(v.indexOf('[PAD]'));
    // A non-ASCII character is two byte-level symbols, not an unknown token.
    expect(tok.encode('é').ids.length).toBe(4);
  });

  it('reads merges written as ["a", "b"] pairs (tokenizers >= 0.20) to the same ids', async () => {
    const p = await writeTinyModernBert(join(dir, 'pairs'), { seed: 31, pairMerges: true, layers: 1 });
    const [a, b] = [await loadTokenizer(await openModelFiles(models.embed.dir)), await loadTokenizer(await openModelFiles(p.dir))];
    for (const t of TEXTS) expect(b.encode(t).ids).toEqual(a.encode(t).ids);
  });
});

describe('config.json', () => {
  it('reads ModernBertConfig fields and defaults', () => {
    const c = parseBertConfig(models.cls.config);
    expect([c.family, c.head, c.typeVocabSize, c.layerNormEps, c.numLabels, c.maxTokens]).toEqual(['modernbert', 'dense-gelu-norm', 0, 1e-5, 3, 128]);
    expect(c.modern).toEqual({
      globalRopeTheta: 160000, localRopeTheta: 10000, globalEvery: 3, localHalfWindow: 4,
      normBias: true, attentionBias: true, mlpBias: true, classifierBias: true, classifierActivation: 'gelu', classifierPooling: 'mean',
    });
    // Newer transformers write rope_parameters and layer_types instead.
    const { global_rope_theta: _g, local_rope_theta: _l, ...rest } = models.embed.config;
    const n = parseBertConfig({ ...rest, layer_types: ['full_attention', 'sliding_attention', 'sliding_attention', 'full_attention'], rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 8e4 }, sliding_attention: { rope_type: 'default', rope_theta: 5e3 } } });
    expect([n.modern!.globalRopeTheta, n.modern!.localRopeTheta]).toEqual([8e4, 5e3]);
  });

  it('refuses what the forward does not do, in one line naming config.json and the field', () => {
    const bad = (patch: Record<string, unknown>) => () => parseBertConfig({ ...models.embed.config, ...patch }, 'm/config.json');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ hidden_activation: 'silu' }, /^m\/config\.json: hidden_activation "silu" is not supported/],
      [{ classifier_activation: 'gelu_new' }, /^m\/config\.json: classifier_activation "gelu_new" is not supported/],
      [{ classifier_pooling: 'max' }, /^m\/config\.json: classifier_pooling "max" is not supported/],
      [{ rope_scaling: { type: 'linear', factor: 2 } }, /^m\/config\.json: rope_scaling .* is not supported/],
      [{ rope_parameters: { full_attention: { rope_type: 'yarn', rope_theta: 1e4 } } }, /^m\/config\.json: rope_parameters\.full_attention\.rope_type "yarn" is not supported/],
      [{ layer_types: ['full_attention', 'full_attention', 'sliding_attention', 'full_attention'] }, /^m\/config\.json: layer_types .* is not supported/],
      [{ num_attention_heads: 3 }, /^m\/config\.json: hidden_size 64 \/ num_attention_heads 3/],
      [{ local_attention: 0 }, /^m\/config\.json: field "local_attention"/],
    ];
    for (const [patch, re] of cases) {
      expect(bad(patch)).toThrow(re);
      try {
        bad(patch)();
      } catch (e) {
        expect((e as Error).message).not.toContain('\n');
        expect((e as { code: string }).code).toMatch(/^CONFIG_/);
      }
    }
  });
});

describe('f32 last hidden state against the CPU fp32 forward (within 1e-3 on real tokens)', () => {
  for (const name of ['embed', 'cls']) {
    it(name, async () => {
      const m = models[name];
      const { cfg, enc, input } = await encode(m, TEXTS);
      expect(enc.seqLen).toBeGreaterThan(2 * cfg.modern!.localHalfWindow + 1); // the window cuts the long rows
      const want = modernBertEncode(cfg, m.weights, input);
      const model = await BertModel.load(m.dir, { dtype: 'f32', context: ctx });
      try {
        const got = await model.hidden(TEXTS);
        expect([got.batch, got.seqLen]).toEqual([enc.batch, enc.seqLen]);
        const err = maxAbsReal(got.data, want, enc.attentionMask, cfg.hiddenSize);
        console.log(`modernbert ${name}: f32 max |d| on real tokens ${err.toExponential(2)}`);
        expect(err).toBeLessThan(1e-3);
        // The test can tell: a global window everywhere, or one RoPE base for all layers, gives another state.
        const off = (patch: Partial<NonNullable<BertConfig['modern']>>) => maxAbsReal(modernBertEncode({ ...cfg, modern: { ...cfg.modern!, ...patch } }, m.weights, input), want, enc.attentionMask, cfg.hiddenSize);
        expect(off({ localHalfWindow: 1e9 })).toBeGreaterThan(0.05);
        expect(off({ localRopeTheta: cfg.modern!.globalRopeTheta })).toBeGreaterThan(0.05);
      } finally {
        model.dispose();
      }
    }, 120_000);
  }
});

describe('f16 activations (the shader-f16 path of every kernel) against the CPU fp32 forward', () => {
  it('embed: mean-pooled cosine >= 0.9999', async () => {
    const m = models.embed;
    const { cfg, enc, input } = await encode(m, TEXTS);
    const want = meanPool(modernBertEncode(cfg, m.weights, input), enc.attentionMask, enc.batch);
    const model = await BertModel.load(m.dir, { dtype: 'f16', context: ctx });
    try {
      expect(model.ctx.caps.f16).toBe(true); // lavapipe has shader-f16: this is the f16 path
      const got = await model.embed(TEXTS, { pooling: 'mean', normalize: false });
      const H = cfg.hiddenSize;
      const cos = got.map((v, i) => cosine(v, want.subarray(i * H, (i + 1) * H)));
      console.log(`modernbert embed f16: mean-pooled 1 - cosine vs fp32 max ${(1 - Math.min(...cos)).toExponential(2)}`);
      expect(Math.min(...cos)).toBeGreaterThanOrEqual(0.9999);
    } finally {
      model.dispose();
    }
  }, 120_000);
});

describe('embeddings and heads', () => {
  it('embed(): the sentence-transformers mean pooling, normalized, against the reference', async () => {
    const m = models.embed;
    const { cfg, enc, input } = await encode(m, TEXTS);
    const H = cfg.hiddenSize;
    const want = l2normalize(meanPool(modernBertEncode(cfg, m.weights, input), enc.attentionMask, enc.batch), H);
    const model = await BertModel.load(m.dir, { dtype: 'f32', context: ctx });
    try {
      const got = await model.embed(TEXTS);
      got.forEach((v, i) => {
        expect(Math.abs(Math.hypot(...v) - 1)).toBeLessThan(1e-5);
        expect(cosine(v, want.subarray(i * H, (i + 1) * H))).toBeGreaterThan(0.99999);
      });
    } finally {
      model.dispose();
    }
  }, 120_000);

  it('classify(): head.dense + gelu + head.norm + classifier on the mean-pooled state, logits within 1e-3', async () => {
    const m = models.cls;
    const { cfg, enc, input } = await encode(m, TEXTS);
    const hidden = modernBertEncode(cfg, m.weights, input);
    const logits = modernBertClassify(cfg, m.weights, hidden, enc.attentionMask, enc.batch);
    // The pooling matters: [CLS] would give other logits.
    const clsLogits = modernBertClassify({ ...cfg, modern: { ...cfg.modern!, classifierPooling: 'cls' } }, m.weights, hidden, enc.attentionMask, enc.batch);
    expect(Math.max(...logits.map((v, i) => Math.abs(v - clsLogits[i])))).toBeGreaterThan(0.05);
    const model = await BertModel.load(m.dir, { dtype: 'f32', context: ctx });
    try {
      const got = await model.classify(TEXTS);
      const L = cfg.numLabels;
      got.forEach((g, r) => {
        const row = logits.subarray(r * L, (r + 1) * L);
        const z = row.reduce((s, v) => s + Math.exp(v), 0);
        for (const s of g.scores) expect(Math.abs(s.score - Math.exp(row[Object.values(cfg.id2label!).indexOf(s.label)]) / z)).toBeLessThan(1e-4);
      });
      // Logits themselves: log-softmax differences recover them up to a constant per row.
      got.forEach((g, r) => {
        const ls = (lab: string) => Math.log(g.scores.find((s) => s.label === lab)!.score);
        expect(Math.abs(ls('pos') - ls('neg') - (logits[r * L + 2] - logits[r * L]))).toBeLessThan(1e-3);
      });
    } finally {
      model.dispose();
    }
  }, 120_000);

  it('rerank(): a one-label [CLS]-pooled cross-encoder, in the reference order', async () => {
    const m = models.rerank;
    const { cfg, enc, input } = await encode(m, DOCS.map(() => QUERY), DOCS);
    const logits = modernBertClassify(cfg, m.weights, modernBertEncode(cfg, m.weights, input), enc.attentionMask, enc.batch);
    const want = Array.from(logits, (v, index) => ({ index, score: 1 / (1 + Math.exp(-v)) })).sort((a, b) => b.score - a.score);
    const model = await BertModel.load(m.dir, { dtype: 'f32', context: ctx });
    try {
      const got = await model.rerank(QUERY, DOCS);
      expect(got.map((r) => r.index)).toEqual(want.map((r) => r.index));
      for (let i = 0; i < got.length; i++) expect(Math.abs(got[i].score - want[i].score)).toBeLessThan(1e-4);
      expect(new Set(got.map((r) => r.score.toFixed(4))).size).toBeGreaterThan(2);
    } finally {
      model.dispose();
    }
    const bare = await BertModel.load(models.embed.dir, { dtype: 'f32', context: ctx });
    try {
      await expect(bare.classify(TEXTS)).rejects.toThrow(/has no head\.dense\/head\.norm\/classifier weights.*ModernBertForSequenceClassification/);
    } finally {
      bare.dispose();
    }
  }, 120_000);
});

/**
 * Mean-pooled cosine of q8 / q4 (int8 activations, the default) against the fp32 reference, lowest
 * over TEXTS. Measured on lavapipe: embed q8 0.99778, q4 0.98566; cls q8 0.99965, q4 0.99522
 * (README's architecture table). The embed model's outlier channels are 20x, 20x and 50x, the cls
 * model's 25x, 25x and 62.5x (fixtures/tiny-modernbert.ts).
 */
const QUANT_FLOOR: Record<string, Partial<Record<LinearDType, number>>> = {
  embed: { q8: 0.997, q4: 0.98 },
  cls: { q8: 0.999, q4: 0.99 },
};

describe('q8 / q4 mean-pooled embeddings against fp32', () => {
  for (const [name, floors] of Object.entries(QUANT_FLOOR)) {
    for (const [dtype, floor] of Object.entries(floors) as [LinearDType, number][]) {
      it(`${name} ${dtype}: cosine >= ${floor}`, async () => {
        const m = models[name];
        const { cfg, enc, input } = await encode(m, TEXTS);
        const want = meanPool(modernBertEncode(cfg, m.weights, input), enc.attentionMask, enc.batch);
        const model = await BertModel.load(m.dir, { dtype, context: ctx });
        try {
          const got = await model.embed(TEXTS, { pooling: 'mean', normalize: false });
          const H = cfg.hiddenSize;
          const cos = got.map((v, i) => cosine(v, want.subarray(i * H, (i + 1) * H)));
          console.log(`modernbert ${name} ${dtype}: mean-pooled cosine vs fp32 min ${Math.min(...cos).toFixed(5)}`);
          expect(Math.min(...cos)).toBeGreaterThanOrEqual(floor);
        } finally {
          model.dispose();
        }
      }, 120_000);
    }
  }
});

describe('checkpoint errors name the tensor in the ModernBERT layout', () => {
  it('a bias config.json asks for, a layer the file lacks, a misshapen Wi', async () => {
    const m = await writeTinyModernBert(join(dir, 'broken'), { seed: 41, layers: 1 });
    const cfg = JSON.parse(await readFile(join(m.dir, 'config.json'), 'utf8'));
    await writeFile(join(m.dir, 'config.json'), JSON.stringify({ ...cfg, norm_bias: true }));
    await expect(BertModel.load(m.dir, { dtype: 'f32', context: ctx })).rejects.toThrow(/missing tensor "embeddings\.norm\.bias"; expected \[64\] in a bare modernbert layout/);
    await writeFile(join(m.dir, 'config.json'), JSON.stringify({ ...cfg, num_hidden_layers: 2 }));
    await expect(BertModel.load(m.dir, { dtype: 'f32', context: ctx })).rejects.toThrow(/missing tensor "layers\.1\.attn_norm\.weight"/);
    await writeFile(join(m.dir, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 48 }));
    await expect(BertModel.load(m.dir, { dtype: 'f32', context: ctx })).rejects.toThrow(/tensor "layers\.0\.mlp\.Wi\.weight" has shape \[192, 64\], expected \[96, 64\]/);
  }, 60_000);
});

describe('webq embed / classify / rerank on ModernBERT', () => {
  async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
    return { code, out, err };
  }

  it('embed --json, classify --json and rerank --json give the reference results', async () => {
    const e = models.embed;
    const x = await encode(e, TEXTS);
    const H = x.cfg.hiddenSize;
    const want = meanPool(modernBertEncode(x.cfg, e.weights, x.input), x.enc.attentionMask, x.enc.batch);
    const emb = await cli(['embed', e.dir, '--dtype', 'f32', '--json', ...TEXTS]);
    expect(emb.code, emb.err).toBe(0);
    const vecs = (JSON.parse(emb.out) as { embeddings: number[][] }).embeddings;
    vecs.forEach((v, i) => expect(cosine(v, want.subarray(i * H, (i + 1) * H))).toBeGreaterThan(0.99999));

    const c = models.cls;
    const y = await encode(c, TEXTS);
    const logits = modernBertClassify(y.cfg, c.weights, modernBertEncode(y.cfg, c.weights, y.input), y.enc.attentionMask, y.enc.batch);
    const labels = ['neg', 'neutral', 'pos'];
    const top = TEXTS.map((_, r) => labels[[0, 1, 2].reduce((a, b) => (logits[r * 3 + b] > logits[r * 3 + a] ? b : a), 0)]);
    const cls = await cli(['classify', c.dir, '--dtype', 'f32', '--json', ...TEXTS]);
    expect(cls.code, cls.err).toBe(0);
    expect(cls.out).toContain(top[0]);
    expect(JSON.stringify(JSON.parse(cls.out))).toMatch(new RegExp(top.map((t) => `"label":"${t}"`).join('.*')));

    const r = models.rerank;
    const z = await encode(r, DOCS.map(() => QUERY), DOCS);
    const rl = modernBertClassify(z.cfg, r.weights, modernBertEncode(z.cfg, r.weights, z.input), z.enc.attentionMask, z.enc.batch);
    const order = Array.from(rl, (v, i) => [v, i]).sort((a, b) => b[0] - a[0]).map((p) => p[1]);
    const rr = await cli(['rerank', r.dir, '--query', QUERY, '--dtype', 'f32', '--json', ...DOCS]);
    expect(rr.code, rr.err).toBe(0);
    expect((JSON.parse(rr.out) as { index: number }[]).map((p) => p.index)).toEqual(order);
  }, 180_000);

  for (const dtype of ['q8', 'q4'] as const) {
    it(`webq quantize --dtype ${dtype}: the file loads to the logits quantizing at load gives`, async () => {
      const m = models.cls;
      const out = join(dir, `cls-${dtype}`);
      const r = await cli(['quantize', m.dir, '--dtype', dtype, '--out', out]);
      expect(r.code, r.err).toBe(0);
      const [atLoad, file] = [await BertModel.load(m.dir, { dtype, context: ctx }), await BertModel.load(out, { context: ctx })];
      try {
        expect(file.dtype).toBe(dtype);
        expect(file.weightBytes).toBe(atLoad.weightBytes);
        const [a, b] = [await atLoad.classify(TEXTS), await file.classify(TEXTS)];
        a.forEach((x, i) => x.scores.forEach((s) => expect(Math.abs(s.score - b[i].scores.find((y) => y.label === s.label)!.score)).toBeLessThan(1e-4)));
      } finally {
        atLoad.dispose();
        file.dispose();
      }
    }, 120_000);
  }
});
