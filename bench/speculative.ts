/**
 * `npm run bench -- speculative`: plain greedy decoding against speculation (#24) with each drafter,
 * same model, same prompt, same run: prompt lookup, 'self' and, on the trained fixture, 'draft' (a
 * draft model: the same checkpoint loaded at q4). 'self' is the model's own setting: on the trained
 * fixture LlmModel's default (its q4 copy unless the model runs at q4; its first layers with
 * --self-layers), on a random shape its first layers (half, or --self-layers). Models: a shape with random weights (generated on read;
 * SmolLM2-135M by default) or `trained` (test/fixtures/trained-llama, a small model trained on
 * template stories). The prompt is a quoting task: a passage, then "again:" and its first half, so
 * a model that quotes continues with the passage's second half (random weights do not quote; their
 * greedy text falls into loops, which lookup drafts from the text so far).
 * Columns: tokens, ms, tokens/s, against plain, target forwards, tokens per forward, drafted tokens
 * accepted and rejected. Greedy; the outputs of every mode are checked equal to plain's.
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LlmModel } from '../src/api/llm.ts';
import type { Decoder } from '../src/generate/decoder.ts';
import { DecoderDrafter, lookupDrafter, selfDecoder } from '../src/generate/drafters.ts';
import { defaultSelfLayers } from '../src/api/llm-speculative.ts';
import { generateSpeculative, MAX_DRAFT_TOKENS, type SpeculativeStats } from '../src/generate/speculative.ts';
import { uploadLlamaWeights } from '../src/models/llama/llama.ts';
import { resolveLlamaWeights } from '../src/models/llama/llama-weights.ts';
import { LINEAR_DTYPES, type LinearDType } from '../src/ops/linear.ts';
import { validateSamplingParams } from '../src/ops/sample.ts';
import { createBenchContext } from './lib/device.ts';
import { LLM_SHAPE_NAMES, syntheticLlm, type LlmShape } from '../fixtures/index.ts';
import { makeDecoder, promptIds } from './llm/webq.ts';
import { fmt, report, table, type BenchIO } from './lib/measure.ts';

const TRAINED = process.env.WEBQ_TRAINED_LLAMA ?? join(import.meta.dirname ?? '.', '..', 'test', 'fixtures', 'trained-llama');
const MODELS = [...LLM_SHAPE_NAMES, 'trained'] as const;

const METHODS = ['lookup', 'self', 'draft'] as const;
type Mode = { method: 'plain' | (typeof METHODS)[number]; k: number };

const USAGE = `usage: npm run bench -- speculative [--json] [--model ${MODELS.join('|')}] [--layers N] [--dtype D] [--tokens N] [--k 4,8] [--methods lookup,self,draft] [--self-layers N] [--runs N]
  --model M     model (default smollm2-135m, random weights; trained = test/fixtures/trained-llama)
  --layers N    fewer layers than the shape's (a quicker run; random-weight shapes only)
  --dtype D     linear weights: ${LINEAR_DTYPES.join(', ')} (default q4)
  --tokens N    tokens per generation (default 64)
  --k LIST      draft tokens per forward for the speculative rows (default 4,8; each 1..${MAX_DRAFT_TOKENS})
  --methods L   drafters to run (default lookup,self,draft; draft on the trained model only: the
                fixture loaded again at q4 drafts)
  --self-layers N  'self' drafts with the model's first N layers (default: the trained model's
                q4 copy, or half the layers of a random shape or a q4 model)
  --runs N      timed runs per mode, median reported (default 3)
  --json        the rows as JSON on stdout, the table on stderr
`;

const PASSAGE = 'Emma was a brave little girl who lived in a nest near the town. Every Thursday, Emma and Nora went to the town together. Her favorite food was cheese, and she ate it every evening.';
const QUOTE = `${PASSAGE} Again: ${PASSAGE.slice(0, PASSAGE.length / 2)}`;

export interface SpeculativeRow {
  mode: string;
  tokens: number;
  ms: number;
  tokensPerSecond: number;
  vsPlain: number;
  forwards: number;
  tokensPerForward: number;
  accepted: number;
  rejected: number;
}

type Gen = (mode: Mode, stats: SpeculativeStats) => AsyncIterable<number[]>;

export async function run(args: string[], io: BenchIO): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  let ks: number[];
  let methods: Mode['method'][];
  try {
    v = parseArgs({ args, options: { json: { type: 'boolean' }, methods: { type: 'string' }, 'self-layers': { type: 'string' }, model: { type: 'string' }, layers: { type: 'string' }, dtype: { type: 'string' }, tokens: { type: 'string' }, k: { type: 'string' }, runs: { type: 'string' }, help: { type: 'boolean' } } }).values;
    if (v.model !== undefined && !(MODELS as readonly string[]).includes(v.model as string)) throw new Error(`unknown --model ${v.model}`);
    if (v.dtype !== undefined && !LINEAR_DTYPES.includes(v.dtype as LinearDType)) throw new Error(`unknown --dtype ${v.dtype}`);
    for (const k of ['layers', 'tokens', 'runs', 'self-layers']) if (v[k] !== undefined && !(Number.isInteger(Number(v[k])) && Number(v[k]) > 0)) throw new Error(`--${k} must be a positive integer`);
    ks = String(v.k ?? '4,8').split(',').map(Number);
    if (ks.some((k) => !Number.isInteger(k) || k < 1 || k > MAX_DRAFT_TOKENS)) throw new Error(`--k must be a comma-separated list of integers from 1 to ${MAX_DRAFT_TOKENS}, got ${v.k}`);
    methods = String(v.methods ?? METHODS.join(',')).split(',') as Mode['method'][];
    if (methods.some((m) => !(METHODS as readonly string[]).includes(m))) throw new Error(`--methods must be a comma-separated list of ${METHODS.join(', ')}, got ${v.methods}`);
  } catch (e) {
    io.stderr(`bench speculative: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    io.stdout(USAGE);
    return 0;
  }
  const name = (v.model ?? 'smollm2-135m') as (typeof MODELS)[number];
  const dtype = (v.dtype ?? 'q4') as LinearDType;
  const maxTokens = Number(v.tokens ?? 64);
  const runs = Number(v.runs ?? 3);
  const greedy = validateSamplingParams({});
  const selfLayers = v['self-layers'] === undefined ? undefined : Number(v['self-layers']);
  const { ctx } = await createBenchContext();
  const owned: { dispose(): void }[] = [];
  try {
    let gen: Gen, promptLen: number, describe: string;
    if (name === 'trained') {
      const model = await LlmModel.load(TRAINED, { dtype, context: ctx, contextLength: 256 });
      owned.push(model);
      const prompt = model.encode(QUOTE);
      promptLen = prompt.length;
      describe = `trained-llama (${dtype}, ${model.config.numLayers} layers), the quoting prompt`;
      const draftModel = methods.includes('draft') ? await LlmModel.load(TRAINED, { dtype: 'q4', context: ctx, contextLength: 256 }) : null;
      if (draftModel) owned.push(draftModel);
      gen = (mode, stats) => ({
        async *[Symbol.asyncIterator]() {
          const speculative = mode.method === 'plain' ? undefined : mode.method === 'draft' ? { method: 'draft' as const, k: mode.k, model: draftModel! } : { method: mode.method, k: mode.k, ...(mode.method === 'self' && selfLayers && { layers: selfLayers }) };
          const r = await model.generate(prompt, { maxTokens, temperature: 0, ignoreEos: true, speculative });
          const u = r.usage;
          stats.forwards = u.targetForwards ?? r.tokens.length;
          stats.accepted = u.completionTokensDetails?.acceptedPredictionTokens ?? 0;
          stats.rejected = u.completionTokensDetails?.rejectedPredictionTokens ?? 0;
          yield r.tokens;
        },
      });
    } else {
      methods = methods.filter((m) => m !== 'draft'); // no smaller model shares a random shape's vocabulary
      const m = syntheticLlm(name, { layers: v.layers === undefined ? undefined : Number(v.layers), seed: 1 });
      const w = await uploadLlamaWeights(ctx, m.store, m.cfg, resolveLlamaWeights(m.store, m.cfg), dtype);
      owned.push(w);
      // The quoting prompt's shape in ids: a passage, a separator, then its first half.
      const passage = promptIds(48, m.cfg.vocabSize, 7);
      const prompt = [...passage, ...promptIds(2, m.cfg.vocabSize, 9), ...passage.slice(0, 24)];
      promptLen = prompt.length;
      const kv = ctx.caps.f16 ? 'f16' : 'f32';
      const cap = prompt.length + maxTokens + MAX_DRAFT_TOKENS + 8;
      const dec: Decoder = makeDecoder(ctx, m.cfg, w, kv, cap);
      owned.push(dec);
      const self = new DecoderDrafter(selfDecoder(ctx, m.cfg, w, selfLayers ?? defaultSelfLayers(m.cfg.numLayers), cap, kv));
      owned.push(self.decoder);
      describe = `${m.name} (${fmt(m.params / 1e6)}M params, ${dtype}, random weights), a quoting prompt of ids`;
      gen = (mode, stats) => ({
        async *[Symbol.asyncIterator]() {
          dec.keepCached(prompt.length - 1); // every run prefills the prompt's last token only
          if (mode.method !== 'plain') {
            yield* generateSpeculative(dec, prompt, greedy, { maxTokens, k: mode.k, drafter: mode.method === 'self' ? self : lookupDrafter, stats });
          } else {
            for await (const b of dec.generate(prompt, greedy, { maxTokens })) {
              stats.forwards += b.length;
              yield b;
            }
          }
        },
      });
      for await (const _ of dec.generate(prompt, greedy, { maxTokens: 1 })) void _; // the prompt, cached
    }
    io.stderr(`adapter: ${ctx.caps.adapter}; ${describe}; prompt ${promptLen} tokens\n`);
    const once = async (mode: Mode) => {
      const stats = { forwards: 0, accepted: 0, rejected: 0 };
      const ids: number[] = [];
      const t = performance.now();
      for await (const b of gen(mode, stats)) ids.push(...b);
      return { ms: performance.now() - t, ids: ids.slice(0, maxTokens), stats };
    };
    const rows: SpeculativeRow[] = [];
    let plainIds: number[] = [];
    const modes: Mode[] = [{ method: 'plain', k: 0 }, ...methods.flatMap((method) => ks.map((k) => ({ method, k })))];
    for (const mode of modes) {
      const label = mode.method === 'plain' ? 'plain' : `${mode.method} k=${mode.k}`;
      await once(mode); // warm-up (pipelines, caches)
      const timings = [];
      for (let r = 0; r < runs; r++) timings.push(await once(mode));
      const mid = timings.sort((a, b) => a.ms - b.ms)[Math.floor(timings.length / 2)];
      if (mode.method === 'plain') plainIds = mid.ids;
      else if (mid.ids.join() !== plainIds.join()) throw new Error(`${label} generated other tokens than plain greedy`);
      const tps = (1000 * mid.ids.length) / mid.ms;
      rows.push({
        mode: label, tokens: mid.ids.length, ms: mid.ms, tokensPerSecond: tps, vsPlain: rows.length ? tps / rows[0].tokensPerSecond : 1,
        forwards: mid.stats.forwards, tokensPerForward: mid.ids.length / mid.stats.forwards, accepted: mid.stats.accepted, rejected: mid.stats.rejected,
      });
    }
    const text =
      table(
        ['mode', 'tokens', 'ms', 'tokens/s', 'vs plain', 'target forwards', 'tokens/forward', 'drafts accepted', 'drafts rejected'],
        rows.map((r) => [r.mode, String(r.tokens), fmt(r.ms), fmt(r.tokensPerSecond), `${r.vsPlain.toFixed(2)}x`, String(r.forwards), r.tokensPerForward.toFixed(2), String(r.accepted), String(r.rejected)]),
      ) + `median of ${runs} runs per mode, greedy, ${maxTokens} tokens, prompt cached but its last token (prefill included in ms); identical tokens checked\n`;
    report(io, v.json === true, text, rows);
    return 0;
  } finally {
    for (const o of owned.reverse()) o.dispose();
    ctx.dispose();
  }
}
