/**
 * Text -> model inputs, on top of @huggingface/tokenizers (tokenizer.json, pure JS, every runtime).
 *
 * That library has no truncation or padding, and adds special tokens after tokenizing, so cutting
 * its output at maxLength would drop the final [SEP]. Here each text is tokenized WITHOUT special
 * tokens, the content is truncated to maxLength minus the number of special tokens the
 * post-processor adds (pairs: "longest first", one token at a time from the longer side), and only
 * then are the special tokens added, by the tokenizer's own post-processor. So a truncated row
 * still ends in [SEP], exactly as transformers' `truncation=True` does.
 *
 * Past the context: truncation is on by default (what sentence-transformers and pipelines do);
 * with `truncation: false` a text longer than maxLength is a TokenizerError 'TOKENIZER_TOO_LONG'
 * naming the text, its token count and the limit. Messages number texts from 1 ("text 3" is the
 * third), as `webq embed` numbers its output.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { WebqError } from '../errors.ts';
import { alignOffsets } from './offsets.ts';
import { checkTokenizerJson } from './tokenizer-guard.ts';

export type TokenizerErrorCode =
  | 'TOKENIZER_MISSING' // no tokenizer.json where the model lives
  | 'TOKENIZER_BAD_FILE' // tokenizer.json / tokenizer_config.json unreadable or unsupported
  | 'TOKENIZER_EMPTY_BATCH' // encodeBatch([])
  | 'TOKENIZER_TOO_LONG' // a text exceeds maxLength with truncation off
  | 'TOKENIZER_NO_PAD_TOKEN' // rows need padding but no pad token is known
  | 'TOKENIZER_BAD_OPTION'; // options that cannot work (maxLength below the special tokens, ...)

export class TokenizerError extends WebqError {
  declare readonly code: TokenizerErrorCode;
  constructor(code: TokenizerErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

export interface TextTokenizerOptions {
  /** Shown in errors, e.g. the model's folder or URL. */
  name?: string;
  /** Overrides the pad token from tokenizer_config.json. */
  padTokenId?: number;
}

export interface EncodeOptions {
  /** Second segment (sentence B) for cross-encoders and classifiers on pairs. */
  pair?: string;
  /** Longest row, special tokens included; default: tokenizer_config model_max_length if sane. */
  maxLength?: number;
  /** Default true: cut the content to fit. false: throw TOKENIZER_TOO_LONG instead. */
  truncation?: boolean;
  /** Default true. */
  addSpecialTokens?: boolean;
}

export interface EncodeBatchOptions extends Omit<EncodeOptions, 'pair'> {
  /** One second segment per text. */
  pairs?: readonly string[];
}

export interface Encoded {
  ids: number[];
  tokenTypeIds: number[];
  /** Per id: added by the post-processor ([CLS], [SEP], <s>, </s>), not from the text. */
  special: boolean[];
  /** True when content was cut to fit maxLength. */
  truncated: boolean;
}

/** Row-major [batch, seqLen] arrays, right-padded to the longest row. */
export interface EncodedBatch {
  ids: Int32Array;
  /** 1 for real tokens (special tokens included), 0 for padding. */
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  batch: number;
  seqLen: number;
  /** Real tokens per row. */
  lengths: Int32Array;
  truncated: boolean[];
}

/** What the post-processor returns when given our placeholders: numbers are content ids. */
interface Assembled {
  tokens: (number | string)[];
  tokens_pair?: (number | string)[] | null;
  token_type_ids?: number[];
}

type Config = Record<string, unknown>;

function parse(text: string | object, what: string): Config {
  if (typeof text !== 'string') return text as Config;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Config;
  } catch (e) {
    throw new TokenizerError('TOKENIZER_BAD_FILE', `${what}: not a valid JSON object: ${e instanceof Error ? e.message : e}`, { cause: e });
  }
}

