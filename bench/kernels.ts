/**
 * `npm run bench -- kernels`: the Linear-layer matmul (x [M, K] times weight [N, K], the Hugging
 * Face layout) per weight dtype, beside a plain copy kernel that says how fast this device moves
 * bytes. Decode (M = 1) is bandwidth-bound, so its GB/s against the copy's is the number to watch;
 * prefill and BERT shapes show the compute side (GFLOP/s, speedup over f32).
 */
import { parseArgs } from 'node:util';
import type { GpuContext } from '../src/gpu/context.ts';
import type { Recorder } from '../src/gpu/recorder.ts';
import type { Tensor } from '../src/gpu/tensor.ts';
import { copy } from '../src/ops/copy.ts';
import { matmul } from '../src/ops/matmul.ts';
import { createBenchContext, parseAb, parseKernels, withErrorScopes } from './lib/device.ts';
import { fmt, measure, seeded, table, type BenchIO, type Measurement } from './lib/measure.ts';

type Shape = [M: number, N: number, K: number];

const DTYPES: readonly BenchDType[] = ['f32', 'f16', 'q8', 'q4', 'w8a8', 'w4a8', 'q8:int8', 'q4:int8'];
const DEFAULT_DTYPES: readonly BenchDType[] = ['f32', 'f16', 'q8', 'q4', 'w8a8'];
// Decode and prefill through a 7B-class projection; the FFN down and up projections of a small BERT
// (hidden 384, FFN 1536, as in MiniLM) over 128 tokens.
const DEFAULT_SHAPES: readonly Shape[] = [[1, 4096, 4096], [128, 4096, 4096], [128, 384, 1536], [128, 1536, 384]];
const WARMUP = 2;
/** Per-case cap on timed runs (see MeasureOptions.budgetMs); `reps` in the JSON is the count used. */
const CASE_BUDGET_MS = 20_000;
const COPY_BYTES = 64 * 2 ** 20;

// Quantized cases go through src/ops/linear.ts (weights prepared by src/models/prepare-linear.ts).
// They are imported at run time, inside a try, so that a broken or half-edited linear.ts costs only
// its own cases: the float ones then run through matmul, and the report says so.
type LinearModule = typeof import('../src/ops/linear.ts') & typeof import('../src/models/prepare-linear.ts');
/** A Linear dtype; `q8:int8` / `q4:int8` run it with int8 activation blocks (bare q8/q4: weight-only). */
type BenchDType = import('../src/ops/linear.ts').LinearDType | 'q8:int8' | 'q4:int8';

/** One JSON object per case; the field meanings are in bench/README.md. */
export interface KernelResult {
  kernel: 'gemv' | 'gemm';
  shape: Shape;
  dtype: BenchDType;
  act: 'f32' | 'f16';
  ms: number;
  gbps: number;
  ratio_to_copy: number;
  speedup_vs_f32: number | null;
  gflops: number;
  weight_bytes: number;
  traffic_bytes: number;
  op: 'linear' | 'matmul';
  kernels: string[];
  timing: Measurement['timing'];
  reps: number;
  adapter: string;
  copy_gbps: number;
  /** --ab robustness: which device ran this row, and its time over the other device's (same case, alternating runs). */
  robustness?: boolean;
  /** --ab gemv-multi: whether this row ran with the multi-row GEMV allowed (gemv.multi 'auto'). */
  gemv_multi?: boolean;
  ab_ratio?: number;
}

/** --ab: alternating rounds per device and case. */
const AB_ROUNDS = 3;

const USAGE = `usage: npm run bench -- kernels [--json] [--quick] [--reps N] [--filter S]... [--shapes MxNxK,...] [--dtypes d,...] [--kernels gpu|cpu] [--ab robustness|gemv-multi]

  --json        print only a JSON array of results on stdout (the table and progress go to stderr)
  --quick       3 timed runs per case instead of 10
  --reps N      timed runs per case (after ${WARMUP} warm-up runs); the median is reported
  --filter S    run cases whose name ('gemv 1x4096x4096 q4') contains S; repeatable (any match)
  --shapes L    comma-separated MxNxK shapes instead of ${DEFAULT_SHAPES.map((s) => s.join('x')).join(',')}
  --kernels F   GEMM kernel family: gpu (workgroup-memory tiles) or cpu (subgroup shuffles; the
                default on CPU-emulated adapters with fixed-size subgroups)
  --dtypes L    comma-separated weight dtypes from ${DTYPES.join(',')} (default ${DEFAULT_DTYPES.join(',')});
                q8/q4 run weight-only, q8:int8/q4:int8 with int8 activation blocks
  --ab robustness  run every case on two devices, Dawn's robustness off (webq's default in Node)
                and on, alternating in ${AB_ROUNDS} rounds; each row says which, and ab_ratio is its
                time over the other's
  --ab gemv-multi  the same with the multi-row decode GEMV (M = 2..8) allowed ('auto', the default)
                and not ('off': a workgroup per row of x up to M = 4, the GEMM above)
`;

