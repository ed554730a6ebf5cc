/**
 * tokenizer.json comes from whoever published the model. Before @huggingface/tokenizers builds a
 * tokenizer from it (a library that trusts its input: a wrong type becomes a TypeError deep inside,
 * a deep Sequence a stack overflow, a token id of 1e9 an id the GPU would index with), this checks
 * what can hurt, in one pass over the parsed JSON:
 *
 *   nesting deeper than MAX_DEPTH (Sequence normalizers / pre-tokenizers inside each other)
 *   a regular expression that could backtrack catastrophically (regex-guard.ts)
 *   model.vocab: token -> id with ids that are integers in [0, CONFIG_BOUNDS.vocab); Unigram's
 *     [token, score] pairs; at most CONFIG_BOUNDS.vocab entries
 *   model.merges: "a b" strings or [a, b] pairs whose two parts and their join are in the vocabulary
 *     (the Rust tokenizers refuse such files too)
 *   model.max_input_chars_per_word (WordPiece): an integer from 1 to MAX_WORD_CHARS (the library
 *     matches a word's longest pieces in time quadratic in its length, so a string or a huge
 *     value there made a 3,000-character word take minutes)
 *   added_tokens: { id, content } with an integer id in range and a string content
 *
 * Each refusal is a TokenizerError 'TOKENIZER_BAD_FILE' naming the file and the field.
 */
import { CONFIG_BOUNDS } from '../models/config-json.ts';
import { regexHazard } from './regex-guard.ts';
import { TokenizerError } from './tokenizer.ts';

const MAX_DEPTH = 64;
const MAX_ADDED = 1 << 20;
/** WordPiece's longest word (transformers' and the Rust tokenizers' default is 100). */
const MAX_WORD_CHARS = 1000;

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v) : Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v === 'object' ? 'an object' : String(v));
const validId = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < CONFIG_BOUNDS.vocab;

export function checkTokenizerJson(tj: Json, where: string): void {
  const bad = (field: string, what: string) => new TokenizerError('TOKENIZER_BAD_FILE', `${where}: ${field} ${what}`);
  // Depth and patterns, without recursion (the file may be nested deeper than the stack).
  const todo: [unknown, number, string][] = [[tj, 0, '']];
  while (todo.length) {
    const [v, depth, path] = todo.pop()!;
    if (depth > MAX_DEPTH) throw bad(path || '(top)', `is nested more than ${MAX_DEPTH} levels deep; tokenizer.json files are a few levels deep`);
    if (Array.isArray(v)) {
      // Long arrays of strings or numbers (vocabularies, merges) hold no patterns.
      if (v.length && typeof v[0] !== 'object') continue;
      for (let i = 0; i < v.length; i++) if (typeof v[i] === 'object' && v[i] !== null) todo.push([v[i], depth + 1, `${path}[${i}]`]);
    } else if (isObject(v)) {
      for (const k of Object.keys(v)) {
        const x = v[k];
        if (k === 'Regex') {
          if (typeof x !== 'string') throw bad(`${path}.Regex`, `must be a string, got ${show(x)}`);
          const why = regexHazard(x);
          if (why) throw bad(`${path}.Regex`, `${show(x)} is not run: ${why}, which could make tokenizing a long text take forever`);
        } else if (typeof x === 'object' && x !== null && !(path === '.model' && (k === 'vocab' || k === 'merges'))) todo.push([x, depth + 1, `${path}.${k}`]);
      }
    }
  }
  checkModel(tj.model, bad);
  const added = tj.added_tokens;
  if (added !== undefined && added !== null) {
    if (!Array.isArray(added)) throw bad('added_tokens', `must be a list, got ${show(added)}`);
    if (added.length > MAX_ADDED) throw bad('added_tokens', `has ${added.length} entries (at most ${MAX_ADDED})`);
    added.forEach((t, i) => {
      if (!isObject(t)) throw bad(`added_tokens[${i}]`, `must be an object, got ${show(t)}`);
      if (!validId(t.id)) throw bad(`added_tokens[${i}].id`, `must be an integer from 0 to ${CONFIG_BOUNDS.vocab - 1}, got ${show(t.id)}`);
      if (typeof t.content !== 'string' || t.content.length === 0) throw bad(`added_tokens[${i}].content`, `must be a non-empty string, got ${show(t.content)}`);
    });
  }
}

function checkModel(model: unknown, bad: (field: string, what: string) => TokenizerError): void {
  if (!isObject(model)) throw bad('model', `must be an object, got ${show(model)}`);
  const wordChars = model.max_input_chars_per_word;
  if (wordChars !== undefined && !(typeof wordChars === 'number' && Number.isInteger(wordChars) && wordChars >= 1 && wordChars <= MAX_WORD_CHARS)) {
    throw bad('model.max_input_chars_per_word', `must be an integer from 1 to ${MAX_WORD_CHARS}, got ${show(wordChars)}`);
  }
  const vocab = model.vocab;
  const tokens = new Set<string>();
  if (Array.isArray(vocab)) {
    // Unigram: [[token, score], ...], ids by position.
    if (vocab.length > CONFIG_BOUNDS.vocab) throw bad('model.vocab', `has ${vocab.length} entries (at most ${CONFIG_BOUNDS.vocab})`);
    vocab.forEach((e, i) => {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number' || Number.isNaN(e[1])) throw bad(`model.vocab[${i}]`, `must be a [token, score] pair, got ${show(e)}`);
    });
  } else if (isObject(vocab)) {
    const keys = Object.keys(vocab);
    if (keys.length > CONFIG_BOUNDS.vocab) throw bad('model.vocab', `has ${keys.length} entries (at most ${CONFIG_BOUNDS.vocab})`);
    for (const k of keys) {
      if (!validId(vocab[k])) throw bad(`model.vocab[${show(k)}]`, `must be an integer id from 0 to ${CONFIG_BOUNDS.vocab - 1}, got ${show(vocab[k])}`);
      tokens.add(k);
    }
  } else if (vocab !== undefined) throw bad('model.vocab', `must be an object of token ids or a list of [token, score] pairs, got ${show(vocab)}`);
  const merges = model.merges;
  if (merges === undefined) return;
  if (!Array.isArray(merges)) throw bad('model.merges', `must be a list, got ${show(merges)}`);
  merges.forEach((m, i) => {
    const pair = typeof m === 'string' ? m.split(' ') : m;
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') throw bad(`model.merges[${i}]`, `must be "a b" or ["a", "b"], got ${show(m)}`);
    for (const t of [pair[0], pair[1], pair[0] + pair[1]]) if (!tokens.has(t)) throw bad(`model.merges[${i}]`, `(${show(m)}) needs the token ${show(t)}, which is not in model.vocab`);
  });
}
