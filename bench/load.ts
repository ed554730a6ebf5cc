/**
 * `npm run bench -- load`: how long BertModel.load takes, from the call to the weights resting on
 * the GPU (tokenizer, config, file reads, quantization if any, uploads), and how big the files are,
 * for a MiniLM-shaped checkpoint (vocabulary 30522, hidden 384, 6 layers; random weights):
 *
 *   f32              the float checkpoint, loaded as f32
 *   q8 from f32      the float checkpoint, loaded with dtype q8 (quantized at load)
 *   q8 pre-quantized `webq quantize --dtype q8` of it, loaded (no quantization)
 *   q4 pre-quantized `webq quantize --dtype q4`, loaded
 *
 * All cases share one device (its creation is not timed), and are timed in rounds, one load of
 * each per round after a warm-up round (the files are in the page cache by then), so a slow
 * stretch of a noisy machine falls on every case alike; `ms` is the median over the rounds.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BertModel } from '../src/api/bert.ts';
import { openModelFiles } from '../src/io/hub/hub.ts';
import { quantizeCheckpoint } from '../src/quantize/checkpoint.ts';
import { EMBEDDING_DTYPES, type EmbeddingDType } from '../src/models/upload.ts';
import type { LinearDType } from '../src/ops/linear.ts';
import { MINILM_SHAPE, writeBertCheckpoint, type BertShape } from '../fixtures/index.ts';
import { createBenchContext } from './lib/device.ts';
import { fmt, median, report, table, type BenchIO } from './lib/measure.ts';

const USAGE = `usage: npm run bench -- load [--json] [--reps 5] [--embeddings int8|int4|f16|f32] [--vocab 30522] [--hidden 384] [--layers 6]
  --reps N        timed rounds after one warm-up round (default 5; --quick: 1)
  --embeddings E  how the pre-quantized files store the word table (webq quantize --embeddings; default int8)
  --vocab, --hidden, --layers   the checkpoint's shape (default MiniLM's: 30522, 384, 6)
`;

export interface LoadResult {
  model: string;
  case: 'f32' | 'q8 from f32' | 'q8 pre-quantized' | 'q4 pre-quantized';
  /** The folder loaded: the float checkpoint or a pre-quantized copy. */
  file: 'f32' | 'q8' | 'q4';
  dtype: LinearDType;
  /** How the loaded model holds its word table. */
  embeddings: EmbeddingDType;
  /** Median load time, milliseconds. */
  ms: number;
  /** model.safetensors bytes, and their ratio to the f32 checkpoint's. */
  file_bytes: number;
  file_ratio: number;
  /** ms / the `q8 from f32` case's ms. */
  time_vs_q8_from_f32: number;
  weight_bytes: number;
  reps: number;
  adapter: string;
}

interface Case {
  name: LoadResult['case'];
  dir: string;
  file: LoadResult['file'];
  dtype: LinearDType;
  embeddings: EmbeddingDType;
  samples: number[];
  weightBytes: number;
}

