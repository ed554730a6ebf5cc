/**
 * `model.chat.completions.create()`: the OpenAI chat-completions shape over LlmModel. The
 * conversation is rendered with the model's chat template (add_generation_prompt) and tokenized
 * without adding special tokens again, as transformers' apply_chat_template does. A follow-up turn
 * shares its rendered prefix with the previous one, so the KV cache of that prefix is reused
 * (usage.prompt_tokens_details.cached_tokens says how much).
 *
 * Beyond text: response_format (JSON, a JSON Schema, a regex, a grammar), tools (rendered by the
 * template, calls parsed back; constrained to their schemas when required or named), logprobs with
 * top_logprobs, logit_bias, and n choices (generated one after another).
 */
import { WebqError } from '../errors.ts';
import type { ResponseFormat } from '../structured/constraint.ts';
import type { ChatMessage } from '../text/chat-template.ts';
import type { TokenLogprob } from './generate-extras.ts';
import type { FinishReason, GenerateOptions, GenerationResult, LlmModel, Usage } from './llm.ts';
import { ToolStreamParser } from './tool-stream.ts';
import { parseToolCalls, planTools, type ChatTool, type ToolCall, type ToolChoice, type ToolPlan } from './tools.ts';

export type { ChatTool, ToolCall, ToolChoice } from './tools.ts';

/** A message as OpenAI takes it: an assistant's content may be null beside its tool_calls. */
export interface ChatRequestMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | 'developer' | string;
  content?: string | null;
  tool_calls?: readonly ToolCall[] | null;
  tool_call_id?: string;
  name?: string;
}

export interface ChatCompletionRequest {
  messages: readonly (ChatMessage | ChatRequestMessage)[];
  stream?: boolean | null;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  stop?: string | readonly string[] | null;
  /** Choices to generate (1-16), one after another; choice i samples with seed + i. */
  n?: number | null;
  /** webq's: speculative decoding, { method: 'lookup' | 'self' | 'draft', k } (GenerateOptions.speculative). */
  speculative?: GenerateOptions['speculative'] | null;
  /** Constrain the reply: { type: 'json_object' }, { type: 'json_schema', json_schema }, or webq's regex / grammar. */
  response_format?: ResponseFormat | null;
  tools?: readonly ChatTool[] | null;
  tool_choice?: ToolChoice | null;
  /** false: at most one call per reply (when a call is required). Default true. */
  parallel_tool_calls?: boolean | null;
  /** Each token's log probability (after bias, penalties and temperature). */
  logprobs?: boolean | null;
  /** With logprobs: the most likely alternatives per token, 0-20. */
  top_logprobs?: number | null;
  /** Token id -> bias in [-100, 100], added to the logits. */
  logit_bias?: Readonly<Record<string, number>> | null;
  /** Extensions beyond OpenAI's parameters, as vLLM and llama.cpp's server name them. */
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  /** Extra variables for the chat template (e.g. { enable_thinking: false } for Qwen3). */
  chat_template_kwargs?: Record<string, unknown>;
  /**
   * 'disabled' (default): a conversation longer than the context is an error. 'auto': the oldest
   * turns after any system message are dropped until it fits (as OpenAI's Responses API does).
   */
  truncation?: 'auto' | 'disabled';
  /**
   * The last chunk of a stream always has the usage (OpenAI's include_usage is implied).
   * continuous_usage_stats (vLLM's name): every content chunk has the usage so far too, so a stream
   * stopped early (an abort) still says how many tokens it gave.
   */
  stream_options?: { include_usage?: boolean | null; continuous_usage_stats?: boolean | null } | null;
  model?: string;
  user?: string;
}

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  /** With `speculative`: OpenAI's counts of drafted (predicted) tokens the model accepted and rejected. */
  completion_tokens_details?: { accepted_prediction_tokens: number; rejected_prediction_tokens: number };
  /** With `speculative`: forwards of the target model (webq's). */
  target_forwards?: number;
  /** webq's measurements: prompt tokens per second to the first token, generated tokens per second after it. */
  prefill_tokens_per_second: number;
  decode_tokens_per_second: number;
}