class Skip extends Error {}

interface Options {
  json: boolean;
  reps: number;
  filters: string[];
  shapes: Shape[];
  dtypes: BenchDType[];
  kernels?: 'gpu' | 'cpu';
  ab?: 'robustness' | 'gemv-multi';
}

function parseOptions(args: string[]): Options | 'help' {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      json: { type: 'boolean' },
      quick: { type: 'boolean' },
      reps: { type: 'string' },
      filter: { type: 'string', multiple: true },
      shapes: { type: 'string' },
      dtypes: { type: 'string' },
      kernels: { type: 'string' },
      ab: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const reps = values.reps === undefined ? (values.quick ? 3 : 10) : Number(values.reps);
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive integer, got ${JSON.stringify(values.reps)}`);
  const shapes = values.shapes === undefined ? DEFAULT_SHAPES.map((s) => [...s] as Shape) : values.shapes.split(',').map((s) => {
    const dims = s.trim().split('x').map(Number);
    if (dims.length !== 3 || !dims.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`--shapes: '${s}' is not MxNxK`);
    return dims as Shape;
  });
  const dtypes = values.dtypes === undefined ? [...DEFAULT_DTYPES] : values.dtypes.split(',').map((d) => {
    if (!(DTYPES as readonly string[]).includes(d.trim())) throw new Error(`--dtypes: unknown dtype '${d}' (have ${DTYPES.join(', ')})`);
    return d.trim() as BenchDType;
  });
  const kernels = parseKernels(values.kernels);
  return { json: !!values.json, reps, filters: (values.filter ?? []).map((f) => f.toLowerCase()), shapes, dtypes, kernels, ab: parseAb(values.ab) };
}

async function loadLinear(): Promise<LinearModule | string> {
  try {
    return { ...(await import('../src/ops/linear.ts')), ...(await import('../src/models/prepare-linear.ts')) };
  } catch (e) {
    return `src/ops/linear.ts or src/models/prepare-linear.ts did not load: ${(e as Error).message.split('\n')[0]}`;
  }
}

const caseName = (kernel: string, [M, N, K]: Shape, dtype: string) => `${kernel} ${M}x${N}x${K} ${dtype}`;

/** Copy-kernel bandwidth in GB/s, counting bytes read plus bytes written. */
async function copyBandwidth(ctx: GpuContext, reps: number): Promise<number> {
  const bytes = Math.min(COPY_BYTES, Math.floor(ctx.caps.maxStorageBufferBindingSize / 16) * 16);
  const src = ctx.upload(new Uint32Array(bytes / 4).fill(0x3c003c00), [bytes / 4], 'u32', 'bench:copy-src');
  const dst = ctx.empty([bytes / 4], 'u32', 'bench:copy-dst');
  try {
    const m = await measure(ctx, (rec) => void copy(ctx, rec, src, dst), { warmup: WARMUP, reps, label: 'bench:copy' });
    return (2 * bytes) / (m.ms * 1e6);
  } finally {
    src.dispose();
    dst.dispose();
  }
}

interface CaseInput {
  shape: Shape;
  dtype: BenchDType;
  w: Float32Array;
  x: Float32Array;
}

interface CaseRun {
  m: Measurement;
  act: 'f32' | 'f16';
  weightBytes: number;
  op: KernelResult['op'];
}

/** Prepares one case's tensors, times it, frees them. */
async function runCase(ctx: GpuContext, lin: LinearModule | string, c: CaseInput, reps: number): Promise<CaseRun> {
  const [M, N, K] = c.shape;
  const quantized = c.dtype !== 'f32' && c.dtype !== 'f16';
  if (c.dtype === 'f16' && !ctx.caps.f16) throw new Skip('this device has no shader-f16');
  if (quantized && typeof lin === 'string') throw new Skip('needs src/ops/linear.ts (see the note above)');
  // Quantized weights take the activation precision a model would use on this device.
  const act: CaseRun['act'] = c.dtype === 'f32' ? 'f32' : c.dtype === 'f16' || ctx.caps.f16 ? 'f16' : 'f32';
  const label = caseName(M === 1 ? 'gemv' : 'gemm', c.shape, c.dtype);
  const x = ctx.uploadFloat(c.x, [M, K], act, 'bench:x');
  const disposers: Array<() => void> = [() => x.dispose()];
  try {
    let forward: (rec: Recorder) => Tensor;
    let weightBytes: number;
    let op: KernelResult['op'];
    if (typeof lin !== 'string') {
      // precision: the activation type the weight will meet (scales are stored to match).
      const [dtype, activations] = c.dtype.split(':') as [import('../src/ops/linear.ts').LinearDType, 'int8' | undefined];
      const w = lin.prepareLinear(ctx, c.w, N, K, dtype, { precision: act, activations });
      disposers.push(() => w.dispose());
      forward = (rec) => lin.linear(ctx, rec, x, w);
      [weightBytes, op] = [w.bytes, 'linear'];
    } else {
      const w = ctx.uploadFloat(c.w, [N, K], c.dtype as 'f32' | 'f16', 'bench:w');
      disposers.push(() => w.dispose());
      forward = (rec) => matmul(ctx, rec, x, w);
      [weightBytes, op] = [N * K * (c.dtype === 'f16' ? 2 : 4), 'matmul'];
    }
    const m = await measure(ctx, (rec) => {
      const out = forward(rec);
      return () => out.dispose();
    }, { warmup: WARMUP, reps, budgetMs: CASE_BUDGET_MS, label });
    return { m, act, weightBytes, op };
  } finally {
    for (const d of disposers.reverse()) d();
  }
}

const sig = (x: number) => Number(x.toPrecision(4));

function toResult(shape: Shape, dtype: BenchDType, r: CaseRun, f32ms: number | null, copyGbps: number, adapter: string): KernelResult {
  const [M, N, K] = shape;
  // Least traffic any implementation needs: the weight, x read once, the output written once.
  const traffic = r.weightBytes + (M * K + M * N) * (r.act === 'f16' ? 2 : 4);
  const s = r.m.ms / 1e3;
  return {
    kernel: M === 1 ? 'gemv' : 'gemm', shape, dtype, act: r.act,
    ms: sig(r.m.ms),
    gbps: sig(r.weightBytes / s / 1e9),
    ratio_to_copy: sig(traffic / s / 1e9 / copyGbps),
    speedup_vs_f32: f32ms === null ? null : sig(f32ms / r.m.ms),
    gflops: sig((2 * M * N * K) / s / 1e9),
    weight_bytes: r.weightBytes, traffic_bytes: traffic, op: r.op, kernels: r.m.kernels,
    timing: r.m.timing, reps: r.m.samples.length, adapter, copy_gbps: sig(copyGbps),
  };
}

export async function run(args: string[], io: BenchIO): Promise<number> {
  let opts: Options | 'help';
  try {
    opts = parseOptions(args);
  } catch (e) {
    io.stderr(`bench kernels: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (opts === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  const { reps, filters } = opts;
  const selected = (name: string) => !filters.length || filters.some((f) => name.toLowerCase().includes(f));
  const log = io.stderr;
  // One device, or (--ab robustness) two: robustness off (the default) and on, run alternately.
  // --ab gemv-multi: the multi-row decode GEMV allowed and not.
  const { kernels } = opts;
  const devices =
    opts.ab === 'robustness' ? [await createBenchContext({ kernels, robustness: false }), await createBenchContext({ kernels, robustness: true })]
    : opts.ab === 'gemv-multi' ? [await createBenchContext({ kernels, gemvMulti: 'auto' }), await createBenchContext({ kernels, gemvMulti: 'off' })]
    : [await createBenchContext({ kernels })];
  const { ctx, exactTimestamps } = devices[0];
  const abOn = (c: GpuContext) => (opts.ab === 'robustness' ? c.caps.robustness === true : c.caps.gemv.multi !== 'off');
  const name = (c: GpuContext) => (opts.ab ? ` [${opts.ab} ${abOn(c) ? 'on' : 'off'}]` : '');
  let failed = 0;
  try {
    const caps = ctx.caps;
    const lin = await loadLinear();
    log(`adapter: ${caps.adapter}${caps.software ? ' (software)' : ''}; shader-f16=${caps.f16} timestamp-query=${caps.timestamps}; ${caps.kernels} kernels; robustness ${opts.ab === 'robustness' ? 'off and on (A/B)' : caps.robustness === null ? "the runtime's" : caps.robustness ? 'on' : 'off'}\n`);
    const timing = caps.timestamps ? `GPU timestamps, kernels only${exactTimestamps ? '' : ' (may be quantized to 65.5 us)'}` : 'wall clock around submit + queue drain';
    log(`timing: ${timing}; median of ${reps} after ${WARMUP} warm-up runs${opts.ab ? `, in ${AB_ROUNDS} alternating rounds per device` : ''}\n`);
    if (typeof lin === 'string') log(`note: ${lin}; quantized dtypes are skipped and f32/f16 run through matmul\n`);
    const copyGbps = await copyBandwidth(ctx, reps);
    log(`copy kernel: ${copyGbps.toFixed(2)} GB/s (bytes read + written)\n`);
    const results: KernelResult[] = [];
    for (const shape of opts.shapes) {
      const [M, N, K] = shape;
      const kernel = M === 1 ? 'gemv' : 'gemm';
      const wanted = opts.dtypes.filter((d) => selected(caseName(kernel, shape, d)));
      if (!wanted.length) continue;
      // f32 always runs: it is the baseline of speedup_vs_f32, reported only when selected.
      const order = (['f32', ...wanted.filter((d) => d !== 'f32')] as BenchDType[]);
      const w = seeded(N * K, 1000 + N + K, 0.05);
      const x = seeded(M * K, 7 + M, 1);
      const f32ms = new Map<GpuContext, number>();
      for (const dtype of order) {
        const caseLabel = caseName(kernel, shape, dtype);
        try {
          const byDevice = await timeOnDevices(devices.map((d) => d.ctx), (c, n) => withErrorScopes(c, () => runCase(c, lin, { shape, dtype, w, x }, n)), reps, opts.ab ? AB_ROUNDS : 1);
          const rows: KernelResult[] = [];
          for (const [c, r] of byDevice) {
            if (dtype === 'f32') f32ms.set(c, r.m.ms);
            log(`${caseLabel}${name(c)}: ${fmt(r.m.ms)} ms (runs: ${r.m.samples.map(fmt).join(' ')})${wanted.includes(dtype) ? '' : ' [baseline only]'}\n`);
            rows.push({ ...toResult(shape, dtype, r, f32ms.get(c) ?? null, copyGbps, caps.adapter), ...(opts.ab && { [opts.ab === 'robustness' ? 'robustness' : 'gemv_multi']: abOn(c) }) });
          }
          if (opts.ab) for (const [i, row] of rows.entries()) row.ab_ratio = sig(row.ms / rows[1 - i].ms);
          if (wanted.includes(dtype)) results.push(...rows);
        } catch (e) {
          if (!(e instanceof Skip)) failed++;
          if (wanted.includes(dtype) || !(e instanceof Skip)) log(`${caseLabel}: ${e instanceof Skip ? 'skipped' : 'FAILED'}: ${(e as Error).message}\n`);
        }
      }
    }
    const rows = results.map((r) => [
      r.kernel, r.shape.join('x'), r.dtype, r.act, fmt(r.ms), fmt(r.gbps), fmt(r.ratio_to_copy),
      r.speedup_vs_f32 === null ? '-' : fmt(r.speedup_vs_f32), fmt(r.gflops),
      ...(opts.ab ? [(opts.ab === 'robustness' ? r.robustness : r.gemv_multi) ? 'on' : 'off', fmt(r.ab_ratio!)] : []),
    ]);
    const text = table(['kernel', 'shape MxNxK', 'dtype', 'act', 'ms', 'GB/s', 'ratio_to_copy', 'speedup_vs_f32', 'GFLOP/s', ...(opts.ab ? [opts.ab, 'ab_ratio'] : [])], rows, 4);
    if (opts.json) {
      log(text);
      // One object per line: still one JSON array, but readable and diffable.
      io.stdout(`[\n${results.map((r) => `  ${JSON.stringify(r)}`).join(',\n')}\n]\n`);
    } else {
      io.stdout(`copy_gbps ${copyGbps.toFixed(2)} (${caps.adapter})\n${text}`);
    }
  } finally {
    for (const d of devices) d.ctx.dispose();
  }
  return failed ? 1 : 0;
}

/**
 * Times one case on each device: `rounds` rounds, each running it on every device in turn with
 * reps / rounds timed runs, so slow drift of a noisy machine hits both devices alike. Returns the
 * pooled median per device.
 */
async function timeOnDevices(ctxs: GpuContext[], once: (ctx: GpuContext, reps: number) => Promise<CaseRun>, reps: number, rounds: number): Promise<Map<GpuContext, CaseRun>> {
  const out = new Map<GpuContext, CaseRun>();
  const per = Math.max(1, Math.ceil(reps / rounds));
  for (let r = 0; r < rounds; r++) {
    for (const c of ctxs) {
      const run = await once(c, per);
      const prev = out.get(c);
      if (!prev) out.set(c, run);
      else {
        const samples = [...prev.m.samples, ...run.m.samples];
        const sorted = [...samples].sort((a, b) => a - b);
        out.set(c, { ...run, m: { ...run.m, samples, ms: sorted[Math.floor(sorted.length / 2)] } });
      }
    }
  }
  return out;
}
