// Token classification (NER): *ForTokenClassification checkpoints of each encoder family in the
// Hugging Face layout (fixtures/tiny-bert.ts, task 'token'), their logits on the GPU against the
// CPU fp32 reference (src/reference/bert.ts), the pipeline's grouping rules on hand-made logits,
// character offsets, q8/q4 label agreement with f32, and the errors.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { tokenLogits, type EntityGroup, type TokenEntity } from '../../src/api/token-classification.ts';
import { groupTokens, type GroupOptions, type TokenRow } from '../../src/api/token-groups.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { openCheckpoint } from '../../src/io/safetensors/checkpoint.ts';
import { freeBertBatch, uploadBertBatch, uploadBertWeights } from '../../src/models/bert/bert.ts';
import { resolveBertWeights } from '../../src/models/bert/bert-weights.ts';
import { parseBertConfig } from '../../src/models/config.ts';
import { bertEncode, bertTokenLogits } from '../../src/reference/bert.ts';
import { alignOffsets } from '../../src/text/offsets.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { writeTinyBert, type TinyBert, type TinyEncoderFamily } from '../../fixtures/tiny-bert.ts';

const LABELS = ['O', 'B-PER', 'I-PER', 'B-LOC', 'I-LOC'];
const TEXTS = ['Hello world, the people of the city', 'the old house near the river', 'Zyx qwv played music'];