export type ChatFinishReason = FinishReason | 'tool_calls';

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export interface ChatLogprobs {
  content: ChatTokenLogprob[];
  refusal: null;
}

export interface ChatCompletionMessage {
  role: 'assistant';
  content: string | null;
  refusal: null;
  tool_calls?: ToolCall[];
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: number; message: ChatCompletionMessage; finish_reason: ChatFinishReason; logprobs: ChatLogprobs | null }[];
  usage: ChatUsage;
}

export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: {
    index: number;
    delta: { role?: 'assistant'; content?: string | null; tool_calls?: ToolCallDelta[] };
    finish_reason: ChatFinishReason | null;
    logprobs: ChatLogprobs | null;
  }[];
  /** On the last chunk; on every one with stream_options.continuous_usage_stats (the usage so far). */
  usage?: ChatUsage;
}

let counter = 0;
const completionId = () => `chatcmpl-webq-${Date.now().toString(36)}-${(counter++).toString(36)}`;

function usage(u: Usage, completion = u.completionTokens): ChatUsage {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: completion,
    total_tokens: u.promptTokens + completion,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
    prefill_tokens_per_second: u.prefillTokensPerSecond,
    decode_tokens_per_second: u.decodeTokensPerSecond,
    ...predictionUsage(u),
  };
}

/** The speculative counts of a Usage in OpenAI's names (none without speculation). */
export function predictionUsage(u: Usage): Pick<ChatUsage, 'completion_tokens_details' | 'target_forwards'> {
  const d = u.completionTokensDetails;
  if (!d) return {};
  return { completion_tokens_details: { accepted_prediction_tokens: d.acceptedPredictionTokens, rejected_prediction_tokens: d.rejectedPredictionTokens }, target_forwards: u.targetForwards };
}

function optional<T>(v: T | null | undefined): T | undefined {
  return v === null ? undefined : v;
}

const utf8 = new TextEncoder();
function chatLogprobs(entries: readonly TokenLogprob[]): ChatLogprobs {
  const one = (t: { text: string; logprob: number }) => ({ token: t.text, logprob: t.logprob, bytes: Array.from(utf8.encode(t.text)) });
  return { content: entries.map((e) => ({ ...one(e), top_logprobs: e.top.map(one) })), refusal: null };
}

/** OpenAI messages -> what chat templates expect: content a string, tool call arguments objects. */
function templateMessages(messages: readonly (ChatMessage | ChatRequestMessage)[]): ChatMessage[] {
  if (!Array.isArray(messages)) return messages as unknown as ChatMessage[]; // the template's checks name the problem
  return messages.map((m) => {
    if (typeof m !== 'object' || m === null || (m.content !== null && m.tool_calls == null)) return m as ChatMessage;
    const out: ChatMessage = { ...(m as ChatMessage), content: m.content ?? '' };
    if (m.tool_calls) {
      out.tool_calls = (m.tool_calls as readonly ToolCall[]).map((c) => {
        let args: string | Record<string, unknown> = c.function.arguments;
        try {
          const v = JSON.parse(c.function.arguments);
          if (typeof v === 'object' && v !== null) args = v;
        } catch {
          // not JSON: the template gets the string
        }
        return { ...c, function: { name: c.function.name, arguments: args } };
      });
    } else delete out.tool_calls;
    return out;
  });
}

interface Run {
  ids: number[];
  g: GenerateOptions;
  n: number;
  plan: ToolPlan | null;
}

export class ChatCompletions {
  constructor(private readonly model: LlmModel) {}

