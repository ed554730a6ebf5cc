/**
 * OpenAI request bodies -> webq's calls, each field checked and a bad one named (400 with
 * `param`). What webq cannot do is refused by name rather than ignored: logprobs, tools,
 * penalties other than 0 (webq has repetition_penalty), non-text content parts, echo, suffix,
 * token-id inputs to embeddings.
 */
import type { ChatCompletionRequest } from '../api/chat.ts';
import type { ChatMessage } from '../text/chat-template.ts';
import { badRequest } from './errors.ts';

export type Body = Record<string, unknown>;

export interface Limits {
  /** Largest max_tokens a request may ask for (and the default cap). */
  maxTokens: number;
  /** Most embedding inputs in one request. */
  maxInputs: number;
}

export function asBody(v: unknown): Body {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badRequest('the request body must be a JSON object');
  return v as Body;
}

const has = (b: Body, k: string) => b[k] !== undefined && b[k] !== null;

function num(b: Body, k: string, ok: (n: number) => boolean, want: string): number | undefined {
  if (!has(b, k)) return undefined;
  const v = b[k];
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw badRequest(`"${k}" must be ${want}, got ${JSON.stringify(v)?.slice(0, 60)}`, k);
  return v;
}

function bool(b: Body, k: string): boolean | undefined {
  if (!has(b, k)) return undefined;
  if (typeof b[k] !== 'boolean') throw badRequest(`"${k}" must be true or false, got ${JSON.stringify(b[k])?.slice(0, 60)}`, k);
  return b[k] as boolean;
}

/** Fields webq refuses unless they hold their "off" value. */
function unsupported(b: Body, fields: Record<string, (v: unknown) => boolean>, why: Record<string, string> = {}): void {
  for (const [k, off] of Object.entries(fields)) {
    if (has(b, k) && !off(b[k])) throw badRequest(`"${k}" is not supported by webq${why[k] ? `: ${why[k]}` : ''}`, k, 'unsupported_parameter');
  }
}

function stop(b: Body): string[] | undefined {
  if (!has(b, 'stop')) return undefined;
  const v = b.stop;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 4 || !list.every((s) => typeof s === 'string' && s.length > 0)) throw badRequest('"stop" must be a non-empty string or a list of up to 4 of them', 'stop');
  return list as string[];
}