/** tokenizer_config's token fields are "[PAD]" or {"content": "[PAD]", ...} (AddedToken). */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/**
 * byte_level: GPT-2 style bytes-as-characters (Ġ is a space); byte_fallback: SentencePiece pieces
 * (▁ is a space) with <0xNN> byte tokens; raw: tokens are their text.
 */
export interface TokenSpelling {
  kind: 'byte_level' | 'byte_fallback' | 'raw';
  /** The normalizer or pre-tokenizer puts ▁ before the text (Llama 2 style SentencePiece). */
  prependSpace: boolean;
  /** Ids of added tokens marked special (BOS, EOS, chat markers): they stand for no text. */
  specialIds: number[];
}

function spellingOf(tj: Config): TokenSpelling {
  const parts = (c: unknown): Config[] => {
    if (typeof c !== 'object' || c === null) return [];
    const o = c as Config;
    const inner = (o.decoders ?? o.normalizers ?? o.pretokenizers) as unknown;
    return Array.isArray(inner) ? inner.flatMap(parts) : [o];
  };
  const dec = parts(tj.decoder).map((d) => d.type);
  const kind = dec.includes('ByteLevel') ? 'byte_level' : dec.includes('ByteFallback') ? 'byte_fallback' : 'raw';
  const prepend =
    parts(tj.normalizer).some((n) => n.type === 'Prepend' && n.prepend === '\u2581') ||
    parts(tj.pre_tokenizer).some((p) => p.type === 'Metaspace' && (p.prepend_scheme === 'always' || p.prepend_scheme === 'first' || p.add_prefix_space === true));
  const added = Array.isArray(tj.added_tokens) ? (tj.added_tokens as Config[]) : [];
  const specialIds = added.filter((t) => t.special === true && typeof t.id === 'number').map((t) => t.id as number);
  return { kind, prependSpace: prepend, specialIds };
}

export class TextTokenizer {
  readonly name: string;
  private readonly inner: Tokenizer;
  /** Id rows are padded with; undefined when neither the files nor the options name one. */
  readonly padTokenId: number | undefined;
  /** tokenizer_config.json model_max_length, when it is a real limit (not transformers' 1e30 "none"). */
  readonly modelMaxLength: number | undefined;
  /** tokenizer_config.json bos_token / eos_token as ids, when they name tokens of the vocabulary. */
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  /** The id text the vocabulary cannot spell becomes ([UNK], <unk>); undefined when there is none (byte-level BPE). */
  readonly unkTokenId: number | undefined;
  private readonly specials: { single: number; pair: number };
  /** How tokens spell text (tokenizer.json's decoder and normalizer), for a constraint engine. */
  readonly spelling: TokenSpelling;
  /** WordPiece's marker of a token that continues a word ("##"); '' when the model has none. */
  readonly continuingSubwordPrefix: string;

  private constructor(inner: Tokenizer, config: Config, options: TextTokenizerOptions, model: Config, spelling: TokenSpelling) {
    this.name = options.name ?? 'tokenizer.json';
    this.inner = inner;
    this.spelling = spelling;
    this.continuingSubwordPrefix = typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '';
    // WordPiece and BPE name their unknown token; Unigram (SentencePiece) gives its id.
    const unk = typeof model.unk_token === 'string' ? inner.token_to_id(model.unk_token) : model.unk_id;
    this.unkTokenId = typeof unk === 'number' && Number.isSafeInteger(unk) && unk >= 0 ? unk : undefined;
    const pad = tokenContent(config.pad_token);
    this.padTokenId = options.padTokenId ?? (pad === undefined ? undefined : inner.token_to_id(pad));
    const id = (v: unknown) => {
      const t = tokenContent(v);
      return t === undefined ? undefined : inner.token_to_id(t);
    };
    this.bosTokenId = id(config.bos_token);
    this.eosTokenId = id(config.eos_token);
    const mml = config.model_max_length;
    this.modelMaxLength = typeof mml === 'number' && Number.isSafeInteger(mml) && mml > 0 && mml <= 1e7 ? mml : undefined;
    this.specials = { single: this.assemble([], null).ids.length, pair: this.assemble([], []).ids.length };
  }