export async function run(args: string[], io: BenchIO): Promise<number> {
  let v: Record<string, string | boolean | undefined>;
  let shape: BertShape;
  let reps: number;
  let embeddings: EmbeddingDType;
  try {
    v = parseArgs({ args, options: { json: { type: 'boolean' }, quick: { type: 'boolean' }, help: { type: 'boolean' }, reps: { type: 'string' }, embeddings: { type: 'string' }, vocab: { type: 'string' }, hidden: { type: 'string' }, layers: { type: 'string' } } }).values;
    const count = (name: string, fallback: number) => {
      const x = Number(v[name] ?? fallback);
      if (!Number.isInteger(x) || x < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(v[name])}`);
      return x;
    };
    shape = { ...MINILM_SHAPE, vocab: count('vocab', MINILM_SHAPE.vocab), hidden: count('hidden', MINILM_SHAPE.hidden), layers: count('layers', MINILM_SHAPE.layers) };
    if (shape.hidden % 32) throw new Error(`--hidden must be a multiple of 32, got ${shape.hidden}`);
    reps = count('reps', v.quick ? 1 : 5);
    embeddings = (v.embeddings ?? 'int8') as EmbeddingDType;
    if (!EMBEDDING_DTYPES.includes(embeddings)) throw new Error(`--embeddings must be ${EMBEDDING_DTYPES.join(', ')}, got ${JSON.stringify(v.embeddings)}`);
  } catch (e) {
    io.stderr(`bench load: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (v.help) {
    io.stdout(USAGE);
    return 0;
  }
  const root = await mkdtemp(join(tmpdir(), 'webq-bench-load-'));
  const { ctx } = await createBenchContext();
  try {
    const f32Dir = join(root, 'f32');
    let t0 = performance.now();
    const { describe } = await writeBertCheckpoint(f32Dir, shape);
    io.stderr(`adapter: ${ctx.caps.adapter}; ${describe}; written in ${fmt((performance.now() - t0) / 1000)} s\n`);
    for (const dtype of ['q8', 'q4'] as const) {
      t0 = performance.now();
      await quantizeCheckpoint(await openModelFiles(f32Dir), join(root, dtype), dtype, { embeddings });
      io.stderr(`webq quantize --dtype ${dtype} --embeddings ${embeddings}: ${fmt((performance.now() - t0) / 1000)} s\n`);
    }
    const cases: Case[] = [
      { name: 'f32', dir: f32Dir, file: 'f32', dtype: 'f32', embeddings: 'f32', samples: [], weightBytes: 0 },
      { name: 'q8 from f32', dir: f32Dir, file: 'f32', dtype: 'q8', embeddings: 'int8', samples: [], weightBytes: 0 },
      { name: 'q8 pre-quantized', dir: join(root, 'q8'), file: 'q8', dtype: 'q8', embeddings, samples: [], weightBytes: 0 },
      { name: 'q4 pre-quantized', dir: join(root, 'q4'), file: 'q4', dtype: 'q4', embeddings, samples: [], weightBytes: 0 },
    ];
    const warmup = 1;
    io.stderr(`median of ${reps} rounds (cases interleaved) after ${warmup} warm-up round\n`);
    for (let round = 0; round < warmup + reps; round++) {
      for (const c of cases) {
        const t = performance.now();
        const m = await BertModel.load(c.dir, { dtype: c.dtype, context: ctx });
        await ctx.dev.sync(); // the uploads have landed
        const ms = performance.now() - t;
        c.weightBytes = m.weightBytes;
        m.dispose();
        if (round >= warmup) c.samples.push(ms);
      }
    }
    const sizes = await Promise.all(cases.map(async (c) => (await stat(join(c.dir, 'model.safetensors'))).size));
    const base = median(cases[1].samples);
    const results: LoadResult[] = cases.map((c, i) => ({
      model: describe, case: c.name, file: c.file, dtype: c.dtype, embeddings: c.embeddings,
      ms: median(c.samples), file_bytes: sizes[i], file_ratio: sizes[i] / sizes[0], time_vs_q8_from_f32: median(c.samples) / base,
      weight_bytes: c.weightBytes, reps: c.samples.length, adapter: ctx.caps.adapter,
    }));
    for (const c of cases) io.stderr(`${c.name}: ${c.samples.map(fmt).join(' ')} ms\n`);
    const rows = results.map((r) => [r.case, r.embeddings, fmt(r.ms), fmt(r.time_vs_q8_from_f32), fmt(r.file_bytes / 1e6), `${(100 * r.file_ratio).toFixed(1)}%`, fmt(r.weight_bytes / 1e6)]);
    report(io, !!v.json, table(['case', 'table', 'load ms', 'vs q8 from f32', 'file MB', 'of f32 file', 'GPU MB'], rows), results);
    return 0;
  } finally {
    ctx.dispose();
    await rm(root, { recursive: true, force: true });
  }
}