describe('grouping on constructed logits (transformers token-classification rules)', () => {
  // "[CLS] jean ##ne lives in new york ##er [SEP]" over "Jeanne lives in New Yorker".
  const text = 'Jeanne lives in New Yorker';
  const row: TokenRow = {
    ids: [2, 10, 11, 12, 13, 14, 15, 16, 3],
    tokens: ['[CLS]', 'jean', '##ne', 'lives', 'in', 'new', 'york', '##er', '[SEP]'],
    special: [true, false, false, false, false, false, false, false, true],
    offsets: [null, [0, 4], [4, 6], [7, 12], [13, 15], [16, 19], [20, 24], [24, 26], null],
  };
  // Per token, the probabilities wanted over LABELS (logits = log p, so the softmax gives them back).
  const P: number[][] = [
    [0.2, 0.2, 0.2, 0.2, 0.2], // [CLS]
    [0.1, 0.7, 0.1, 0.05, 0.05], // jean: B-PER .7
    [0.1, 0.1, 0.3, 0.45, 0.05], // ##ne: B-LOC .45 (disagrees with its word's first token)
    [0.9, 0.025, 0.025, 0.025, 0.025], // lives: O
    [0.8, 0.05, 0.05, 0.05, 0.05], // in: O
    [0.1, 0.1, 0.1, 0.6, 0.1], // new: B-LOC .6
    [0.1, 0.1, 0.1, 0.1, 0.6], // york: I-LOC .6
    [0.05, 0.05, 0.05, 0.05, 0.8], // ##er: I-LOC .8
    [0.2, 0.2, 0.2, 0.2, 0.2], // [SEP]
  ];
  const logits = Float32Array.from(P.flat(), Math.log);
  const names = new Map(row.ids.map((id, i) => [id, row.tokens[i]]));
  // WordPiece decoding: "##" pieces join the token before, others are separated by a space.
  const decode = (ids: number[]) => ids.map((id) => names.get(id)!).join(' ').replaceAll(' ##', '');
  const o = (aggregation: GroupOptions['aggregation']): GroupOptions => ({ aggregation, labels: LABELS, unkTokenId: 1, continuingSubwordPrefix: '##', decode });
  const round = (xs: (TokenEntity | EntityGroup)[]) => xs.map((x) => ({ ...x, score: Number(x.score.toFixed(6)) }));

  it("'none': every non-O token with its index (special tokens counted), stored token and offsets", () => {
    expect(round(groupTokens(text, row, logits, o('none')) as TokenEntity[])).toEqual([
      { entity: 'B-PER', score: 0.7, index: 1, word: 'jean', start: 0, end: 4 },
      { entity: 'B-LOC', score: 0.45, index: 2, word: '##ne', start: 4, end: 6 },
      { entity: 'B-LOC', score: 0.6, index: 5, word: 'new', start: 16, end: 19 },
      { entity: 'I-LOC', score: 0.6, index: 6, word: 'york', start: 20, end: 24 },
      { entity: 'I-LOC', score: 0.8, index: 7, word: '##er', start: 24, end: 26 },
    ]);
  });

  it("'simple': a B- tag starts a group, I- of the same type continues it; score is the mean", () => {
    expect(round(groupTokens(text, row, logits, o('simple')))).toEqual([
      { entity_group: 'PER', score: 0.7, word: 'jean', start: 0, end: 4 },
      { entity_group: 'LOC', score: 0.45, word: '##ne', start: 4, end: 6 }, // a lone piece decodes as itself, as in the pipeline
      { entity_group: 'LOC', score: Number(((0.6 + 0.6 + 0.8) / 3).toFixed(6)), word: 'new yorker', start: 16, end: 26 },
    ]);
  });

  it("'first' / 'max' / 'average': a word keeps one label", () => {
    // first: "jeanne" takes jean's B-PER .7.
    expect(round(groupTokens(text, row, logits, o('first')))).toEqual([
      { entity_group: 'PER', score: 0.7, word: 'jeanne', start: 0, end: 6 },
      { entity_group: 'LOC', score: Number(((0.6 + 0.6) / 2).toFixed(6)), word: 'new yorker', start: 16, end: 26 },
    ]);
    // max: jean's .7 beats ##ne's .45; "yorker" takes ##er's I-LOC .8.
    expect(round(groupTokens(text, row, logits, o('max')))).toEqual([
      { entity_group: 'PER', score: 0.7, word: 'jeanne', start: 0, end: 6 },
      { entity_group: 'LOC', score: Number(((0.6 + 0.8) / 2).toFixed(6)), word: 'new yorker', start: 16, end: 26 },
    ]);
    // average: jeanne = (.1,.4,.2,.25,.05) -> B-PER .4; yorker = (.075,.075,.075,.075,.7) -> I-LOC .7.
    expect(round(groupTokens(text, row, logits, o('average')))).toEqual([
      { entity_group: 'PER', score: 0.4, word: 'jeanne', start: 0, end: 6 },
      { entity_group: 'LOC', score: Number(((0.6 + 0.7) / 2).toFixed(6)), word: 'new yorker', start: 16, end: 26 },
    ]);
  });

  it('two B- tags in a row are two entities; ignoreLabels [] keeps the O groups; a bad aggregation is BAD_OPTION', () => {
    const two = Float32Array.from([P[0], P[5], P[5], P[5], P[3], P[3], P[5], P[6], P[0]].flat(), Math.log);
    const groups = groupTokens(text, row, two, { ...o('simple'), ignoreLabels: [] }) as EntityGroup[];
    expect(groups.map((g) => `${g.entity_group}:${g.word}`)).toEqual(['LOC:jean', 'LOC:##ne', 'LOC:lives', 'O:in new', 'LOC:yorker']);
    expect(() => groupTokens(text, row, logits, o('longest' as never))).toThrow(/aggregation must be one of 'none', 'simple', 'first', 'max', 'average', got "longest"/);
  });

  it('without a "##" prefix a token continues a word when no space touches its start', () => {
    const t = 'New Yorker';
    const r: TokenRow = { ids: [0, 5, 6, 7, 2], tokens: ['<s>', '▁New', '▁York', 'er', '</s>'], special: [true, false, false, false, true], offsets: [null, [0, 3], [4, 8], [8, 10], null] };
    const lg = Float32Array.from([P[0], P[5], P[5], P[6], P[0]].flat(), Math.log);
    const dec = (ids: number[]) => ids.map((id) => r.tokens[r.ids.indexOf(id)]).join('').replaceAll('▁', ' ').trim();
    // first: "New" (B-LOC) and "Yorker" (its first token's B-LOC) are two words, two B- groups.
    expect((groupTokens(t, r, lg, { ...o('first'), continuingSubwordPrefix: '', decode: dec }) as EntityGroup[]).map((g) => [g.word, g.start, g.end])).toEqual([
      ['New', 0, 3],
      ['Yorker', 4, 10],
    ]);
  });
});

