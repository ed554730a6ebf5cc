/**
 * `npm run bench -- bert`: a MiniLM-shaped BERT encoder (6 layers, hidden 384, 12 heads, FFN 1536,
 * random weights) over a batch of 32 texts x 128 tokens, per Linear dtype: sentences per second
 * and weight bytes on the GPU. One forward = one command encoder, timed with GPU timestamps
 * (the sum of its kernels) where the device has them. The dtypes' forwards are interleaved, one of
 * each per round, so machine noise falls on all of them alike.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../src/io/safetensors/reader.ts';
import { bertForward, uploadBertWeights } from '../src/models/bert/bert.ts';
import { resolveBertWeights } from '../src/models/bert/bert-weights.ts';
import type { Activations, LinearDType } from '../src/ops/linear.ts';
import { createBenchContext, parseKernels } from './lib/device.ts';
import { fmt, measure, median, parseModelArgs, report, table, type BenchIO, type Measurement } from './lib/measure.ts';
import { randomIds, writeMiniLM } from './lib/minilm.ts';

const USAGE = `usage: npm run bench -- bert [--json] [--quick] [--dtypes f32,f16,q8,w8a8,q4] [--batch 32] [--seq 128] [--layers 6] [--reps N]
  --dtypes  q8 and q4 may name their activations: q4:int8, q4:float (bare: the load's default)
  --no-dot4 emulate dot4I8Packed (as on a device without the WGSL feature, e.g. Deno's wgpu)
  --quick   batch 8, 1 timed run after 1 warm-up (a smoke run; the default is the issue's 32 x 128)
  --profile print the time of each kernel (GPU timestamps, last run) to stderr
  --kernels gpu|cpu  GEMM/attention kernel family (default: the adapter's; see Capabilities.kernels)
`;

export interface BertResult {
  model: string;
  /** The Linear dtype, with `:float` / `:int8` when the command line named the activations. */
  dtype: string;
  act: 'f32' | 'f16';
  /** What the quantized Linears do with their input (BertLoadOptions.activations as resolved). */
  activations: Activations;
  batch: number;
  seq: number;
  ms: number;
  sentences_per_s: number;
  weight_bytes: number;
  speedup_vs_f32: number;
  timing: string;
  reps: number;
  adapter: string;
  /** GEMM/attention kernel family (Capabilities.kernels). */
  kernels: 'gpu' | 'cpu';
}

export async function run(args: string[], io: BenchIO): Promise<number> {
  const parsed = parseModelArgs('bert', args, USAGE, io, { profile: { type: 'boolean' }, kernels: { type: 'string' }, 'no-dot4': { type: 'boolean' } }, (o) => parseKernels(o.kernels));
  if (typeof parsed === 'number') return parsed;
  const { v, B, T, layers, reps } = parsed;
  const dtypes = String(v.dtypes ?? 'f32,f16,q8,w8a8,q4').split(',');
  const warmup = 1;
  const dir = await mkdtemp(join(tmpdir(), 'webq-bench-bert-'));
  const { ctx } = await createBenchContext({ kernels: parseKernels(v.kernels), dot4I8: v['no-dot4'] ? false : undefined });
  const results: BertResult[] = [];
  try {
    const { tiny, cfg, model } = await writeMiniLM(dir, layers);
    io.stderr(`adapter: ${ctx.caps.adapter} (${ctx.caps.kernels} kernels); ${model}; batch ${B} x ${T} tokens; median of ${reps} rounds (dtypes interleaved) after ${warmup} warm-up round\n`);
    const ids = randomIds(B * T, cfg.vocabSize);
    const batch = {
      ids: ctx.upload(ids, [B * T], 'u32'),
      types: ctx.upload(new Uint32Array(B * T), [B * T], 'u32'),
      positions: ctx.upload(new Uint32Array(B * T).map((_, i) => i % T), [B * T], 'u32'),
      mask: ctx.upload(new Uint32Array(B * T).fill(1), [B * T], 'u32'),
      B,
      T,
    };
    const store = await SafetensorsFile.open(join(dir, 'model.safetensors'));
    const refs = resolveBertWeights(store, cfg);
    // All dtypes are loaded first and their timed forwards interleaved (one of each per round),
    // so that a slow stretch of a shared, noisy machine hits every dtype alike and the ratios
    // between them hold up better than with one dtype's runs back to back.
    const runs: { dtype: string; w: Awaited<ReturnType<typeof uploadBertWeights>>; samples: number[]; m?: Measurement }[] = [];
    try {
      for (const dtype of dtypes) {
        if (dtype === 'f16' && !ctx.caps.f16) {
          io.stderr(`skip f16: no shader-f16 on this device\n`);
          continue;
        }
        const [base, activations] = dtype.split(':') as [LinearDType, Activations | undefined];
        runs.push({ dtype, w: await uploadBertWeights(ctx, store, cfg, refs, base, { activations }), samples: [] });
      }
      for (let round = 0; round < warmup + reps; round++) {
        for (const r of runs) {
          const m = await measure(ctx, (rec) => {
            const h = bertForward(ctx, rec, r.w, cfg, batch);
            return () => h.dispose();
          }, { warmup: 0, reps: 1, label: `bert-${r.dtype}` });
          if (round >= warmup) {
            r.samples.push(m.samples[0]);
            r.m = m;
          }
        }
      }
      for (const r of runs) {
        const ms = median(r.samples);
        const f32 = results.find((x) => x.dtype === 'f32');
        results.push({
          model, dtype: r.dtype, act: r.w.precision, activations: r.w.activations, batch: B, seq: T, ms, sentences_per_s: (B * 1000) / ms,
          weight_bytes: r.w.bytes, speedup_vs_f32: f32 ? f32.ms / ms : r.dtype === 'f32' ? 1 : NaN,
          timing: r.m!.timing, reps: r.samples.length, adapter: ctx.caps.adapter, kernels: ctx.caps.kernels,
        });
        io.stderr(`${r.dtype}: ${fmt(ms)} ms per batch (runs: ${r.samples.map(fmt).join(' ')})\n`);
        if (v.profile) {
          const rows = Object.entries(r.m!.profile).sort((x, y) => y[1] - x[1]);
          for (const [label, t] of rows) io.stderr(`  ${fmt(t).padStart(8)} ms ${((100 * t) / r.m!.samples[0]).toFixed(1).padStart(5)}%  ${label}\n`);
        }
      }
    } finally {
      for (const r of runs) r.w.dispose();
    }
    await store.close();
    const rows = results.map((r) => [r.dtype, r.act, r.activations, fmt(r.ms), fmt(r.sentences_per_s), fmt(r.weight_bytes / 2 ** 20), fmt(r.speedup_vs_f32)]);
    const text = table(['dtype', 'act', 'activations', 'ms/batch', 'sentences/s', 'weights MiB', 'speedup_vs_f32'], rows);
    report(io, !!v.json, text, results);
    return 0;
  } finally {
    ctx.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}
