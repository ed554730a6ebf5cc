/**
 * `npm run bench -- batch`: batched decoding (#24), B sequences advancing one token per forward,
 * against one sequence on the plain Decoder, same model and run. Models: a shape with random
 * weights (generated on read; SmolLM2-135M by default) or `trained` (test/fixtures/trained-llama).
 * Each row of a batch has its own prompt of ids (different lengths); every batched row's greedy
 * tokens are checked equal to that prompt decoded alone.
 * Columns: sequences, tokens (all rows), decode ms (from the prefills' read-back to the end),
 * decode tokens/s over all rows, against one sequence on the plain Decoder, and per sequence.
 * A second table (LlmLoadOptions.concurrency, #24): B generate calls made at once on an LlmModel
 * loaded with concurrency B (they share decode forwards) against the same B calls one after
 * another on a model loaded without, end to end (prompts, prefills, text), on trained-llama (a
 * model folder: LlmModel loads folders) at the same dtype; each call's tokens checked equal.
 */
import { join } from 'node:path';
import { LlmModel } from '../src/api/llm.ts';
import type { GpuContext } from '../src/gpu/context.ts';
import { parseArgs } from 'node:util';
import { BatchDecoder } from '../src/generate/batch.ts';
import type { Decoder } from '../src/generate/decoder.ts';
import { kvSharedFor } from '../src/generate/kv.ts';
import { openModelFiles } from '../src/io/hub/hub.ts';
import { parseLlamaConfig, type LlamaConfig } from '../src/models/llama/llama-config.ts';
import { uploadLlamaWeights, type LlamaGpuWeights } from '../src/models/llama/llama.ts';
import { resolveLlamaWeights } from '../src/models/llama/llama-weights.ts';
import { LINEAR_DTYPES, type LinearDType } from '../src/ops/linear.ts';
import { validateSamplingParams } from '../src/ops/sample.ts';
import { createBenchContext } from './lib/device.ts';
import { LLM_SHAPE_NAMES, syntheticLlm } from '../fixtures/index.ts';
import { makeDecoder, promptIds } from './llm/webq.ts';
import { fmt, report, table, type BenchIO } from './lib/measure.ts';

const TRAINED = process.env.WEBQ_TRAINED_LLAMA ?? join(import.meta.dirname ?? '.', '..', 'test', 'fixtures', 'trained-llama');
const MODELS = [...LLM_SHAPE_NAMES, 'trained'] as const;

const USAGE = `usage: npm run bench -- batch [--json] [--model ${MODELS.join('|')}] [--layers N] [--dtype D] [--tokens N] [--sizes 1,2,4] [--runs N] [--gemv-multi off]
  --model M     model (default smollm2-135m, random weights; trained = test/fixtures/trained-llama)
  --layers N    fewer layers than the shape's (a quicker run; random-weight shapes only)
  --dtype D     linear weights: ${LINEAR_DTYPES.join(', ')} (default q4)
  --tokens N    tokens per sequence (default 32)
  --sizes LIST  batch sizes (default 1,2,4; each 1..16)
  --runs N      timed runs per size, median reported (default 3)
  --gemv-multi off  a workgroup per row of x in the Linears (DeviceOptions.gemv.multi 'off'), not
                the multi-row GEMV (default 'auto'): the before/after of that kernel
  --json        the rows as JSON on stdout, the table on stderr
`;

export interface BatchRowResult {
  mode: string;
  sequences: number;
  tokens: number;
  decodeMs: number;
  tokensPerSecond: number;
  vsOne: number;
  perSequence: number;
}

