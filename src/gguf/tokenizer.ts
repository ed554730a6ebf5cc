/**
 * A GGUF file's tokenizer metadata -> the tokenizer.json and tokenizer_config.json webq already
 * runs (@huggingface/tokenizers), written as transformers writes them for the original model:
 *
 *   tokenizer.ggml.model "llama" (SentencePiece BPE: Llama 1/2, Mistral, TinyLlama)
 *     BPE with byte fallback over tokens (ids = positions), merges from the scores the way
 *     transformers' SentencePiece converter makes them (every split a+b of a token into two
 *     tokens, ordered by the joined token's score), normalizer Prepend("▁") + Replace(" ", "▁"),
 *     decoder Replace/ByteFallback/Fuse/Strip; <0xNN> byte tokens stay in the vocabulary.
 *   tokenizer.ggml.model "gpt2" (byte-level BPE: Llama 3, Qwen2/3, SmolLM)
 *     BPE over tokens and tokenizer.ggml.merges, with the pre-tokenizer llama.cpp names in
 *     tokenizer.ggml.pre (the regex split that model's tokenizer.json has; NFC for Qwen).
 *
 * Token types: CONTROL (3) tokens are special added tokens, USER_DEFINED (4) non-special added
 * tokens (both matched whole before the model, as transformers does), UNKNOWN (2) is the unk token.
 * BOS is added when tokenizer.ggml.add_bos_token says so, else by llama.cpp's default for the
 * tokenizer (llama: yes; gpt2: only for the llama3 pre-tokenizer); the same for EOS (default no).
 * The chat template is tokenizer.chat_template; end-of-generation ids are the EOS, EOT and EOM
 * ids plus the control tokens llama.cpp also treats as end of generation (<|im_end|>, <|eot_id|>, ...).
 */
import { GgufError } from './errors.ts';
import { GgufMeta, isNumber, isString, type GgufHeader } from './parse.ts';

const NORMAL = 1;
const UNKNOWN = 2;
const CONTROL = 3;
const USER_DEFINED = 4;

// Pre-tokenizer regexes of the models' own tokenizer.json files (llama.cpp keeps the same ones).
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
const split = (regex: string) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });

/** tokenizer.ggml.pre -> normalizer and pre-tokenizer of the original tokenizer.json, and llama.cpp's add_bos default. */
const PRE: Record<string, { normalizer: object | null; preTokenizer: object; ignoreMerges: boolean; addBos: boolean }> = {
  llama3: { normalizer: null, preTokenizer: { type: 'Sequence', pretokenizers: [split(LLAMA3_REGEX), byteLevel(false)] }, ignoreMerges: true, addBos: true },
  qwen2: { normalizer: { type: 'NFC' }, preTokenizer: { type: 'Sequence', pretokenizers: [split(QWEN2_REGEX), byteLevel(false)] }, ignoreMerges: false, addBos: false },
  smollm: { normalizer: null, preTokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)] }, ignoreMerges: false, addBos: false },
  gpt2: { normalizer: null, preTokenizer: byteLevel(true), ignoreMerges: false, addBos: false },
};
const PRE_NAMES: Record<string, keyof typeof PRE> = {
  'llama3': 'llama3', 'llama-v3': 'llama3', 'llama-bpe': 'llama3', 'falcon3': 'llama3',
  'qwen2': 'qwen2', 'deepseek-r1-qwen': 'qwen2', 'megrez': 'qwen2', 'stablelm2': 'qwen2',
  'smollm': 'smollm', 'starcoder': 'smollm', 'refact': 'smollm', 'codeshell': 'smollm',
  'default': 'gpt2', 'gpt-2': 'gpt2', 'phi-2': 'gpt2', 'olmo': 'gpt2', 'mpt': 'gpt2',
};

/** Control tokens llama.cpp ends generation at besides EOS/EOT/EOM (llama-vocab.cpp's list). */
const EOG_TEXTS = ['<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|eom_id|>', '<EOT>', '_<EOT>', '<｜end▁of▁sentence｜>'];

export interface GgufTokenizer {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  /** For generation_config.json: BOS and every end-of-generation id. */
  bosTokenId: number | undefined;
  eosTokenIds: number[];
}

/**
 * transformers' merges for a SentencePiece BPE vocabulary: for every token, each split into two
 * tokens of the vocabulary, ordered by the token's score (highest first), splits of one token by
 * the ids of their parts.
 */