  /** From the contents of tokenizer.json and (optionally) tokenizer_config.json, text or parsed. */
  static fromJson(tokenizerJson: string | object, tokenizerConfig: string | object = {}, options: TextTokenizerOptions = {}): TextTokenizer {
    const name = options.name ?? 'tokenizer.json';
    const tj = parse(tokenizerJson, `${name}: tokenizer.json`);
    const tc = parse(tokenizerConfig, `${name}: tokenizer_config.json`);
    checkTokenizerJson(tj, `${name}: tokenizer.json`);
    let inner: Tokenizer;
    try {
      inner = new Tokenizer(tj, tc);
    } catch (e) {
      throw new TokenizerError('TOKENIZER_BAD_FILE', `${name}: cannot load tokenizer.json: ${e instanceof Error ? e.message : e}`, { cause: e });
    }
    const model = tj.model;
    return libraryCall(name, 'load', () => new TextTokenizer(inner, tc, options, typeof model === 'object' && model !== null ? (model as Config) : {}, spellingOf(tj)));
  }

  /** Every token's stored form (Ġ / ▁ / <0x0A> spellings kept), indexed by id; '' where an id is unused. */
  tokensById(): string[] {
    const out: string[] = [];
    for (const [t, id] of this.inner.get_vocab(true)) out[id] = t;
    for (let i = 0; i < out.length; i++) out[i] ??= '';
    return out;
  }

  get vocabSize(): number {
    return this.inner.get_vocab(true).size;
  }