describe('offsets recovered by alignment', () => {
  const id = (c: string) => c;
  it('WordPiece: lowercase and accents normalized per character, ## pieces, [UNK] by its neighbours', () => {
    const norm = (c: string) => c.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '');
    const text = 'Jörg  saw ✪✪ here';
    const got = alignOffsets(text, ['jo', '##rg', 'saw', '[UNK]', 'here'], { kind: 'raw', continuingPrefix: '##', normalize: norm, unknown: (i) => i === 3 });
    expect(got).toEqual([[0, 2], [2, 4], [6, 9], [10, 12], [13, 17]]);
  });
  it('byte-level BPE (Ġ spaces, a character split across two tokens) and SentencePiece (▁)', () => {
    // "é" is bytes C3 A9, written Ã© in GPT-2's byte alphabet; split into "Ġcaf" "Ã" "©".
    expect(alignOffsets('a café', ['a', 'Ġcaf', 'Ã', '©'], { kind: 'byte_level', continuingPrefix: '', normalize: id })).toEqual([[0, 1], [2, 5], [5, 6], [5, 6]]);
    expect(alignOffsets('New  York', ['▁New', '▁', 'York'], { kind: 'raw', continuingPrefix: '', normalize: id })).toEqual([[0, 3], [5, 5], [5, 9]]);
  });
});

describe('encodeWithOffsets on the test tokenizers', () => {
  const text = "Jörg's  CAFÉ, 東京 naïve";
  const spans = async (family: TinyEncoderFamily) => {
    const m = await writeTinyBert(join(dir, `tok-${family}`), { family, hidden: 8, heads: 2, layers: 1 });
    const tok = await loadTokenizer(await openModelFiles(m.dir));
    const r = tok.encodeWithOffsets(text);
    return r.tokens.map((t, i) => `${t}=${r.offsets[i] ? text.slice(...r.offsets[i]!) : '-'}`);
  };
  it('WordPiece (lowercase, accents stripped, CJK characters one [UNK] each) and Unigram (▁, <unk> runs)', async () => {
    expect(await spans('bert')).toEqual(['[CLS]=-', 'j=J', '##o=ö', '##r=r', '##g=g', "'='", 's=s', 'c=C', '##a=A', '##f=F', '##e=É', ',=,', '[UNK]=東', '[UNK]=京', 'n=n', '##a=a', '##i=ï', '##v=v', '##e=e', '[SEP]=-']);
    // The tiny Unigram vocabulary has no capitals and no accents: <unk> takes what lies between its neighbours.
    expect(await spans('xlm-roberta')).toEqual(['<s>=-', '▁=', '<unk>=Jö', 'r=r', 'g=g', "'='", 's=s', '▁=', '<unk>=CAFÉ', ',=,', '▁=', '<unk>=東京', '▁n=n', 'a=a', '<unk>=ï', 'v=v', 'e=e', '</s>=-']);
  });
});