export function sentencePieceMerges(tokens: readonly string[], scores: readonly number[], vocab: ReadonlyMap<string, number>): [string, string][] {
  const merges: { l: string; r: string; score: number }[] = [];
  tokens.forEach((tok, id) => {
    if (vocab.get(tok) !== id) return;
    const chars = [...tok];
    const local: { l: string; r: string; score: number }[] = [];
    for (let i = 1; i < chars.length; i++) {
      const l = chars.slice(0, i).join('');
      const r = chars.slice(i).join('');
      if (vocab.has(l) && vocab.has(r)) local.push({ l, r, score: scores[id] });
    }
    local.sort((a, b) => vocab.get(a.l)! - vocab.get(b.l)! || vocab.get(a.r)! - vocab.get(b.r)!);
    merges.push(...local);
  });
  // Stable: equal scores keep the order above, as Python's sorted(reverse=True) does.
  merges.sort((a, b) => b.score - a.score);
  return merges.map((m) => [m.l, m.r]);
}

function templateProcessor(bos: string | undefined, eos: string | undefined, ids: Map<string, number>): object | null {
  const single: object[] = [];
  const pair: object[] = [];
  const special: Record<string, object> = {};
  const add = (tok: string | undefined, typeId: number, into: object[]) => {
    if (tok === undefined) return;
    into.push({ SpecialToken: { id: tok, type_id: typeId } });
    special[tok] = { id: tok, ids: [ids.get(tok)], tokens: [tok] };
  };
  add(bos, 0, single);
  single.push({ Sequence: { id: 'A', type_id: 0 } });
  add(eos, 0, single);
  add(bos, 0, pair);
  pair.push({ Sequence: { id: 'A', type_id: 0 } });
  add(eos, 0, pair);
  add(bos, 1, pair);
  pair.push({ Sequence: { id: 'B', type_id: 1 } });
  add(eos, 1, pair);
  return Object.keys(special).length ? { type: 'TemplateProcessing', single, pair, special_tokens: special } : null;
}

/** The tokenizer files for a GGUF header; a GgufError names what is missing or unsupported. */
export function ggufTokenizer(h: GgufHeader, vocabSize = 0): GgufTokenizer {
  const m = new GgufMeta(h);
  const model = m.str('tokenizer.ggml.model');
  if (model === undefined || model === 'no_vocab' || model === 'none') return idTokenizer(h, vocabSize);
  if (model !== 'llama' && model !== 'gpt2') throw new GgufError('GGUF_TOKENIZER', `${h.name}: tokenizer.ggml.model "${model}" is not supported; webq reads "llama" (SentencePiece BPE) and "gpt2" (byte-level BPE) vocabularies`);
  const tokens = m.array('tokenizer.ggml.tokens', isString, 'strings');
  if (!tokens || tokens.length === 0) throw new GgufError('GGUF_TOKENIZER', `${h.name}: metadata "tokenizer.ggml.tokens" is missing or empty`);
  const types = m.array('tokenizer.ggml.token_type', isNumber, 'integers') ?? tokens.map(() => NORMAL);
  if (types.length !== tokens.length) throw new GgufError('GGUF_TOKENIZER', `${h.name}: tokenizer.ggml.token_type has ${types.length} entries for ${tokens.length} tokens`);
  const id = (key: string) => {
    if (!m.has(key)) return undefined;
    const v = m.int(key);
    if (v >= tokens.length) throw new GgufError('GGUF_TOKENIZER', `${h.name}: metadata "${key}" is ${v}, past the ${tokens.length} tokens`);
    return v;
  };
  // Ids by token text; the first id wins where a text repeats (a vocabulary may pad with copies).
  const vocab = new Map<string, number>();
  tokens.forEach((t, i) => vocab.has(t) || vocab.set(t, i));
  const spm = model === 'llama';
  const bos = id('tokenizer.ggml.bos_token_id') ?? (spm ? 1 : undefined);
  const eos = id('tokenizer.ggml.eos_token_id') ?? (spm ? 2 : undefined);
  const unk = id('tokenizer.ggml.unknown_token_id') ?? (spm ? types.indexOf(UNKNOWN) : -1);
  const pad = id('tokenizer.ggml.padding_token_id');
  let pre: (typeof PRE)[string] | null = null;
  if (!spm) {
    const name = m.str('tokenizer.ggml.pre') ?? 'default';
    const key = PRE_NAMES[name];
    if (!key) throw new GgufError('GGUF_TOKENIZER', `${h.name}: tokenizer.ggml.pre "${name}" is not a pre-tokenizer webq knows; it reads ${Object.keys(PRE_NAMES).join(', ')}`);
    pre = PRE[key];
  }
  const addBos = m.bool('tokenizer.ggml.add_bos_token') ?? (spm ? true : pre!.addBos);
  const addEos = m.bool('tokenizer.ggml.add_eos_token') ?? false;
  const addPrefix = m.bool('tokenizer.ggml.add_space_prefix') ?? spm;

  const added: object[] = [];
  tokens.forEach((content, i) => {
    const t = types[i];
    if (t === CONTROL || t === USER_DEFINED || (t === UNKNOWN && i === unk)) {
      added.push({ id: i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t !== USER_DEFINED });
    }
  });
  let merges: [string, string][];
  if (spm) {
    const scores = m.array('tokenizer.ggml.scores', isNumber, 'numbers');
    if (!scores || scores.length !== tokens.length) throw new GgufError('GGUF_TOKENIZER', `${h.name}: a "llama" vocabulary needs tokenizer.ggml.scores, one per token (${tokens.length})`);
    merges = m.has('tokenizer.ggml.merges') ? splitMerges(m, h) : sentencePieceMerges(tokens, scores, vocab);
  } else {
    if (!m.has('tokenizer.ggml.merges')) throw new GgufError('GGUF_TOKENIZER', `${h.name}: a "gpt2" vocabulary needs tokenizer.ggml.merges`);
    merges = splitMerges(m, h);
  }
  const text = (i: number | undefined) => (i === undefined || i < 0 ? undefined : tokens[i]);
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: spm
      ? { type: 'Sequence', normalizers: [...(addPrefix ? [{ type: 'Prepend', prepend: '▁' }] : []), { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] }
      : pre!.normalizer,
    pre_tokenizer: spm ? null : pre!.preTokenizer,
    post_processor: templateProcessor(addBos ? text(bos) : undefined, addEos ? text(eos) : undefined, vocab) ?? (spm ? null : byteLevel(false)),
    decoder: spm
      ? { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, ...(addPrefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : [])] }
      : byteLevel(true),
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: text(unk) ?? null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: spm,
      byte_fallback: spm,
      ignore_merges: pre?.ignoreMerges ?? false,
      vocab: Object.fromEntries(vocab),
      merges,
    },
  };
  const chat = m.str('tokenizer.chat_template');
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: addBos,
    add_eos_token: addEos,
    ...(text(bos) !== undefined && { bos_token: text(bos) }),
    ...(text(eos) !== undefined && { eos_token: text(eos) }),
    ...(text(unk) !== undefined && { unk_token: text(unk) }),
    ...(text(pad) !== undefined && { pad_token: text(pad) }),
    ...(chat !== undefined && { chat_template: chat }),
    clean_up_tokenization_spaces: false,
  };
  const eog = new Set<number>();
  for (const k of ['eos_token_id', 'eot_token_id', 'eom_token_id']) {
    const v = id(`tokenizer.ggml.${k}`);
    if (v !== undefined) eog.add(v);
  }
  if (eos !== undefined) eog.add(eos);
  for (const t of EOG_TEXTS) {
    const i = vocab.get(t);
    if (i !== undefined && types[i] === CONTROL) eog.add(i);
  }
  return { tokenizerJson, tokenizerConfig, bosTokenId: bos, eosTokenIds: [...eog] };
}