export async function run(args: string[], io: BenchIO): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  let sizes: number[];
  try {
    v = parseArgs({ args, options: { json: { type: 'boolean' }, model: { type: 'string' }, layers: { type: 'string' }, dtype: { type: 'string' }, tokens: { type: 'string' }, sizes: { type: 'string' }, runs: { type: 'string' }, 'gemv-multi': { type: 'string' }, help: { type: 'boolean' } } }).values;
    if (v['gemv-multi'] !== undefined && v['gemv-multi'] !== 'auto' && v['gemv-multi'] !== 'off') throw new Error(`--gemv-multi must be auto or off, got ${v['gemv-multi']}`);
    if (v.model !== undefined && !(MODELS as readonly string[]).includes(v.model as string)) throw new Error(`unknown --model ${v.model}`);
    if (v.dtype !== undefined && !LINEAR_DTYPES.includes(v.dtype as LinearDType)) throw new Error(`unknown --dtype ${v.dtype}`);
    for (const k of ['layers', 'tokens', 'runs']) if (v[k] !== undefined && !(Number.isInteger(Number(v[k])) && Number(v[k]) > 0)) throw new Error(`--${k} must be a positive integer`);
    sizes = String(v.sizes ?? '1,2,4').split(',').map(Number);
    if (sizes.some((b) => !Number.isInteger(b) || b < 1 || b > 16)) throw new Error(`--sizes must be a comma-separated list of integers from 1 to 16, got ${v.sizes}`);
  } catch (e) {
    io.stderr(`bench batch: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    io.stdout(USAGE);
    return 0;
  }
  const name = (v.model ?? 'smollm2-135m') as (typeof MODELS)[number];
  const dtype = (v.dtype ?? 'q4') as LinearDType;
  const maxTokens = Number(v.tokens ?? 32);
  const runs = Number(v.runs ?? 3);
  const greedy = validateSamplingParams({});
  const { ctx } = await createBenchContext({ gemvMulti: v['gemv-multi'] as 'auto' | 'off' | undefined });
  const owned: { dispose(): void }[] = [];
  try {
    let cfg: LlamaConfig, w: LlamaGpuWeights, describe: string;
    if (name === 'trained') {
      const files = await openModelFiles(TRAINED);
      cfg = parseLlamaConfig(await files.readJson('config.json'));
      const store = await files.checkpoint();
      w = await uploadLlamaWeights(ctx, store, cfg, resolveLlamaWeights(store, cfg), dtype);
      await store.close?.();
      describe = `trained-llama (${dtype})`;
    } else {
      const m = syntheticLlm(name, { layers: v.layers === undefined ? undefined : Number(v.layers), seed: 1 });
      cfg = m.cfg;
      w = await uploadLlamaWeights(ctx, m.store, m.cfg, resolveLlamaWeights(m.store, m.cfg), dtype);
      describe = `${m.name} (${fmt(m.params / 1e6)}M params, ${dtype}, random weights)`;
    }
    owned.push(w);
    const kv = ctx.caps.f16 ? 'f16' : 'f32';
    const maxB = Math.max(...sizes);
    const prompts = Array.from({ length: maxB }, (_, b) => promptIds(16 + 8 * b, cfg.vocabSize, 7 + b));
    const cap = 16 + 8 * maxB + maxTokens + 8;
    const dec: Decoder = makeDecoder(ctx, cfg, w, kv, cap);
    owned.push(dec);
    const shared = kvSharedFor(ctx, cfg, cap, kv);
    owned.push(shared);
    io.stderr(`adapter: ${ctx.caps.adapter}; ${describe}; kv ${kv}; prompts of ${prompts.map((p) => p.length).join(', ')} ids\n`);
    // One sequence on the plain Decoder: the baseline, and each prompt's tokens alone.
    const alone: number[][] = [];
    const single = async (p: readonly number[]) => {
      dec.keepCached(0);
      const ids: number[] = [];
      let t1 = 0;
      for await (const b of dec.generate(p, greedy, { maxTokens })) {
        if (!t1) t1 = performance.now();
        ids.push(...b);
      }
      return { ids, ms: performance.now() - t1 };
    };
    for (const p of prompts) alone.push((await single(p)).ids);
    const median = <T extends { ms: number }>(xs: T[]) => xs.sort((a, b) => a.ms - b.ms)[Math.floor(xs.length / 2)];
    const rows: BatchRowResult[] = [];
    const push = (mode: string, B: number, ms: number) => {
      const tokens = B * (maxTokens - 1); // decode tokens: the first of each row comes from its prefill
      const tps = (1000 * tokens) / ms;
      rows.push({ mode, sequences: B, tokens, decodeMs: ms, tokensPerSecond: tps, vsOne: rows.length ? tps / rows[0].tokensPerSecond : 1, perSequence: tps / B });
    };
    await single(prompts[0]); // warm-up
    const t1: { ms: number }[] = [];
    for (let r = 0; r < runs; r++) t1.push(await single(prompts[0]));
    push('one sequence (Decoder)', 1, median(t1).ms);
    for (const B of sizes) {
      const bd = new BatchDecoder(ctx, cfg, shared, B);
      try {
        const rowsIn = prompts.slice(0, B).map((prompt) => ({ prompt, params: greedy }));
        const once = async () => {
          const out: number[][] = rowsIn.map(() => []);
          let t = 0;
          for await (const step of bd.generate(w, rowsIn, { maxTokens })) {
            if (!t) t = performance.now();
            step.forEach((ids, b) => out[b].push(...ids));
          }
          return { ms: performance.now() - t, out };
        };
        await once(); // warm-up (pipelines)
        const ts = [];
        for (let r = 0; r < runs; r++) ts.push(await once());
        const mid = median(ts);
        mid.out.forEach((ids, b) => {
          if (ids.slice(0, maxTokens).join() !== alone[b].join()) throw new Error(`batch of ${B}: sequence ${b} generated other tokens than alone`);
        });
        push(`batch B=${B}`, B, mid.ms);
      } finally {
        bd.dispose();
      }
    }
    const text =
      table(
        ['mode', 'sequences', 'decode tokens', 'decode ms', 'tokens/s', 'vs one', 'tokens/s per sequence'],
        rows.map((r) => [r.mode, String(r.sequences), String(r.tokens), fmt(r.decodeMs), fmt(r.tokensPerSecond), `${r.vsOne.toFixed(2)}x`, fmt(r.perSequence)]),
      ) + `median of ${runs} runs, greedy, ${maxTokens} tokens per sequence, decode only (from the prefills' read-back); every row checked equal to its prompt alone\n`;
    const concurrent = await concurrentCalls(ctx, dtype, maxB, maxTokens, runs);
    const text2 =
      table(
        ['mode', 'calls', 'tokens', 'wall ms', 'tokens/s', 'vs one after another'],
        concurrent.map((r) => [r.mode, String(r.sequences), String(r.tokens), fmt(r.decodeMs), fmt(r.tokensPerSecond), `${r.vsOne.toFixed(2)}x`]),
      ) + `trained-llama (${dtype}), ${maxB} generate calls of ${maxTokens} tokens (greedy), median of ${runs} runs, end to end (prefills included); every call checked equal to its solo run
`;
    report(io, v.json === true, text + '\n' + text2, [...rows, ...concurrent]);
    return 0;
  } finally {
    for (const o of owned.reverse()) o.dispose();
    ctx.dispose();
  }
}

/** B generate calls at once on a model loaded with concurrency B, against one after another without. */
async function concurrentCalls(ctx: GpuContext, dtype: LinearDType, B: number, maxTokens: number, runs: number): Promise<BatchRowResult[]> {
  const one = await LlmModel.load(TRAINED, { dtype, context: ctx });
  const many = await LlmModel.load(TRAINED, { dtype, context: ctx, concurrency: B });
  try {
    const prompts = Array.from({ length: B }, (_, b) => promptIds(16 + 8 * b, one.config.vocabSize, 7 + b));
    const opts = { maxTokens, temperature: 0, ignoreEos: true };
    const time = async (f: () => Promise<number[][]>) => {
      const t = performance.now();
      const out = await f();
      return { ms: performance.now() - t, out };
    };
    const serial = async () => {
      const out: number[][] = [];
      for (const p of prompts) out.push((await one.generate(p, opts)).tokens);
      return out;
    };
    const together = async () => (await Promise.all(prompts.map((p) => many.generate(p, opts)))).map((r) => r.tokens);
    await time(serial); // warm-up (pipelines)
    await time(together);
    const median = (xs: { ms: number; out: number[][] }[]) => xs.sort((a, b) => a.ms - b.ms)[Math.floor(xs.length / 2)];
    const [s, c] = [[], []] as { ms: number; out: number[][] }[][];
    for (let r = 0; r < runs; r++) {
      s.push(await time(serial));
      c.push(await time(together));
    }
    const ms = median(s);
    const mc = median(c);
    if (mc.out.join('|') !== ms.out.join('|')) throw new Error(`concurrent calls generated other tokens than one after another`);
    const tokens = ms.out.reduce((n, t) => n + t.length, 0);
    const row = (mode: string, m: number): BatchRowResult => ({ mode, sequences: B, tokens, decodeMs: m, tokensPerSecond: (1000 * tokens) / m, vsOne: ms.ms / m, perSequence: (1000 * tokens) / m / B });
    return [row(`${B} generate calls one after another`, ms.ms), row(`${B} concurrent generate calls (concurrency ${B})`, mc.ms)];
  } finally {
    many.dispose();
    one.dispose();
  }
}