  tokenToId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.inner.id_to_token(id);
  }

  /** Adds special tokens around content ids via the tokenizer's own post-processor. */
  private assemble(a: number[], b: number[] | null): { ids: number[]; types: number[]; special: boolean[] } {
    const pp = this.inner.post_processor;
    if (!pp) return { ids: [...a, ...(b ?? [])], types: [...a.map(() => 0), ...(b ?? []).map(() => 1)], special: [...a, ...(b ?? [])].map(() => false) };
    // Post-processors only splice the sequences they are given between special-token strings, so
    // content passes through as numbers and whatever comes back as a string is a special token.
    const out = (pp as unknown as (t: number[], p: number[] | null, add: boolean) => Assembled)(a, b, true);
    const tokens = [...out.tokens, ...(out.tokens_pair ?? [])];
    const ids = tokens.map((t) => {
      if (typeof t === 'number') return t;
      const id = this.inner.token_to_id(t);
      if (id === undefined) throw new TokenizerError('TOKENIZER_BAD_FILE', `${this.name}: post_processor adds token ${JSON.stringify(t)}, which is not in the vocabulary`);
      return id;
    });
    // ByteLevel-style processors return the pair separately and no type ids: A is 0, B is 1.
    const types = out.token_type_ids ?? [...out.tokens.map(() => 0), ...(out.tokens_pair ?? []).map(() => 1)];
    return { ids, types, special: tokens.map((t) => typeof t === 'string') };
  }

  /** Special tokens the post-processor adds to one text, or to a pair ([CLS] A [SEP] B [SEP]: 3). */
  specialTokenCount(pair = false): number {
    return pair ? this.specials.pair : this.specials.single;
  }

  /**
   * One text (and optional pair) -> ids with special tokens, truncated to maxLength. `index` is the
   * text's place in its batch (from 0), named in messages from 1.
   */
  encode(text: string, options: EncodeOptions = {}, index = 0): Encoded {
    if (typeof text !== 'string') throw new TokenizerError('TOKENIZER_BAD_OPTION', `text ${index + 1} is ${text === null ? 'null' : typeof text}, expected a string`);
    const add = options.addSpecialTokens ?? true;
    const hasPair = options.pair !== undefined;
    let a = libraryCall(this.name, `encode text ${index + 1}`, () => this.inner.encode(text, { add_special_tokens: false }).ids);
    let b = hasPair ? libraryCall(this.name, `encode text ${index + 1}'s pair`, () => this.inner.encode(options.pair!, { add_special_tokens: false }).ids) : null;
    const nSpecial = add ? (hasPair ? this.specials.pair : this.specials.single) : 0;
    const limit = options.maxLength ?? this.modelMaxLength ?? Infinity;
    if (!(limit === Infinity || (Number.isSafeInteger(limit) && limit > nSpecial))) {
      throw new TokenizerError('TOKENIZER_BAD_OPTION', `maxLength ${limit} must be an integer above the ${nSpecial} special tokens each row gets`);
    }
    const total = nSpecial + a.length + (b?.length ?? 0);
    let truncated = false;
    if (total > limit) {
      if (options.truncation === false) {
        throw new TokenizerError(
          'TOKENIZER_TOO_LONG',
          `text ${index + 1} is ${total} tokens (special tokens included), more than the limit of ${limit}; shorten it, or leave truncation on to cut it to ${limit}`,
        );
      }
      truncated = true;
      const budget = limit - nSpecial;
      if (b === null) a = a.slice(0, budget);
      else {
        let la = a.length;
        let lb = b.length;
        while (la + lb > budget) la > lb ? la-- : lb--;
        a = a.slice(0, la);
        b = b.slice(0, lb);
      }
    }
    if (!add) return { ids: [...a, ...(b ?? [])], tokenTypeIds: [...a.map(() => 0), ...(b ?? []).map(() => 1)], special: [...a, ...(b ?? [])].map(() => false), truncated };
    const { ids, types, special } = this.assemble(a, b);
    return { ids, tokenTypeIds: types, special, truncated };
  }

  /**
   * One text as encode() makes it, with each id's stored token ("##son", "Ġworld", "▁World") and
   * its [start, end) in `text` (UTF-16 indices; null for special tokens): see offsets.ts. With
   * `lowerCase` the text is lowercased first (sentence_bert_config do_lower_case), offsets still
   * into the text as given.
   */
  encodeWithOffsets(text: string, options: Omit<EncodeOptions, 'pair' | 'addSpecialTokens'> & { lowerCase?: boolean } = {}, index = 0): Encoded & { tokens: string[]; offsets: ([number, number] | null)[] } {
    const lower = options.lowerCase === true;
    const enc = this.encode(lower ? text.toLowerCase() : text, options, index);
    const content = enc.ids.filter((_, i) => !enc.special[i]);
    const tokens = content.map((id) => this.inner.id_to_token(id) ?? '');
    const normalizer = this.inner.normalizer;
    const normalize = (ch: string) => {
      const c = lower ? ch.toLowerCase() : ch;
      return normalizer ? normalizer.normalize(c) : c;
    };
    const spans = alignOffsets(text, tokens, { kind: this.spelling.kind, continuingPrefix: this.continuingSubwordPrefix, normalize, unknown: (i) => content[i] === this.unkTokenId });
    // Content tokens sit in order between the special ones: the k-th non-special id is content[k].
    const nth = (i: number) => enc.special.slice(0, i).filter((sp) => !sp).length;
    return {
      ...enc,
      tokens: enc.ids.map((id, i) => (enc.special[i] ? (this.inner.id_to_token(id) ?? '') : tokens[nth(i)])),
      offsets: enc.ids.map((_, i) => (enc.special[i] ? null : spans[nth(i)])),
    };
  }

  /** Texts -> padded [batch, seqLen] ids, attention mask and token types. */
  encodeBatch(texts: readonly string[], options: EncodeBatchOptions = {}): EncodedBatch {
    if (!Array.isArray(texts) || texts.length === 0) {
      throw new TokenizerError('TOKENIZER_EMPTY_BATCH', 'encodeBatch: the batch is empty; pass at least one text');
    }
    const { pairs, ...rest } = options;
    if (pairs !== undefined && pairs.length !== texts.length) {
      throw new TokenizerError('TOKENIZER_BAD_OPTION', `encodeBatch: ${texts.length} texts but ${pairs.length} pairs; pass one pair per text`);
    }
    const rows = texts.map((t, i) => this.encode(t, { ...rest, pair: pairs?.[i] }, i));
    const B = rows.length;
    const T = Math.max(...rows.map((r) => r.ids.length));
    const needsPad = rows.some((r) => r.ids.length < T);
    if (needsPad && this.padTokenId === undefined) {
      throw new TokenizerError(
        'TOKENIZER_NO_PAD_TOKEN',
        `${this.name}: rows have different lengths but the tokenizer has no pad token (tokenizer_config.json pad_token); pass padTokenId`,
      );
    }
    const ids = new Int32Array(B * T).fill(this.padTokenId ?? 0);
    const attentionMask = new Int32Array(B * T);
    const tokenTypeIds = new Int32Array(B * T);
    const lengths = new Int32Array(B);
    rows.forEach((r, b) => {
      ids.set(r.ids, b * T);
      attentionMask.fill(1, b * T, b * T + r.ids.length);
      tokenTypeIds.set(r.tokenTypeIds, b * T);
      lengths[b] = r.ids.length;
    });
    return { ids, attentionMask, tokenTypeIds, batch: B, seqLen: T, lengths, truncated: rows.map((r) => r.truncated) };
  }

  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    const list = Array.from(ids);
    // The library rejects an empty list; decoding nothing is simply "".
    if (list.length === 0) return '';
    return libraryCall(this.name, 'decode', () => this.inner.decode(list, { skip_special_tokens: options.skipSpecialTokens ?? false }));
  }
}

