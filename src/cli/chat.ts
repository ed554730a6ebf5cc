/**
 * `webq chat <model>`: an interactive chat on a terminal or over piped stdin, one user message per
 * line. The conversation is kept and sent whole each turn through model.chat.completions.create,
 * so the KV cache of what the turns share is reused. Ctrl-C during a reply stops that reply; at
 * the prompt it ends the chat, as an empty line or end of input do.
 */
import { createInterface } from 'node:readline';
import type { ChatCompletionChunk, ChatUsage } from '../api/chat.ts';
import type { LlmModel, Usage } from '../api/llm.ts';
import { WebqError } from '../errors.ts';
import type { ChatMessage } from '../text/chat-template.ts';
import type { Command } from './command.ts';
import { formatStats } from './generate.ts';
import { CONSTRAINT_HELP, CONSTRAINT_VALUES, constraintOption } from './constraint-args.ts';
import type { ResponseFormat } from '../structured/constraint.ts';
import { LLM_HELP, LLM_VALUES, llmLoadOptions, loadLlm, oneModel, parseArgs, SAMPLING_HELP, SAMPLING_VALUES, samplingOptions, type ModelCliIO, type SamplingOptions, CACHE_FLAGS } from './model-args.ts';

const USAGE = `usage: webq chat <model> [--system TEXT] [options]

Chats with an instruction-tuned Llama, Mistral, Qwen2 or Qwen3 model, using its chat template.
Type a message and press Enter; the reply streams back. Standard input may also be piped,
one message per line. An empty line or end of input ends the chat. Ctrl-C during a reply
stops it (what was written stays in the conversation); Ctrl-C at the prompt ends the chat.
When the conversation outgrows the context, its oldest turns are dropped.

options:
  --system TEXT           a system message that starts the conversation
  --verbose               after each reply (a stopped one too), a stats line on stderr (with
                          the prompt tokens reused from the cache)
  --temperature T         0 = greedy (default: what generation_config.json says, else 0)
${SAMPLING_HELP}
${CONSTRAINT_HELP}
                          (each reply: --json-schema, --regex or --grammar)
${LLM_HELP}
  -h, --help`;

/** The running chat, for whoever drives it (a test, or a signal handler). */
export interface ChatSession {
  /** What Ctrl-C does: stops the reply being written, or at the prompt ends the chat. */
  interrupt(): void;
}

export interface ChatIO extends ModelCliIO {
  /** Where messages come from; default process.stdin. */
  input?: NodeJS.ReadableStream;
  /** The input is a terminal: show a prompt, and Ctrl-C arrives through readline (default: process.stdin.isTTY). */
  inputIsTTY?: boolean;
  /** Called once the chat is ready to read its first message. */
  onChatSession?(session: ChatSession): void;
}

const usageOf = (u: ChatUsage): Usage => ({
  promptTokens: u.prompt_tokens,
  completionTokens: u.completion_tokens,
  cachedTokens: u.prompt_tokens_details.cached_tokens,
  prefillTokensPerSecond: u.prefill_tokens_per_second,
  decodeTokensPerSecond: u.decode_tokens_per_second,
});

interface Turn {
  system: string | undefined;
  verbose: boolean;
  sampling: SamplingOptions;
  responseFormat: ResponseFormat | undefined;
}

/** Reads messages until an empty line, end of input or Ctrl-C at the prompt, streaming each reply. */
async function converse(model: LlmModel, io: ChatIO, o: Turn): Promise<void> {
  const input = io.input ?? process.stdin;
  const tty = io.inputIsTTY ?? (io.input === undefined && process.stdin.isTTY === true);
  const rl = createInterface({ input, output: tty ? process.stdout : undefined, terminal: tty, prompt: '> ' });
  // Made before anything awaits, so no line read in between is lost.
  const lines = rl[Symbol.asyncIterator]();
  let reply: AbortController | null = null;
  const interrupt = () => (reply ? reply.abort() : rl.close());
  rl.on('SIGINT', interrupt);
  // Piped stdin in a terminal: Ctrl-C reaches the process, not readline.
  const processSignal = input === process.stdin && !tty;
  if (processSignal) process.on('SIGINT', interrupt);
  try {
    io.onChatSession?.({ interrupt });
    const s = o.sampling;
    const messages: ChatMessage[] = o.system === undefined ? [] : [{ role: 'system', content: o.system }];
    for (;;) {
      if (tty) rl.prompt();
      const next = await lines.next();
      if (next.done || next.value.trim() === '') return;
      messages.push({ role: 'user', content: next.value });
      const abort = (reply = new AbortController());
      const request = {
        messages, stream: true, truncation: 'auto', max_tokens: s.maxTokens, temperature: s.temperature, top_p: s.topP, top_k: s.topK,
        min_p: s.minP, repetition_penalty: s.repetitionPenalty, seed: s.seed, stop: s.stop,
        // The usage so far on every chunk: a stopped reply's stats are its last chunk's.
        stream_options: { continuous_usage_stats: o.verbose },
        response_format: o.responseFormat,
      } as const;
      let content = '';
      let last: ChatCompletionChunk | undefined;
      let stopped = false;
      try {
        for await (const chunk of model.chat.completions.create(request, { signal: abort.signal })) {
          const text = chunk.choices[0].delta.content;
          if (text) io.stdout(text);
          content += text ?? '';
          last = chunk;
        }
      } catch (e) {
        if (!abort.signal.aborted) throw e;
        stopped = true;
      } finally {
        reply = null; // from here Ctrl-C is at the prompt
      }
      io.stdout('\n');
      if (stopped) io.stderr('[reply stopped]\n');
      if (o.verbose && last?.usage) io.stderr(`${formatStats(usageOf(last.usage), stopped ? 'stopped' : (last.choices[0].finish_reason ?? 'stop'))}\n`);
      // A stopped reply stays as far as it went, so the conversation is what the user saw.
      messages.push({ role: 'assistant', content });
    }
  } finally {
    if (processSignal) process.off('SIGINT', interrupt);
    rl.close();
  }
}

export const chatCommand: Command = {
  summary: 'chat with an LLM interactively (streamed replies, cached turns)',
  usage: USAGE,
  async run(args, io: ChatIO) {
    const p = parseArgs('chat', args, { flags: ['--verbose', ...CACHE_FLAGS], values: ['--system', ...LLM_VALUES, ...SAMPLING_VALUES, ...CONSTRAINT_VALUES] });
    const location = oneModel('chat', p);
    const load = llmLoadOptions('chat', p);
    const turn: Turn = { system: p.values.get('--system'), verbose: p.flags.has('--verbose'), sampling: samplingOptions('chat', p), responseFormat: await constraintOption('chat', p) };
    const model = await loadLlm(location, io, load);
    try {
      if (!model.chatTemplate) {
        throw new WebqError(
          'NO_CHAT_TEMPLATE',
          `${model.describe}: has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json), so it cannot take chat messages; plain \`webq generate <model> --prompt TEXT\` works with it`,
        );
      }
      await converse(model, io, turn);
      return 0;
    } finally {
      model.dispose();
    }
  },
};