/** tokenizer.ggml.merges ("a b" strings) -> pairs; a token never holds a space, so the first one splits. */
function splitMerges(m: GgufMeta, h: GgufHeader): [string, string][] {
  const list = m.array('tokenizer.ggml.merges', isString, 'strings')!;
  return list.map((s, i) => {
    const at = s.indexOf(' ', 1);
    if (at < 0) throw new GgufError('GGUF_TOKENIZER', `${h.name}: tokenizer.ggml.merges[${i}] ${JSON.stringify(s.slice(0, 40))} is not two tokens separated by a space`);
    return [s.slice(0, at), s.slice(at + 1)];
  });
}

/**
 * A file without a vocabulary (no tokenizer.ggml.model, or llama.cpp's "no_vocab"): token i is the
 * text "<|i|>", so token-id prompts run and generated ids come back readable as "<|17|><|4|>";
 * ordinary text has no tokens (a prompt of it is refused as outside the vocabulary).
 */
function idTokenizer(h: GgufHeader, vocabSize: number): GgufTokenizer {
  if (vocabSize < 1) throw new GgufError('GGUF_TOKENIZER', `${h.name}: has no vocabulary (metadata "tokenizer.ggml.model" is missing) and no embedding table to size one`);
  const vocab: Record<string, number> = {};
  for (let i = 0; i < vocabSize; i++) vocab[`<|${i}|>`] = i;
  return {
    tokenizerJson: { version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: { type: 'Split', pattern: { Regex: '<\\|\\d+\\|>' }, behavior: 'Isolated', invert: false }, post_processor: null, decoder: null, model: { type: 'WordLevel', vocab, unk_token: null } },
    tokenizerConfig: { add_bos_token: false, add_eos_token: false },
    bosTokenId: undefined,
    eosTokenIds: [],
  };
}