/**
 * A call into @huggingface/tokenizers, whose errors on a malformed tokenizer.json are plain
 * TypeErrors from deep inside (tokenizer-guard.ts refuses what it can up front): they become a
 * TokenizerError naming the file and what was being done.
 */
function libraryCall<T>(name: string, what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof WebqError) throw e;
    throw new TokenizerError('TOKENIZER_BAD_FILE', `${name}: tokenizer.json failed to ${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, { cause: e });
  }
}

/** The slice of a model location (src/io/hub/hub.ts ModelFiles) the loader needs. */
export interface TextFileReader {
  readonly describe: string;
  readText(file: string): Promise<string>;
}

function isNotFound(e: unknown): boolean {
  return e instanceof WebqError && e.code === 'SOURCE_NOT_FOUND';
}

/**
 * Loads tokenizer.json (required) and tokenizer_config.json (optional) from a model location. The
 * pad token comes from options, else tokenizer_config.json, else config.json pad_token_id.
 */
export async function loadTokenizer(files: TextFileReader, options: TextTokenizerOptions = {}): Promise<TextTokenizer> {
  let json: string;
  try {
    json = await files.readText('tokenizer.json');
  } catch (e) {
    if (!isNotFound(e)) throw e;
    throw new TokenizerError(
      'TOKENIZER_MISSING',
      `${files.describe}: has no tokenizer.json; webq needs the fast-tokenizer file (a model with only vocab.txt can be converted by loading it with transformers' AutoTokenizer and calling save_pretrained)`,
      { cause: e },
    );
  }
  const optional = (file: string) => files.readText(file).catch((e: unknown) => (isNotFound(e) ? undefined : Promise.reject(e)));
  const configText = await optional('tokenizer_config.json');
  const name = options.name ?? files.describe;
  const config = configText === undefined ? {} : parse(configText, `${name}: tokenizer_config.json`);
  let padTokenId = options.padTokenId;
  if (padTokenId === undefined && tokenContent(config.pad_token) === undefined) {
    const modelConfig = await optional('config.json');
    const id = modelConfig === undefined ? undefined : (parse(modelConfig, `${name}: config.json`).pad_token_id as unknown);
    if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) padTokenId = id;
  }
  return TextTokenizer.fromJson(json, config, { name, padTokenId });
}