const BASE = { hidden: 64, heads: 4, intermediate: 128, layers: 2, maxPositions: 48, normOutliers: 20, labels: LABELS, task: 'token' as const };
const FAMILIES: [TinyEncoderFamily, string][] = [
  ['bert', 'bert.'],
  ['roberta', 'roberta.'],
  ['xlm-roberta', 'roberta.'],
  ['distilbert', 'distilbert.'],
];
let dir: string;
let ctx: GpuContext;
const models: Record<string, TinyBert> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-tokcls-'));
  ctx = await GpuContext.create();
  for (const [i, [family, prefix]] of FAMILIES.entries()) models[family] = await writeTinyBert(join(dir, family), { ...BASE, family, prefix, seed: 40 + i });
  models.seq = await writeTinyBert(join(dir, 'seq'), { ...BASE, task: 'sequence', labels: ['a', 'b'], prefix: 'bert.', seed: 50 });
}, 120_000);

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function reference(m: TinyBert) {
  const cfg = parseBertConfig(m.config);
  const tok = await loadTokenizer(await openModelFiles(m.dir), { padTokenId: cfg.padTokenId });
  const enc = tok.encodeBatch(TEXTS, { maxLength: cfg.maxTokens });
  const logits = bertTokenLogits(cfg, m.weights, bertEncode(cfg, m.weights, { ids: enc.ids, attentionMask: enc.attentionMask, batch: enc.batch }));
  return { cfg, enc, logits };
}

