/**
 * What generate() does beyond plain sampling, kept out of llm.ts: a constraint (response_format,
 * or tool calls from chat) checked and compiled before any GPU work, OpenAI's logit_bias as a
 * vector over the vocabulary, and logprobs records turned into per-token entries.
 */
import { WebqError } from '../errors.ts';
import { generateConstrained, type ConstrainedStats, type Guide } from '../generate/constrained.ts';
import type { DecodedBatch, DecodeOptions, Decoder } from '../generate/decoder.ts';
import { decodeLogprobs, LOGPROB_WORDS, TOP_LOGPROBS_MAX, type SamplingParams } from '../ops/sample.ts';
import { parseResponseFormat, type Constraint, type ResponseFormat } from '../structured/constraint.ts';
import { ConstraintEngine } from '../structured/engine.ts';
import { ForcedTokenizer } from '../structured/forced-tokens.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';

export interface ConstraintOptions {
  /** Constrain the text: JSON (any object, or valid for a schema), a regex, or a grammar. */
  responseFormat?: ResponseFormat;
  /** Added to these token ids' logits before sampling (OpenAI's logit_bias, each in [-100, 100]). */
  logitBias?: Readonly<Record<number | string, number>>;
  /** Each generated token's log probability, with this many top alternatives (0..20). */
  logprobs?: number;
  /** Filled with the constrained loop's measurements (draws, forced tokens, forwards, mask time). */
  constraintStats?: ConstrainedStats;
  /** @internal A constraint built by chat.completions (tool calls); wins over responseFormat. */
  constraint?: Constraint;
}

export interface TokenLogprob {
  token: number;
  text: string;
  logprob: number;
  top: { token: number; text: string; logprob: number }[];
}

/** Per model: the engine and the forced-text tokenizer, made on first use. */
export class ConstraintTools {
  private engine: Promise<ConstraintEngine> | null = null;
  private forcedTok: ForcedTokenizer | null = null;
  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly vocabSize: number,
    private readonly eos: readonly number[],
  ) {}

  get(): Promise<ConstraintEngine> {
    this.engine ??= ConstraintEngine.create(this.tokenizer, this.vocabSize, this.eos);
    this.engine.catch(() => (this.engine = null));
    return this.engine;
  }

  forced(): ForcedTokenizer {
    return (this.forcedTok ??= new ForcedTokenizer(this.tokenizer, this.vocabSize));
  }

  dispose(): void {
    void this.engine?.then((e) => e.dispose(), () => {});
    this.engine = null;
  }
}

export interface PreparedExtras {
  guide: Guide | null;
  bias?: Float32Array;
  topLogprobs?: number;
  /** The decode loop for these extras: the constrained one under a constraint, else the run-ahead one. */
  decode(d: Decoder, ids: readonly number[], params: SamplingParams, o: Omit<DecodeOptions, 'bias' | 'topLogprobs'>): AsyncGenerator<DecodedBatch, void, undefined>;
  dispose(): void;
}

/** Checks and compiles what `o` asks for (throws before any GPU work). */
export async function prepareExtras(tools: ConstraintTools, vocab: number, eos: readonly number[], o: ConstraintOptions): Promise<PreparedExtras> {
  const constraint = o.constraint ?? parseResponseFormat(o.responseFormat, 'responseFormat');
  if (o.logprobs !== undefined && (!Number.isInteger(o.logprobs) || o.logprobs < 0 || o.logprobs > TOP_LOGPROBS_MAX)) {
    throw new WebqError('BAD_OPTION', `logprobs (top alternatives per token) must be an integer from 0 to ${TOP_LOGPROBS_MAX}, got ${o.logprobs}`);
  }
  const bias = o.logitBias === undefined ? undefined : biasVector(o.logitBias, vocab);
  const topLogprobs = o.logprobs;
  if (!constraint) return { guide: null, bias, topLogprobs, decode: (d, ids, p, opts) => d.generate(ids, p, { ...opts, bias, topLogprobs }), dispose() {} };
  if (eos.length === 0) throw new WebqError('BAD_OPTION', 'a constrained generation needs an end-of-sequence token, and this model names none (config.json eos_token_id)');
  const engine = await tools.get();
  const matcher = await engine.matcher(constraint);
  const guide: Guide = { matcher, forced: tools.forced(), eosId: eos[0], stats: o.constraintStats };
  return { guide, bias, topLogprobs, decode: (d, ids, p, opts) => generateConstrained(d, ids, p, { ...opts, bias, topLogprobs }, guide), dispose: () => matcher.dispose() };
}

/** OpenAI's logit_bias ({ "123": -100 }) as a dense f32 vector over the vocabulary. */
export function biasVector(logitBias: Readonly<Record<number | string, number>>, vocab: number): Float32Array {
  if (typeof logitBias !== 'object' || logitBias === null || Array.isArray(logitBias)) {
    throw new WebqError('BAD_OPTION', `logit_bias must be an object mapping token ids to biases, got ${JSON.stringify(logitBias)}`);
  }
  const out = new Float32Array(vocab);
  for (const [k, v] of Object.entries(logitBias)) {
    const id = Number(k);
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new WebqError('BAD_OPTION', `logit_bias: token id ${k} is outside the vocabulary [0, ${vocab})`);
    if (typeof v !== 'number' || !(v >= -100 && v <= 100)) throw new WebqError('BAD_OPTION', `logit_bias: the bias of token ${k} must be a number in [-100, 100], got ${JSON.stringify(v)}`);
    out[id] = v;
  }
  return out;
}

/**
 * Entries for the first `count` ids of `batch`. A drawn id has its record; an id the constraint
 * forced has probability 1 under it (logprob 0, itself the only alternative).
 */
export function logprobEntries(batch: DecodedBatch, count: number, topN: number, tok: TextTokenizer): TokenLogprob[] {
  const text = (id: number) => tok.decode([id]);
  const out: TokenLogprob[] = [];
  const drawn = batch.forcedFrom ?? batch.length;
  for (let i = 0; i < count; i++) {
    if (i < drawn && batch.logprobs) {
      const r = decodeLogprobs(batch.logprobs, i * LOGPROB_WORDS, topN);
      out.push({ token: r.token, text: text(r.token), logprob: r.logprob, top: r.top.map((t) => ({ ...t, text: text(t.token) })) });
    } else {
      const id = batch[i];
      out.push({ token: id, text: text(id), logprob: 0, top: topN > 0 ? [{ token: id, text: text(id), logprob: 0 }] : [] });
    }
  }
  return out;
}
