// BertModel as sentence-transformers runs it: sentence_bert_config.json (max_seq_length,
// do_lower_case), truncation reported in the API and on the CLI's stderr, texts numbered from 1 in
// messages, and the texts argument checked (an array of non-empty strings).
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-bert-st-');
/** 12 words the tiny vocabulary has in lowercase: 14 tokens with [CLS] and [SEP]. */
const LONG = 'The Cat and the Dog went to the River with the Fish';
/** What sentence-transformers feeds the model for LONG at max_seq_length 8: lowercased, cut to 6 words. */
const LONG_CUT = 'the cat and the dog went';

let ctx: GpuContext;
let plain: string; // a cased tokenizer, no sentence_bert_config.json
let st: string; // the same plus sentence_bert_config.json: max_seq_length 8, do_lower_case true
let cls: string; // a classifier with 16 positions

/** modules.json and 1_Pooling/config.json (mean pooling) as sentence-transformers writes them. */
async function writeSentenceTransformersFiles(dir: string, hidden: number): Promise<void> {
  await mkdir(join(dir, '1_Pooling'), { recursive: true });
  await writeFile(join(dir, '1_Pooling/config.json'), JSON.stringify({ word_embedding_dimension: hidden, pooling_mode_cls_token: false, pooling_mode_mean_tokens: true }));
  const modules = [
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
  ];
  await writeFile(join(dir, 'modules.json'), JSON.stringify(modules));
}

/**
 * A copy of `plain` as sentence-transformers saves it (modules.json, 1_Pooling/config.json), with
 * `sentence_bert_config.json` holding `config` (none when undefined).
 */
async function variant(name: string, config?: unknown): Promise<string> {
  const dir = join(tmp.dir, name);
  await cp(plain, dir, { recursive: true });
  await writeSentenceTransformersFiles(dir, 32);
  if (config !== undefined) await writeFile(join(dir, 'sentence_bert_config.json'), JSON.stringify(config));
  return dir;
}

beforeAll(async () => {
  ctx = await GpuContext.create();
  plain = (await writeTinyBert(join(tmp.dir, 'plain'), { seed: 11 })).dir;
  // A cased tokenizer, so that lowercasing is visibly do_lower_case's doing ("The" is [UNK]).
  const tj = JSON.parse(await readFile(join(plain, 'tokenizer.json'), 'utf8'));
  tj.normalizer.lowercase = false;
  await writeFile(join(plain, 'tokenizer.json'), JSON.stringify(tj));
  st = await variant('st', { max_seq_length: 8, do_lower_case: true });
  cls = (await writeTinyBert(join(tmp.dir, 'cls'), { prefix: 'bert.', labels: ['neg', 'pos'], maxPositions: 16, seed: 12 })).dir;
}, 120_000);
afterAll(() => ctx?.dispose());

async function rejection(p: Promise<unknown>): Promise<Error & { code: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code: string };
  }
  throw new Error('expected a rejection');
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

describe('sentence_bert_config.json', () => {
  it('cuts at max_seq_length and lowercases with do_lower_case, as sentence-transformers does', async () => {
    const tok = await loadTokenizer(await openModelFiles(st));
    const manual = tok.encode(LONG.toLowerCase(), { maxLength: 8 });
    expect(manual.ids.map((i) => tok.idToToken(i))).toEqual(['[CLS]', 'the', 'cat', 'and', 'the', 'dog', 'went', '[SEP]']);
    expect(tok.encode(LONG).ids).toContain(tok.tokenToId('[UNK]')); // the tokenizer itself is cased

    const m = await BertModel.load(st, { dtype: 'f32', context: ctx });
    const p = await BertModel.load(plain, { dtype: 'f32', context: ctx });
    try {
      expect([m.maxLength, m.lowerCase]).toEqual([8, true]);
      expect([p.maxLength, p.lowerCase]).toEqual([64, false]); // model_max_length 64 = max_position_embeddings
      const h = await m.hidden([LONG]);
      expect(h.seqLen).toBe(8);
      const got = await m.embedWithInfo([LONG, 'Hello World']);
      expect(got.truncated).toEqual([true, false]);
      // The plain model, given the texts as sentence-transformers would make them, agrees.
      const want = await p.embed([LONG_CUT, 'hello world']);
      expect(maxAbs(got.vectors[0], want[0])).toBeLessThanOrEqual(1e-6);
      expect(maxAbs(got.vectors[1], want[1])).toBeLessThanOrEqual(1e-6);
      expect(maxAbs((await p.embed([LONG]))[0], want[0])).toBeGreaterThan(1e-3); // and the plain model alone does not
      const plainInfo = await p.embedWithInfo([LONG]);
      expect(plainInfo.truncated).toEqual([false]);
      expect((await m.embed([LONG, 'Hello World']))[0]).toEqual(got.vectors[0]);

      const e = await rejection(m.embed(['short', LONG], { truncate: false }));
      expect(e.code).toBe('TOKENIZER_TOO_LONG');
      expect(e.message).toContain('text 2 is 14 tokens');
      expect(e.message).toContain('limit of 8');
    } finally {
      m.dispose();
      p.dispose();
    }
  });

  it('caps max_seq_length at max_position_embeddings; a bad value is an error naming the file', async () => {
    for (const [name, config, want] of [
      ['big', { max_seq_length: 1000 }, 64],
      ['null', { max_seq_length: null, do_lower_case: false }, 64],
      ['empty', {}, 64],
    ] as const) {
      const m = await BertModel.load(await variant(name, config), { dtype: 'f32', context: ctx });
      expect([m.maxLength, m.lowerCase]).toEqual([want, false]);
      m.dispose();
    }
    // Without 1_Pooling the folder is no sentence-transformers export: the file is not read.
    const bare = join(tmp.dir, 'bare');
    await cp(plain, bare, { recursive: true });
    await writeFile(join(bare, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 8, do_lower_case: true }));
    const b = await BertModel.load(bare, { dtype: 'f32', context: ctx });
    expect([b.maxLength, b.lowerCase]).toEqual([64, false]);
    b.dispose();
    const bad = await rejection(BertModel.load(await variant('bad', { max_seq_length: '256' }), { dtype: 'f32', context: ctx }));
    expect(bad.code).toBe('CONFIG_BAD_FIELD');
    expect(bad.message).toMatch(/sentence_bert_config\.json: field "max_seq_length" must be an integer from 1 to 16777216, got string "256"/);
    const lower = await rejection(BertModel.load(await variant('bad-lower', { do_lower_case: 'yes' }), { dtype: 'f32', context: ctx }));
    expect(lower.message).toMatch(/sentence_bert_config\.json: field "do_lower_case" must be true or false/);
  });

  it('classify says which texts were cut to fit', async () => {
    const m = await BertModel.load(cls, { dtype: 'f32', context: ctx });
    try {
      expect(m.maxLength).toBe(16);
      const long = `${LONG} and then they all came back home`;
      const r = await m.classify([long, 'hello world']);
      expect(r.map((x) => x.truncated)).toEqual([true, false]);
    } finally {
      m.dispose();
    }
  });
});