describe('token classification on the GPU', () => {
  for (const [family] of FAMILIES) {
    it(`${family}: f32 logits of every token within 1e-3 of the CPU reference; tokenClassify's scores are their softmax`, async () => {
      const m = models[family];
      const { cfg, enc, logits } = await reference(m);
      const store = await openCheckpoint(m.dir);
      const w = await uploadBertWeights(ctx, store, cfg, resolveBertWeights(store, cfg), 'f32');
      const b = uploadBertBatch(ctx, cfg, enc);
      const got = await tokenLogits(ctx, w, cfg, b);
      freeBertBatch(b);
      w.dispose();
      let worst = 0;
      for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i] - logits[i]));
      expect(got.length).toBe(enc.batch * enc.seqLen * LABELS.length);
      console.log(`${family} f32 token logits: max abs diff ${worst.toExponential(2)} against the CPU reference`);
      expect(worst).toBeLessThan(1e-3);

      const model = await BertModel.load(m.dir, { dtype: 'f32', context: ctx });
      try {
        const rows = (await model.tokenClassify(TEXTS, { ignoreLabels: [] })) as TokenEntity[][];
        rows.forEach((tokens, r) => {
          expect(tokens.length).toBe(enc.lengths[r] - 2); // every token but the two special ones
          for (const t of tokens) {
            const z = logits.subarray((r * enc.seqLen + t.index) * 5, (r * enc.seqLen + t.index + 1) * 5);
            const max = Math.max(...z);
            const sum = z.reduce((s, v) => s + Math.exp(v - max), 0);
            expect(t.entity).toBe(LABELS[z.indexOf(max)]);
            expect(Math.abs(t.score - 1 / sum)).toBeLessThan(1e-4);
            // The token's text in the input: its stored form without ## / ▁, case folded.
            expect(TEXTS[r].slice(t.start, t.end).toLowerCase()).toBe(t.word.replace(/^##|^▁/, '').toLowerCase());
          }
        });
        const groups = (await model.tokenClassify(TEXTS, { aggregation: 'simple', ignoreLabels: [] })) as EntityGroup[][];
        groups.forEach((g, r) => {
          expect(g[0].start).toBe(0);
          expect(g[g.length - 1].end).toBe(TEXTS[r].length);
        });
      } finally {
        model.dispose();
      }
    }, 60_000);
  }

  it('q8 / q4 labels agree with f32 on most tokens (the agreement is printed)', async () => {
    const m = models.bert;
    const labels = async (dtype: 'f32' | 'q8' | 'q4') => {
      const model = await BertModel.load(m.dir, { dtype, context: ctx });
      try {
        return ((await model.tokenClassify(TEXTS, { ignoreLabels: [] })) as TokenEntity[][]).flat().map((t) => t.entity);
      } finally {
        model.dispose();
      }
    };
    const f32 = await labels('f32');
    for (const [dtype, floor] of [['q8', 0.95], ['q4', 0.8]] as const) {
      const q = await labels(dtype);
      const agree = q.filter((l, i) => l === f32[i]).length / f32.length;
      console.log(`token labels, ${dtype} vs f32: ${(agree * 100).toFixed(1)}% of ${f32.length} tokens agree`);
      expect(agree).toBeGreaterThanOrEqual(floor);
    }
  }, 120_000);

  for (const method of ['rtn', 'gptq']) {
    it(`webq quantize --method ${method}: the q4 file of a token classifier loads and labels as quantizing at load does`, async () => {
      const m = models.bert;
      const out = join(dir, `bert-q4-${method}`);
      let err = '';
      const code = await main(['quantize', m.dir, '--dtype', 'q4', '--method', method, '--out', out], { stdout: () => undefined, stderr: (t) => void (err += t) });
      expect(code, err).toBe(0);
      const [atLoad, file] = [await BertModel.load(m.dir, { dtype: 'q4', context: ctx }), await BertModel.load(out, { context: ctx })];
      try {
        expect(file.config.head).toBe('token');
        const [a, b] = [(await atLoad.tokenClassify(TEXTS, { ignoreLabels: [] })).flat() as TokenEntity[], (await file.tokenClassify(TEXTS, { ignoreLabels: [] })).flat() as TokenEntity[]];
        expect(b.map((t) => [t.index, t.start, t.end])).toEqual(a.map((t) => [t.index, t.start, t.end]));
        // RTN writes what quantizing at load makes; GPTQ (calibrated on the classifier's input too) only its own rounding.
        if (method === 'rtn') b.forEach((t, i) => expect(Math.abs(t.score - a[i].score)).toBeLessThan(1e-3));
        // GPTQ saw the classifier's input (every token's state): its codes differ from round-to-nearest's
        // (without that input GPTQ falls back to round-to-nearest for the unit).
        const codes = async (m: string) => (await openCheckpoint(join(dir, m))).readBytes('classifier.weight.qvalues');
        if (method === 'gptq') expect(Buffer.from(await codes('bert-q4-gptq')).equals(Buffer.from(await codes('bert-q4-rtn')))).toBe(false);
      } finally {
        atLoad.dispose();
        file.dispose();
      }
    }, 120_000);
  }

  it('a sequence classifier, a bad aggregation and a non-array ignoreLabels are typed errors', async () => {
    const seq = await BertModel.load(models.seq.dir, { dtype: 'f32', context: ctx });
    try {
      await expect(seq.tokenClassify(['hello'])).rejects.toMatchObject({ code: 'NO_CLASSIFIER', message: expect.stringMatching(/BertForSequenceClassification; token classification needs a BertForTokenClassification checkpoint/) });
    } finally {
      seq.dispose();
    }
    const model = await BertModel.load(models.bert.dir, { dtype: 'f32', context: ctx });
    try {
      await expect(model.tokenClassify(['hello'], { aggregation: 'longest' as never })).rejects.toMatchObject({ code: 'BAD_OPTION' });
      await expect(model.tokenClassify(['hello'], { ignoreLabels: 'O' as never })).rejects.toMatchObject({ code: 'BAD_OPTION' });
      await expect(model.classify(['hello'])).rejects.toMatchObject({ code: 'NO_CLASSIFIER' });
    } finally {
      model.dispose();
    }
  }, 60_000);

  it('webq classify --tokens --aggregation simple --json prints the entity spans', async () => {
    let out = '';
    const io = { stdout: (s: string) => void (out += s), stderr: () => undefined };
    const code = await main(['classify', models.bert.dir, '--tokens', '--aggregation', 'simple', '--dtype', 'f32', '--json', TEXTS[0]], io as never);
    expect(code).toBe(0);
    const rows = JSON.parse(out) as { text: string; entities: EntityGroup[] }[];
    const model = await BertModel.load(models.bert.dir, { dtype: 'f32', context: ctx });
    try {
      expect(rows).toEqual([{ text: TEXTS[0], entities: (await model.tokenClassify([TEXTS[0]], { aggregation: 'simple' }))[0] }]);
    } finally {
      model.dispose();
    }
  }, 60_000);
});
