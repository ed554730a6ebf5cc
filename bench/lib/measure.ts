/**
 * Timing for benchmark suites: warm up, then the median of N timed runs of one recorded forward.
 * GPU timestamps when the device has timestamp-query (they measure the kernels alone, not the
 * submit/readback round trip, which on a software adapter is a large and noisy share), else the
 * wall clock around submit + queue drain.
 */
import { parseArgs } from 'node:util';
import type { GpuContext } from '../../src/gpu/context.ts';
import type { KernelTiming, Recorder } from '../../src/gpu/recorder.ts';
import { MINILM_MAX_POSITIONS } from './minilm.ts';

/** Where suites write: stdout is reserved for the report (JSON in --json mode). */
export interface BenchIO {
  stdout(s: string): void;
  stderr(s: string): void;
}

export type TimingSource = 'timestamp' | 'wall';

export interface Measurement {
  /** Median over reps, in milliseconds (the sum of all kernels of one run). */
  ms: number;
  samples: number[];
  timing: TimingSource;
  /** Kernel labels of one run, for the log (empty with wall-clock timing). */
  kernels: string[];
  /** Milliseconds per kernel label, summed over the dispatches of the last run (timestamps only). */
  profile: Record<string, number>;
  /** Every timed dispatch of each timed run, in dispatch order (timestamps only; empty lists otherwise). */
  timings: KernelTiming[][];
}

export interface MeasureOptions {
  warmup: number;
  reps: number;
  /**
   * Stop early once the timed runs have taken this long (wall clock) and at least 3 are in, so a
   * slow kernel on a software adapter cannot stretch a suite past its time budget.
   */
  budgetMs?: number;
  label?: string;
}

/**
 * `record` records every dispatch of one case into the recorder it is given and returns a
 * cleanup that runs once that run's work is done (e.g. returning outputs to the pool, so every run
 * reuses the same buffers and bind groups).
 */
export async function measure(ctx: GpuContext, record: (rec: Recorder) => (() => void) | void, opts: MeasureOptions): Promise<Measurement> {
  const useTimestamps = ctx.caps.timestamps;
  const samples: number[] = [];
  let kernels: string[] = [];
  let profile: Record<string, number> = {};
  const runs: KernelTiming[][] = [];
  let source: TimingSource = useTimestamps ? 'timestamp' : 'wall';
  let spent = 0;
  for (let i = 0; i < opts.warmup + opts.reps; i++) {
    if (opts.budgetMs !== undefined && samples.length >= Math.min(3, opts.reps) && spent > opts.budgetMs) break;
    const rec = ctx.record({ timing: useTimestamps, label: opts.label });
    const cleanup = record(rec);
    const t0 = performance.now();
    const timings = await rec.submit();
    await ctx.dev.sync();
    const wall = performance.now() - t0;
    cleanup?.();
    let ms = wall;
    if (timings.length) {
      ms = timings.reduce((s, t) => s + t.ms, 0);
      kernels = timings.map((t) => t.label);
      profile = {};
      for (const t of timings) profile[t.label] = (profile[t.label] ?? 0) + t.ms;
    } else if (useTimestamps) {
      source = 'wall'; // timing was asked for but nothing came back (all dispatches timed out of range)
    }
    if (i >= opts.warmup) {
      samples.push(ms);
      runs.push(timings);
      spent += wall;
    }
  }
  return { ms: median(samples), samples, timing: source, kernels, profile, timings: runs };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** 3-4 significant digits without exponents, for tables. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Math.abs(x) >= 1000) return x.toFixed(0);
  if (Math.abs(x) < 1e-3) return x === 0 ? '0' : x.toExponential(1);
  return x.toPrecision(Math.abs(x) >= 100 ? 4 : 3);
}

/** Deterministic uniform values in [-scale, scale): benchmarks need repeatable, not real, weights. */
export function seeded(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  const k = scale / 2 ** 31;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s * k - scale;
  }
  return out;
}

/** A plain-text table: the first `left` columns (names) left-aligned, the numbers right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], left = 1): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: readonly string[]) => r.map((c, i) => (i < left ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

/** The model suites' shared options (bert, ort): each is a string or a flag. */
const MODEL_OPTIONS = {
  json: { type: 'boolean' },
  quick: { type: 'boolean' },
  help: { type: 'boolean' },
  dtypes: { type: 'string' },
  batch: { type: 'string' },
  seq: { type: 'string' },
  layers: { type: 'string' },
  reps: { type: 'string' },
} as const;

export interface ModelArgs {
  /** Every option as given (the suite's own ones included). */
  v: Record<string, string | boolean | undefined>;
  /** Texts per batch (--batch; 8 with --quick, else 32), tokens per text, encoder layers. */
  B: number;
  T: number;
  layers: number;
  /** Timed rounds (--reps; 1 with --quick, else 3), after one warm-up round. */
  reps: number;
}

/**
 * Parses a model suite's command line: its options, or the exit code to return (0 after printing
 * the usage for --help, 2 after a bad option). `extra` adds the suite's own options; `check` may
 * throw to reject a value.
 */
export function parseModelArgs(suite: string, args: string[], usage: string, io: BenchIO, extra: Record<string, { type: 'string' | 'boolean' }>, check?: (v: Record<string, string | boolean | undefined>) => void): ModelArgs | number {
  let parsed: ModelArgs;
  try {
    const v = parseArgs({ args, options: { ...MODEL_OPTIONS, ...extra } }).values as Record<string, string | boolean | undefined>;
    check?.(v);
    const count = (name: string, fallback: number, max = Infinity): number => {
      const x = Number(v[name] ?? fallback);
      if (!Number.isInteger(x) || x < 1 || x > max) throw new Error(`--${name} must be ${max === Infinity ? 'a positive integer' : `an integer from 1 to ${max}`}, got ${JSON.stringify(v[name])}`);
      return x;
    };
    parsed = { v, B: count('batch', v.quick ? 8 : 32), T: count('seq', 128, MINILM_MAX_POSITIONS), layers: count('layers', 6), reps: count('reps', v.quick ? 1 : 3) };
  } catch (e) {
    io.stderr(`bench ${suite}: ${(e as Error).message}\n${usage}`);
    return 2;
  }
  if (parsed.v.help) {
    io.stdout(usage);
    return 0;
  }
  return parsed;
}

/** The report: with --json the results as one JSON array on stdout and the table on stderr, else the table on stdout. */
export function report(io: BenchIO, json: boolean, text: string, results: unknown[]): void {
  if (json) {
    io.stderr(text);
    io.stdout(`${JSON.stringify(results)}\n`);
  } else io.stdout(text);
}