  /** Prompt ids for the conversation, dropping the oldest turns to fit when truncation is 'auto'. */
  private prompt(req: ChatCompletionRequest, extra: Record<string, unknown> | undefined, room: number): number[] {
    let messages = templateMessages(req.messages);
    for (;;) {
      const text = this.model.renderChat(messages, extra);
      const ids = this.model.encode(text, { addSpecialTokens: false });
      if (ids.length < room || req.truncation !== 'auto') return ids;
      // Drop the oldest message after a leading system prompt; the newest one always stays.
      const first = messages[0]?.role === 'system' ? 1 : 0;
      if (messages.length - first <= 1) {
        throw new WebqError('CONTEXT_FULL', `the last message alone is ${ids.length} tokens, more than the context of ${this.model.contextLength} allows; shorten it`);
      }
      messages = [...messages.slice(0, first), ...messages.slice(first + 1)];
    }
  }

  /** Checks the request and renders the prompt: every error comes before any GPU work. */
  private run(req: ChatCompletionRequest, signal?: AbortSignal): Run {
    if (typeof req !== 'object' || req === null) throw new WebqError('BAD_OPTION', 'chat.completions.create needs a request object with messages');
    const n = req.n ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > 16) throw new WebqError('BAD_OPTION', `n must be an integer from 1 to 16, got ${req.n}`);
    if (req.truncation !== undefined && req.truncation !== 'auto' && req.truncation !== 'disabled') {
      throw new WebqError('BAD_OPTION', `truncation must be 'auto' or 'disabled', got ${JSON.stringify(req.truncation)}`);
    }
    if (req.top_logprobs != null && req.logprobs !== true) throw new WebqError('BAD_OPTION', 'top_logprobs needs logprobs: true');
    const tools = req.tools && req.tools.length ? req.tools : null;
    if (!tools && req.tool_choice != null && req.tool_choice !== 'none' && req.tool_choice !== 'auto') {
      throw new WebqError('BAD_OPTION', `tool_choice ${JSON.stringify(req.tool_choice)} needs tools`);
    }
    const template = this.model.chatTemplate;
    const plan = tools && template ? planTools(tools, req.tool_choice, req.parallel_tool_calls, template, this.model.describe) : null;
    const extra = tools ? { ...req.chat_template_kwargs, tools } : req.chat_template_kwargs;
    const ids = this.prompt(req, extra, this.model.contextLength);
    const g: GenerateOptions = {
      maxTokens: optional(req.max_completion_tokens) ?? optional(req.max_tokens),
      temperature: optional(req.temperature),
      topP: optional(req.top_p),
      topK: req.top_k,
      minP: req.min_p,
      repetitionPenalty: req.repetition_penalty,
      seed: optional(req.seed),
      stop: req.stop ?? undefined,
      signal,
      responseFormat: optional(req.response_format),
      constraint: plan?.constraint ?? undefined,
      logitBias: optional(req.logit_bias),
      logprobs: req.logprobs ? (req.top_logprobs ?? 0) : undefined,
      speculative: optional(req.speculative),
    };
    return { ids, g, n, plan };
  }

  /** Choice i's options: its own seed (seed + i) when a seed is given. */
  private static choice(g: GenerateOptions, i: number): GenerateOptions {
    return g.seed === undefined || i === 0 ? g : { ...g, seed: (g.seed + i) >>> 0 };
  }

  /** The reply as an OpenAI message: tool calls parsed out when tools are in play. */
  private message(r: GenerationResult, plan: ToolPlan | null): { message: ChatCompletionMessage; finish: ChatFinishReason } {
    if (!plan?.parse) return { message: { role: 'assistant', content: r.text, refusal: null }, finish: r.finishReason };
    const p = parseToolCalls(r.text, plan.format);
    if (!p.calls.length) return { message: { role: 'assistant', content: p.content ?? '', refusal: null }, finish: r.finishReason };
    return { message: { role: 'assistant', content: p.content, refusal: null, tool_calls: p.calls }, finish: r.finishReason === 'length' ? 'length' : 'tool_calls' };
  }

  create(req: ChatCompletionRequest & { stream: true }, opts?: { signal?: AbortSignal }): AsyncIterable<ChatCompletionChunk>;
  create(req: ChatCompletionRequest & { stream?: false | null }, opts?: { signal?: AbortSignal }): Promise<ChatCompletion>;
  create(req: ChatCompletionRequest, opts: { signal?: AbortSignal } = {}): AsyncIterable<ChatCompletionChunk> | Promise<ChatCompletion> {
    const id = completionId();
    const created = Math.floor(Date.now() / 1000);
    const name = req?.model ?? this.model.describe;
    if (req?.stream) {
      const self = this;
      return {
        async *[Symbol.asyncIterator]() {
          const { ids, g, n, plan } = self.run(req, opts.signal);
          const chunk = (index: number, delta: ChatCompletionChunk['choices'][0]['delta'], finish: ChatFinishReason | null, lp: TokenLogprob[] | null = null): ChatCompletionChunk => ({
            id, object: 'chat.completion.chunk', created, model: name, choices: [{ index, delta, finish_reason: finish, logprobs: lp ? chatLogprobs(lp) : null }],
          });
          const continuous = req.stream_options?.continuous_usage_stats === true;
          let completion = 0;
          for (let i = 0; i < n; i++) {
            const s = self.model.generate(ids, { ...ChatCompletions.choice(g, i), stream: true });
            const parser = plan?.parse ? new ToolStreamParser(plan.format) : null;
            let calls = 0;
            const out = function* (content: string, found: ToolCall[], lp: TokenLogprob[] | null) {
              if (content || lp) yield chunk(i, { content }, null, lp);
              for (const c of found) {
                yield chunk(i, { tool_calls: [{ index: calls, id: c.id, type: 'function', function: { name: c.function.name, arguments: '' } }] }, null);
                yield chunk(i, { tool_calls: [{ index: calls++, function: { arguments: c.function.arguments } }] }, null);
              }
            };
            yield chunk(i, { role: 'assistant', content: '' }, null);
            for await (const c of s) {
              const p = parser ? parser.push(c.text) : { content: c.text, calls: [] };
              for (const x of out(p.content, p.calls, c.logprobs ?? null)) yield continuous ? { ...x, usage: usage(c.usage, completion + c.usage.completionTokens) } : x;
            }
            if (parser) {
              const p = parser.flush();
              yield* out(p.content, p.calls, null);
            }
            const r: GenerationResult = await s.result;
            completion += r.usage.completionTokens;
            const finish = calls > 0 && r.finishReason !== 'length' ? 'tool_calls' : r.finishReason;
            yield { ...chunk(i, {}, finish), ...(i === n - 1 && { usage: usage(r.usage, completion) }) };
          }
        },
      };
    }
    return (async () => {
      const { ids, g, n, plan } = this.run(req, opts.signal);
      const choices: ChatCompletion['choices'] = [];
      let last: GenerationResult | null = null;
      let completion = 0;
      // n > 1: the choices decode together (one forward per token for all of them) where the
      // options allow a batch (generateBatch runs them one after another otherwise).
      const batch = n > 1 ? await this.model.generateBatch(Array.from({ length: n }, () => ids), Array.from({ length: n }, (_, i) => ChatCompletions.choice(g, i))) : null;
      for (let i = 0; i < n; i++) {
        const r = batch ? batch[i] : await this.model.generate(ids, ChatCompletions.choice(g, i));
        const { message, finish } = this.message(r, plan);
        choices.push({ index: i, message, finish_reason: finish, logprobs: r.logprobs ? chatLogprobs(r.logprobs) : null });
        completion += r.usage.completionTokens;
        last = r;
      }
      return { id, object: 'chat.completion', created, model: name, choices, usage: usage(last!.usage, completion) } satisfies ChatCompletion;
    })();
  }
}