/** The sampling fields both generation endpoints share, and max_tokens against the server's limit. */
function sampling(b: Body, limits: Limits, maxKey: 'max_tokens' | 'max_completion_tokens') {
  const max = num(b, maxKey, (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
  if (max !== undefined && max > limits.maxTokens) throw badRequest(`"${maxKey}" is ${max}; this server allows at most ${limits.maxTokens} (--max-tokens)`, maxKey, 'max_tokens_too_large');
  unsupported(b, { presence_penalty: (v) => v === 0, frequency_penalty: (v) => v === 0, logit_bias: (v) => typeof v === 'object' && Object.keys(v as object).length === 0 }, {
    presence_penalty: 'use "repetition_penalty" (transformers\' multiplicative penalty)',
    frequency_penalty: 'use "repetition_penalty" (transformers\' multiplicative penalty)',
  });
  return {
    maxTokens: max,
    // Choices of one prompt, decoded together (LlmModel.generateBatch); choice i's seed is seed + i.
    n: num(b, 'n', (n) => Number.isInteger(n) && n >= 1 && n <= 16, 'an integer from 1 to 16'),
    temperature: num(b, 'temperature', (n) => n >= 0 && n <= 2, 'a number from 0 to 2'),
    topP: num(b, 'top_p', (n) => n > 0 && n <= 1, 'a number in (0, 1]'),
    topK: num(b, 'top_k', (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0'),
    minP: num(b, 'min_p', (n) => n >= 0 && n < 1, 'a number in [0, 1)'),
    repetitionPenalty: num(b, 'repetition_penalty', (n) => n > 0, 'a number > 0'),
    seed: num(b, 'seed', (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 32, 'an integer in [0, 2^32)'),
    stop: stop(b),
    stream: bool(b, 'stream') ?? false,
    includeUsage: streamOptions(b),
  };
}

function streamOptions(b: Body): boolean {
  if (!has(b, 'stream_options')) return false;
  const o = b.stream_options;
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw badRequest('"stream_options" must be an object', 'stream_options');
  if (b.stream !== true) throw badRequest('"stream_options" is only allowed with "stream": true', 'stream_options');
  const u = (o as Body).include_usage;
  if (u !== undefined && typeof u !== 'boolean') throw badRequest('"stream_options.include_usage" must be true or false', 'stream_options.include_usage');
  return u === true;
}

/** Message content: a string, or text parts ({type: "text", text}) joined; other parts are refused. */
function content(v: unknown, i: number): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (Array.isArray(v)) {
    return v
      .map((p, j) => {
        const part = p as { type?: unknown; text?: unknown };
        if (part?.type === 'text' && typeof part.text === 'string') return part.text;
        throw badRequest(`messages[${i}].content[${j}] is a ${JSON.stringify(part?.type)} part; webq models take text parts only`, `messages[${i}].content`, 'unsupported_content');
      })
      .join('');
  }
  throw badRequest(`messages[${i}].content must be a string or a list of text parts`, `messages[${i}].content`);
}

export interface ChatParams {
  request: ChatCompletionRequest & { stream: boolean };
  includeUsage: boolean;
}

export function parseChat(b: Body, limits: Limits): ChatParams {
  if (!Array.isArray(b.messages) || b.messages.length === 0) throw badRequest('"messages" must be a non-empty list of {role, content}', 'messages', has(b, 'messages') ? 'invalid_value' : 'missing_required_parameter');
  const messages: ChatMessage[] = (b.messages as unknown[]).map((m, i) => {
    const msg = m as { role?: unknown; content?: unknown; tool_calls?: unknown };
    if (typeof msg !== 'object' || msg === null || typeof msg.role !== 'string' || msg.role === '') throw badRequest(`messages[${i}] must be an object with a "role" string`, `messages[${i}]`);
    if (msg.tool_calls !== undefined) throw badRequest(`messages[${i}].tool_calls: tool calls are not supported by webq`, `messages[${i}].tool_calls`, 'unsupported_parameter');
    return { role: msg.role, content: content(msg.content, i) };
  });
  unsupported(b, {
    tools: (v) => Array.isArray(v) && v.length === 0,
    tool_choice: (v) => v === 'none',
    functions: (v) => Array.isArray(v) && v.length === 0,
    logprobs: (v) => v === false,
    top_logprobs: (v) => v === 0,
    response_format: (v) => (v as { type?: unknown })?.type === 'text',
    audio: () => false,
    modalities: (v) => Array.isArray(v) && v.every((x) => x === 'text'),
  });
  if (has(b, 'max_tokens') && has(b, 'max_completion_tokens')) throw badRequest('give "max_completion_tokens" or "max_tokens", not both', 'max_tokens');
  const s = sampling(b, limits, has(b, 'max_completion_tokens') ? 'max_completion_tokens' : 'max_tokens');
  const kwargs = b.chat_template_kwargs;
  if (kwargs !== undefined && (typeof kwargs !== 'object' || kwargs === null || Array.isArray(kwargs))) throw badRequest('"chat_template_kwargs" must be an object', 'chat_template_kwargs');
  const truncation = b.truncation;
  if (truncation !== undefined && truncation !== 'auto' && truncation !== 'disabled') throw badRequest('"truncation" must be "auto" or "disabled"', 'truncation');
  // A draft model would be a path on the server's disk, which a client does not choose.
  if ((b.speculative as { method?: unknown } | null)?.method === 'draft') throw badRequest('"speculative": method "draft" is not available over HTTP (it names a model on the server); use "lookup" or "self"', 'speculative', 'unsupported_parameter');
  return {
    request: {
      messages,
      stream: s.stream,
      // Unset: the model's own default (generation_config.json max_new_tokens, else 256).
      max_tokens: s.maxTokens,
      temperature: s.temperature,
      top_p: s.topP,
      top_k: s.topK,
      min_p: s.minP,
      repetition_penalty: s.repetitionPenalty,
      seed: s.seed,
      stop: s.stop,
      n: s.n,
      chat_template_kwargs: kwargs as Record<string, unknown> | undefined,
      truncation: truncation as 'auto' | 'disabled' | undefined,
      // webq's own field, checked by generate (a bad one is a 400 invalid_value).
      ...(b.speculative != null && { speculative: b.speculative as ChatCompletionRequest['speculative'] }),
    },
    includeUsage: s.includeUsage,
  };
}

export interface CompletionParams {
  prompt: string | number[];
  /** Choices (default 1). */
  n: number;
  options: { maxTokens: number; temperature?: number; topP?: number; topK?: number; minP?: number; repetitionPenalty?: number; seed?: number; stop?: string[] };
  stream: boolean;
  includeUsage: boolean;
}

export function parseCompletion(b: Body, limits: Limits): CompletionParams {
  let prompt = b.prompt;
  if (Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] === 'string') prompt = prompt[0];
  const ids = Array.isArray(prompt) && prompt.length > 0 && prompt.every((x) => Number.isInteger(x) && (x as number) >= 0);
  if (typeof prompt !== 'string' && !ids) {
    throw badRequest('"prompt" must be a string, a list of one string, or a list of token ids (webq completes one prompt per request)', 'prompt', has(b, 'prompt') ? 'invalid_value' : 'missing_required_parameter');
  }
  unsupported(b, { echo: (v) => v === false, logprobs: (v) => v === 0 || v === false, best_of: (v) => v === 1, suffix: (v) => v === '' });
  const s = sampling(b, limits, 'max_tokens');
  const { stream, includeUsage, maxTokens, n, ...rest } = s;
  // OpenAI's default for completions is 16 tokens.
  return { prompt: prompt as string | number[], n: n ?? 1, options: { ...rest, maxTokens: maxTokens ?? Math.min(16, limits.maxTokens) }, stream, includeUsage };
}

export interface EmbeddingParams {
  input: string[];
  format: 'float' | 'base64';
  dimensions: number | undefined;
}

export function parseEmbeddings(b: Body, limits: Limits): EmbeddingParams {
  const input = typeof b.input === 'string' ? [b.input] : b.input;
  if (!Array.isArray(input) || input.length === 0 || !input.every((x) => typeof x === 'string')) {
    const ids = Array.isArray(input) && input.length > 0 && input.every((x) => typeof x === 'number' || Array.isArray(x));
    throw badRequest(ids ? '"input" as token ids is not supported by webq; send the text' : '"input" must be a string or a non-empty list of strings', 'input', has(b, 'input') ? 'invalid_value' : 'missing_required_parameter');
  }
  if (input.length > limits.maxInputs) throw badRequest(`"input" has ${input.length} texts; this server embeds at most ${limits.maxInputs} per request`, 'input');
  const format = b.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') throw badRequest('"encoding_format" must be "float" or "base64"', 'encoding_format');
  const dimensions = num(b, 'dimensions', (n) => Number.isInteger(n) && n >= 1, 'a positive integer');
  return { input: input as string[], format, dimensions };
}

/** Float32 values as OpenAI's base64 embedding: the little-endian bytes, base64-encoded. */
export function base64Floats(v: Float32Array): string {
  const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