describe('what embed and classify take', () => {
  it('refuses an empty or whitespace-only text, naming it as the CLI numbers texts', async () => {
    const m = await BertModel.load(plain, { dtype: 'f32', context: ctx });
    const c = await BertModel.load(cls, { dtype: 'f32', context: ctx });
    try {
      const empty = await rejection(m.embed(['hello', '']));
      expect(empty.code).toBe('EMPTY_TEXT');
      expect(empty.message).toBe('text 2 of 2 is empty or only whitespace: there is nothing in it to embed; leave it out');
      expect((await rejection(m.embedWithInfo([' \n\t ']))).message).toContain('text 1 of 1 is empty or only whitespace');
      const dropped = await rejection(m.embed(['hello', 'world', '\u0000\u0001']));
      expect(dropped.code).toBe('EMPTY_TEXT');
      expect(dropped.message).toContain('text 3 of 3 has no tokens');
      expect((await rejection(c.classify(['fine', '   ']))).message).toContain('text 2 of 2 is empty or only whitespace: there is nothing in it to classify');
      expect((await rejection(m.hidden(['']))).code).toBe('EMPTY_TEXT');
    } finally {
      m.dispose();
      c.dispose();
    }
  });

  it('says what came instead of an array of strings', async () => {
    const m = await BertModel.load(plain, { dtype: 'f32', context: ctx });
    const c = await BertModel.load(cls, { dtype: 'f32', context: ctx });
    try {
      const one = await rejection(m.embed('hello' as never));
      expect(one.code).toBe('BAD_TEXTS');
      expect(one.message).toBe('embed() takes an array of strings, got a string ("hello"); for one text pass [text]');
      expect((await rejection(m.embedWithInfo('hello' as never))).message).toMatch(/^embedWithInfo\(\) takes an array of strings/);
      expect((await rejection(c.classify('hello' as never))).message).toMatch(/^classify\(\) takes an array of strings, got a string \("hello"\)/);
      expect((await rejection(m.embed('x'.repeat(500) as never))).message.length).toBeLessThan(200);
      expect((await rejection(m.embed(null as never))).message).toBe('embed() takes an array of strings, got null');
      expect((await rejection(m.embed({ text: 'x' } as never))).message).toBe('embed() takes an array of strings, got an object');
      const num = await rejection(m.embed(['a', 3 as never]));
      expect(num.code).toBe('BAD_TEXTS');
      expect(num.message).toBe('embed(): text 2 of 2 is a number; every text must be a string');
      expect((await rejection(m.embed([]))).code).toBe('EMPTY_BATCH');
    } finally {
      m.dispose();
      c.dispose();
    }
  });
});

describe('the CLI', () => {
  const warning = (n: number, limit: number) => `webq: warning: text ${n} was cut to the model's limit of ${limit} tokens (--no-truncate makes this an error)\n`;

  it('webq embed and classify say on stderr which texts were cut', async () => {
    const r = await cli(['embed', st, '--json', '--dtype', 'f32', 'Hello World', LONG]);
    expect(r.code).toBe(0);
    expect(r.err).toBe(warning(2, 8));
    const m = await BertModel.load(st, { dtype: 'f32', context: ctx });
    const want = await m.embed(['Hello World', LONG]);
    m.dispose();
    const rows = (JSON.parse(r.out) as { embeddings: number[][] }).embeddings;
    expect(maxAbs(rows[1], want[1])).toBeLessThanOrEqual(1e-6);
    expect((await cli(['embed', plain, '--json', '--dtype', 'f32', LONG])).err).toBe('');

    const c = await cli(['classify', cls, '--dtype', 'f32', `${LONG} and then they all came back home`, 'hello']);
    expect(c.code).toBe(0);
    expect(c.err).toBe(warning(1, 16));
  });

  it('errors number texts from 1, as the output does', async () => {
    const long = await cli(['embed', st, '--no-truncate', 'hello', LONG]);
    expect(long.code).toBe(1);
    expect(long.err).toMatch(/^webq: text 2 is 14 tokens .*limit of 8.*\n$/);
    const empty = await cli(['embed', st, 'hello', '']);
    expect(empty.code).toBe(1);
    expect(empty.err).toBe('webq: text 2 of 2 is empty or only whitespace: there is nothing in it to embed; leave it out\n');
  });
});
