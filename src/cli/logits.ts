/**
 * `webq logits <model> --prompt TEXT`: the next-token logits after a prompt, as JSON (every one)
 * or as the ten likeliest tokens with their probabilities. For checking a model against another
 * runtime (transformers, llama.cpp) on the same ids.
 */
import type { Command } from './command.ts';
import { LLM_HELP, LLM_VALUES, llmLoadOptions, loadLlm, numberOption, oneModel, parseArgs, readPrompt, type ModelCliIO, CACHE_FLAGS } from './model-args.ts';

const USAGE = `usage: webq logits <model> --prompt TEXT [options]

Runs TEXT through a Llama, Mistral, Qwen2 or Qwen3 model (tokenized as its tokenizer does, BOS
only where its config adds one) and prints the logits at the last position: the ten likeliest
next tokens with their logits and probabilities, or with --json every logit.

options:
  --prompt TEXT           the prompt; "-" reads it from stdin (one final newline dropped);
                          "" starts from the tokenizer's BOS alone (an error where it adds none)
  --json                  print only {"ids": [prompt ids], "logits": [one per vocabulary entry]}
  --top N                 how many tokens to list without --json (default 10)
${LLM_HELP}
  -h, --help`;

/** Indices of the n largest values, largest first. */
function topIndices(x: Float32Array, n: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < x.length; i++) {
    if (top.length === n) {
      if (x[i] <= x[top[n - 1]]) continue;
      top.pop();
    }
    let j = top.length;
    while (j > 0 && x[top[j - 1]] < x[i]) j--;
    top.splice(j, 0, i);
  }
  return top;
}

export const logitsCommand: Command = {
  summary: "an LLM's next-token logits after a prompt (top tokens, or all as JSON)",
  usage: USAGE,
  async run(args, io: ModelCliIO) {
    const p = parseArgs('logits', args, { flags: ['--json', ...CACHE_FLAGS], values: ['--prompt', '--top', ...LLM_VALUES] });
    const location = oneModel('logits', p);
    const load = llmLoadOptions('logits', p);
    const n = numberOption('logits', p, '--top', (x) => Number.isSafeInteger(x) && x >= 1, 'a positive integer') ?? 10;
    const prompt = await readPrompt('logits', p, io);

    const model = await loadLlm(location, io, load);
    try {
      const { ids, logits } = await model.logits(prompt);
      if (p.flags.has('--json')) {
        io.stdout(`${JSON.stringify({ ids, logits: Array.from(logits) })}\n`);
        return 0;
      }
      // Softmax in f64, shifted by the max so no exp overflows.
      let max = -Infinity;
      for (const v of logits) max = Math.max(max, v);
      let sum = 0;
      for (const v of logits) sum += Math.exp(v - max);
      io.stdout(`${model.describe}: ${model.dtype} weights, ${model.activations} activations; ${ids.length} prompt tokens, ${logits.length} logits at the last position\n`);
      io.stdout(`${'rank'.padStart(4)}  ${'id'.padStart(7)}  ${'logit'.padStart(9)}  ${'prob'.padStart(7)}  token\n`);
      topIndices(logits, Math.min(n, logits.length)).forEach((id, r) => {
        const prob = Math.exp(logits[id] - max) / sum;
        // The vocabulary may be padded past the tokenizer's last id.
        const token = model.tokenizer.idToToken(id) === undefined ? '(no token)' : JSON.stringify(model.tokenizer.decode([id]));
        io.stdout(`${String(r + 1).padStart(4)}  ${String(id).padStart(7)}  ${logits[id].toFixed(4).padStart(9)}  ${prob.toFixed(4).padStart(7)}  ${token}\n`);
      });
      return 0;
    } finally {
      model.dispose();
    }
  },
};
