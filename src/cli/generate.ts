/**
 * `webq generate <model> --prompt TEXT`: text from a LLaMA-family model, streamed to stdout as it
 * is generated (stats on stderr), or the prompt ids, generated ids and text as one JSON line.
 */
import type { FinishReason, Usage } from '../api/llm.ts';
import { DEFAULT_DRAFT_TOKENS, MAX_DRAFT_TOKENS, type SpeculativeOptions } from '../generate/speculative.ts';
import { UsageError, type Command } from './command.ts';
import { CONSTRAINT_HELP, CONSTRAINT_VALUES, constraintOption } from './constraint-args.ts';
import { LLM_HELP, LLM_VALUES, llmLoadOptions, loadLlm, numberOption, oneModel, parseArgs, type ParsedArgs, readPrompt, SAMPLING_HELP, SAMPLING_VALUES, samplingOptions, type ModelCliIO, CACHE_FLAGS } from './model-args.ts';

const USAGE = `usage: webq generate <model> --prompt TEXT [options]

Generates text after TEXT with a Llama, Mistral, Qwen2 or Qwen3 model and streams it to
stdout (a newline ends it); the prompt is tokenized as the model's tokenizer does (BOS only
where its config adds one). Stats go to stderr: prompt and generated tokens, prefill and
decode speed, and why it stopped (length: --max-tokens reached; stop: end of sequence or a
stop string).

<model> is a local folder, a folder URL or a Hugging Face hub id (org/name or org/name@rev).

options:
  --prompt TEXT           the prompt; "-" reads it from stdin (one final newline dropped);
                          "" starts from the tokenizer's BOS alone (an error where it adds none)
  --json                  print only {"ids": [prompt ids], "tokens": [generated ids], "text": "..."}
  --temperature T         0 = greedy (default 0, whatever generation_config.json says)
  --speculative M         speculative decoding: draft tokens and verify them in one forward (same
                          output; sampled output too, for a given --seed). M is lookup (n-grams of
                          the prompt and the text so far), self (the model's own first half of
                          layers) or draft=MODEL (a smaller model with the same tokenizer)
  --draft-tokens K        most drafted tokens per forward with --speculative (1..${MAX_DRAFT_TOKENS}, default ${DEFAULT_DRAFT_TOKENS})
${SAMPLING_HELP}
${CONSTRAINT_HELP}
${LLM_HELP}
  -h, --help`;

const rate = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1));

/** One stats line: "prompt 7 tokens (5 cached), generated 16 tokens, prefill 120 tokens/s, decode 40.5 tokens/s, finish length". */
export function formatStats(u: Usage, finish: FinishReason | 'tool_calls' | 'stopped'): string {
  const cached = u.cachedTokens > 0 ? ` (${u.cachedTokens} cached)` : '';
  const d = u.completionTokensDetails;
  const spec = d && u.targetForwards ? `, ${(u.completionTokens / u.targetForwards).toFixed(2)} tokens per forward (drafts accepted ${d.acceptedPredictionTokens}, rejected ${d.rejectedPredictionTokens})` : '';
  return `prompt ${u.promptTokens} tokens${cached}, generated ${u.completionTokens} tokens, prefill ${rate(u.prefillTokensPerSecond)} tokens/s, decode ${rate(u.decodeTokensPerSecond)} tokens/s${spec}, finish ${finish}`;
}

/** --speculative and --draft-tokens, checked (with what they cannot combine with) before the model loads. */
export function speculativeOption(command: string, p: ParsedArgs, responseFormat: unknown): SpeculativeOptions | undefined {
  const method = p.values.get('--speculative');
  const k = numberOption(command, p, '--draft-tokens', (n) => Number.isSafeInteger(n) && n >= 1 && n <= MAX_DRAFT_TOKENS, `an integer from 1 to ${MAX_DRAFT_TOKENS}`);
  if (method === undefined) {
    if (k !== undefined) throw new UsageError(`${command}: --draft-tokens needs --speculative`);
    return undefined;
  }
  if (responseFormat !== undefined) throw new UsageError(`${command}: --speculative does not combine with a constraint (--json-schema, --regex, --grammar)`);
  if (method.startsWith('draft=')) {
    const model = method.slice('draft='.length);
    if (!model) throw new UsageError(`${command}: --speculative draft=MODEL needs the draft model's folder or hub id after "draft="`);
    return { method: 'draft', model, ...(k !== undefined && { k }) };
  }
  if (method !== 'lookup' && method !== 'self') throw new UsageError(`${command}: --speculative must be lookup, self or draft=MODEL, got ${JSON.stringify(method)}`);
  return { method, ...(k !== undefined && { k }) };
}

export const generateCommand: Command = {
  summary: 'generate text with an LLM (Llama, Mistral, Qwen), streamed',
  usage: USAGE,
  async run(args, io: ModelCliIO) {
    const p = parseArgs('generate', args, { flags: ['--json', ...CACHE_FLAGS], values: ['--prompt', '--speculative', '--draft-tokens', ...LLM_VALUES, ...SAMPLING_VALUES, ...CONSTRAINT_VALUES] });
    const location = oneModel('generate', p);
    const load = llmLoadOptions('generate', p);
    const sampling = samplingOptions('generate', p);
    const responseFormat = await constraintOption('generate', p);
    const speculative = speculativeOption('generate', p, responseFormat);
    const prompt = await readPrompt('generate', p, io);
    const json = p.flags.has('--json');

    const model = await loadLlm(location, io, load);
    try {
      const stream = model.generate(prompt, { ...sampling, temperature: sampling.temperature ?? 0, responseFormat, speculative, stream: true });
      for await (const chunk of stream) if (!json) io.stdout(chunk.text);
      const r = await stream.result;
      if (json) {
        io.stdout(`${JSON.stringify({ ids: r.promptIds, tokens: r.tokens, text: r.text })}\n`);
      } else {
        io.stdout('\n');
        io.stderr(`${formatStats(r.usage, r.finishReason)}\n`);
      }
      return 0;
    } finally {
      model.dispose();
    }
  },
};
