/**
 * `model.chat.completions.create()`: the OpenAI chat-completions shape over LlmModel. The
 * conversation is rendered with the model's chat template (add_generation_prompt) and tokenized
 * without adding special tokens again, as transformers' apply_chat_template does. A follow-up turn
 * shares its rendered prefix with the previous one, so the KV cache of that prefix is reused
 * (usage.prompt_tokens_details.cached_tokens says how much).
 */
import { WebqError } from '../errors.ts';
import type { ChatMessage } from '../text/chat-template.ts';
import type { FinishReason, GenerateOptions, GenerationResult, LlmModel, Usage } from './llm.ts';

export interface ChatCompletionRequest {
  messages: readonly ChatMessage[];
  stream?: boolean;
  max_tokens?: number | null;
  max_completion_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  seed?: number | null;
  stop?: string | readonly string[] | null;
  /** Only 1 choice is generated. */
  n?: number | null;
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
}

export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  /** webq's measurements: prompt tokens per second to the first token, generated tokens per second after it. */
  prefill_tokens_per_second: number;
  decode_tokens_per_second: number;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: 0; message: { role: 'assistant'; content: string }; finish_reason: FinishReason; logprobs: null }[];
  usage: ChatUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: 0; delta: { role?: 'assistant'; content?: string }; finish_reason: FinishReason | null; logprobs: null }[];
  /** On the last chunk; on every one with stream_options.continuous_usage_stats (the usage so far). */
  usage?: ChatUsage;
}

let counter = 0;
const completionId = () => `chatcmpl-webq-${Date.now().toString(36)}-${(counter++).toString(36)}`;

function usage(u: Usage): ChatUsage {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
    prefill_tokens_per_second: u.prefillTokensPerSecond,
    decode_tokens_per_second: u.decodeTokensPerSecond,
  };
}

function optional(v: number | null | undefined): number | undefined {
  return v === null ? undefined : v;
}

export class ChatCompletions {
  constructor(private readonly model: LlmModel) {}

  /** Prompt ids for the conversation, dropping the oldest turns to fit when truncation is 'auto'. */
  private prompt(req: ChatCompletionRequest, room: number): number[] {
    let messages = [...req.messages];
    for (;;) {
      const text = this.model.renderChat(messages, req.chat_template_kwargs);
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

  create(req: ChatCompletionRequest & { stream: true }, opts?: { signal?: AbortSignal }): AsyncIterable<ChatCompletionChunk>;
  create(req: ChatCompletionRequest & { stream?: false | null }, opts?: { signal?: AbortSignal }): Promise<ChatCompletion>;
  create(req: ChatCompletionRequest, opts: { signal?: AbortSignal } = {}): AsyncIterable<ChatCompletionChunk> | Promise<ChatCompletion> {
    const run = () => {
      if (typeof req !== 'object' || req === null) throw new WebqError('BAD_OPTION', 'chat.completions.create needs a request object with messages');
      if ((req.n ?? 1) !== 1) throw new WebqError('BAD_OPTION', `n must be 1 (webq generates one choice), got ${req.n}`);
      if (req.truncation !== undefined && req.truncation !== 'auto' && req.truncation !== 'disabled') {
        throw new WebqError('BAD_OPTION', `truncation must be 'auto' or 'disabled', got ${JSON.stringify(req.truncation)}`);
      }
      const ids = this.prompt(req, this.model.contextLength);
      const g: GenerateOptions = {
        maxTokens: optional(req.max_completion_tokens) ?? optional(req.max_tokens),
        temperature: optional(req.temperature),
        topP: optional(req.top_p),
        topK: req.top_k,
        minP: req.min_p,
        repetitionPenalty: req.repetition_penalty,
        seed: optional(req.seed),
        stop: req.stop ?? undefined,
        signal: opts.signal,
      };
      return { ids, g };
    };
    const id = completionId();
    const created = Math.floor(Date.now() / 1000);
    const name = req?.model ?? this.model.describe;
    if (req?.stream) {
      const model = this.model;
      return {
        async *[Symbol.asyncIterator]() {
          const { ids, g } = run();
          const s = model.generate(ids, { ...g, stream: true });
          const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finish: FinishReason | null): ChatCompletionChunk => ({
            id, object: 'chat.completion.chunk', created, model: name, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
          });
          yield chunk({ role: 'assistant', content: '' }, null);
          const continuous = req.stream_options?.continuous_usage_stats === true;
          for await (const c of s) yield { ...chunk({ content: c.text }, null), ...(continuous && { usage: usage(c.usage) }) };
          const r: GenerationResult = await s.result;
          yield { ...chunk({}, r.finishReason), usage: usage(r.usage) };
        },
      };
    }
    return (async () => {
      const { ids, g } = run();
      const r = await this.model.generate(ids, g);
      return {
        id, object: 'chat.completion', created, model: name,
        choices: [{ index: 0, message: { role: 'assistant', content: r.text }, finish_reason: r.finishReason, logprobs: null }],
        usage: usage(r.usage),
      } satisfies ChatCompletion;
    })();
  }
}
