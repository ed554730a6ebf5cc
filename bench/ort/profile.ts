/**
 * Per-kernel profiles of one BERT forward, grouped into the same buckets for webq and for
 * onnxruntime (`npm run bench -- ort --profile`):
 *
 *   qkv        the Q, K and V projections (webq: one fused matmul; onnxruntime: three)
 *   attention  scores, mask, softmax, context (webq: the fused attention kernel; onnxruntime: the
 *              MatMul / Div / Add / Softmax / MatMul chain and the head split/merge transposes)
 *   attn_out   the attention output projection, with its bias and residual add
 *   ffn_up     the intermediate projection with its bias and GELU
 *   ffn_down   the output projection, with its bias and residual add
 *   other      layernorms, embeddings, mask preparation, copies
 *
 * A Linear's bucket holds its whole epilogue (bias, activation, residual) because webq fuses those
 * into the matmul while onnxruntime runs them as separate nodes; activation quantization (webq's
 * int8 activations, onnxruntime's DynamicQuantizeLinear) belongs to the Linear it feeds.
 *
 * webq's times are its own GPU timestamp queries (`measure()` with timing on, as `bench bert
 * --profile` uses them); the bucket of a dispatch comes from the Linear being recorded (bertForward's
 * tap names each Linear unit before its matmul) and the kernel's shader (attention, norm).
 * onnxruntime's come from its profiler (session option `enableProfiling`): with the WebGPU EP it
 * times every dispatch with timestamp queries and writes one `Api` event per dispatch, named
 * `node&op&program`; nodes its CPU EP runs appear as `Node` events with their host time. The node
 * name leads back to the graph as built (ort.ts tags every node with its bucket); nodes that
 * onnxruntime created by fusing others are bucketed by op type.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { GpuContext } from '../../src/gpu/context.ts';
import type { KernelTiming, Recorder } from '../../src/gpu/recorder.ts';
import type { LinearTap } from '../../src/ops/calib-stats.ts';
import { fmt, measure, median, table } from '../lib/measure.ts';

export const BUCKETS = ['qkv', 'attention', 'attn_out', 'ffn_up', 'ffn_down', 'other'] as const;
export type Bucket = (typeof BUCKETS)[number];

export const BUCKET_TITLES: Record<Bucket, string> = {
  qkv: 'QKV projections',
  attention: 'attention (scores/softmax/context)',
  attn_out: 'attention output projection',
  ffn_up: 'FFN up (+GELU)',
  ffn_down: 'FFN down',
  other: 'layernorm/other',
};

/** One kernel (or host node) of one forward. */
export interface KernelSample {
  bucket: Bucket;
  /** What ran: webq's pipeline label, onnxruntime's `op (program)`. */
  name: string;
  ms: number;
  /** Ran on the host CPU (an onnxruntime CPU EP node) rather than the adapter. */
  host?: boolean;
}

export interface KernelRow {
  bucket: Bucket;
  name: string;
  /** Median over the profiled runs of this name's summed time in one forward. */
  ms: number;
  /** Dispatches (nodes) of this name in one forward. */
  count: number;
  host: boolean;
}

export interface BucketProfile {
  /** What the times are. */
  source: string;
  /** Profiled forwards behind the medians (after the warm-up ones). */
  runs: number;
  /** Median over the runs of each bucket's summed kernel time in one forward, ms. */
  buckets: Record<Bucket, number>;
  /** The buckets' sum, ms. */
  total_ms: number;
  /** Of total_ms, what ran on the host CPU (onnxruntime CPU EP nodes), ms. */
  host_ms: number;
  /** Kernels (dispatches, host nodes) in one forward. */
  kernels: number;
  /** Per kernel name, largest first. */
  detail: KernelRow[];
  /** Names whose bucket was a guess ('other'): nodes onnxruntime made that the op-type rules don't know. */
  unmapped: string[];
}

/** Medians per bucket and per kernel name over runs of the same forward. */
export function summarize(runs: KernelSample[][], source: string, unmapped: string[] = []): BucketProfile {
  const buckets = Object.fromEntries(BUCKETS.map((b) => [b, median(runs.map((r) => r.filter((k) => k.bucket === b).reduce((s, k) => s + k.ms, 0)))])) as Record<Bucket, number>;
  if (!runs.length) for (const b of BUCKETS) buckets[b] = 0;
  const rows = new Map<string, { bucket: Bucket; name: string; host: boolean; ms: number[]; count: number }>();
  runs.forEach((r, i) => {
    for (const k of r) {
      const key = `${k.bucket}\u0000${k.name}`;
      let row = rows.get(key);
      if (!row) rows.set(key, (row = { bucket: k.bucket, name: k.name, host: !!k.host, ms: new Array<number>(runs.length).fill(0), count: 0 }));
      row.ms[i] += k.ms;
      if (i === runs.length - 1) row.count++;
    }
  });
  const detail = [...rows.values()].map((r) => ({ bucket: r.bucket, name: r.name, ms: median(r.ms), count: r.count, host: r.host })).sort((a, b) => b.ms - a.ms);
  const last = runs[runs.length - 1] ?? [];
  return {
    source,
    runs: runs.length,
    buckets,
    total_ms: BUCKETS.reduce((s, b) => s + buckets[b], 0),
    host_ms: median(runs.map((r) => r.filter((k) => k.host).reduce((s, k) => s + k.ms, 0))) || 0,
    kernels: last.length,
    detail,
    unmapped: [...new Set(unmapped)],
  };
}

// ---------------------------------------------------------------------------------------------
// webq

/** bertForward's Linear units (its tap's names, `layers.i.<unit>`) and their buckets. */
const WEBQ_UNITS: Record<string, Bucket> = { qkv: 'qkv', attnOut: 'attn_out', inter: 'ffn_up', out: 'ffn_down' };

/**
 * The bucket of one webq dispatch: attention and norm kernels by their shader, everything else by
 * the Linear unit being recorded when it was dispatched (`unit` is null before the first Linear).
 */
export function webqBucket(unit: string | null, label: string): Bucket {
  const shader = label.split(/[.[{]/)[0];
  if (/^att/.test(shader)) return 'attention';
  if (/norm/.test(shader) || unit === null) return 'other';
  return WEBQ_UNITS[unit.split('.').pop()!] ?? 'other';
}

/**
 * Profiles `reps` forwards (after one warm-up) with GPU timestamps. `forward` records one forward
 * into `rec`, calling `tap` before each Linear as bertForward does, and returns its cleanup.
 */
export async function profileWebq(ctx: GpuContext, forward: (rec: Recorder, tap: LinearTap) => () => void, reps: number): Promise<BucketProfile> {
  if (!ctx.caps.timestamps) return summarize([], 'none: the adapter has no timestamp-query');
  const units: (string | null)[][] = [];
  const m = await measure(
    ctx,
    (rec) => {
      // Which Linear unit each timed dispatch belongs to: the recorder times every dispatch with a
      // non-empty grid, in order, and the tap runs just before a unit's first dispatch.
      const list: (string | null)[] = [];
      units.push(list);
      let unit: string | null = null;
      const dispatch = rec.dispatch;
      rec.dispatch = function (key, bindings, workgroups, uniforms) {
        dispatch.call(this, key, bindings, workgroups, uniforms);
        const [x, y = 1, z = 1] = workgroups;
        if (x && y && z) list.push(unit);
      };
      return forward(rec, (_rec, name) => {
        unit = name;
      });
    },
    { warmup: 1, reps, label: 'bert-profile' },
  );
  const runs = m.timings.map((timings: KernelTiming[], i) => {
    const list = units[1 + i];
    return timings.map((t, j): KernelSample => ({ bucket: webqBucket(list[j] ?? null, t.label), name: t.label, ms: t.ms }));
  });
  return summarize(runs, 'webq: GPU timestamp queries, one per dispatch');
}

// ---------------------------------------------------------------------------------------------
// onnxruntime

/** An event of onnxruntime's profile (chrome trace format; ts and dur in microseconds). */
export interface TraceEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: Record<string, unknown>;
}

/** Nodes onnxruntime's graph optimizations create (new names): their bucket by op type. */
const FUSED_OPS: Record<string, Bucket> = {
  BiasGelu: 'ffn_up',
  Gelu: 'ffn_up',
  FastGelu: 'ffn_up',
  Attention: 'attention',
  MultiHeadAttention: 'attention',
  SkipLayerNormalization: 'other',
  LayerNormalization: 'other',
  MemcpyFromHost: 'other',
  MemcpyToHost: 'other',
};

/** The profile file onnxruntime wrote for `prefix` (`<prefix>_<date>.json`), the newest one. */
export async function readOrtProfile(prefix: string): Promise<TraceEvent[]> {
  const dir = dirname(prefix);
  const base = basename(prefix);
  const files = (await readdir(dir)).filter((f) => f.startsWith(`${base}_`) && f.endsWith('.json')).sort();
  if (!files.length) throw new Error(`onnxruntime wrote no profile ${prefix}_*.json`);
  return JSON.parse(await readFile(join(dir, files[files.length - 1]), 'utf8')) as TraceEvent[];
}

/**
 * Buckets onnxruntime's profile of several runs of one session: every `Api` event (a WebGPU
 * dispatch timed on the GPU) and every `Node` event of a node that no GPU EP ran (its host time).
 * `bucketOf` maps a node name of the graph as built to its bucket. The first `skip` runs
 * (`model_run` events) are dropped as warm-up.
 */
export function ortProfile(events: TraceEvent[], bucketOf: (node: string) => Bucket | undefined, skip = 1): BucketProfile {
  const starts = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').map((e) => e.ts).sort((a, b) => a - b);
  const runs: KernelSample[][] = starts.map(() => []);
  const unmapped: string[] = [];
  const bucket = (node: string, op: string): Bucket => {
    const b = bucketOf(node) ?? FUSED_OPS[op];
    if (b) return b;
    unmapped.push(`${node} (${op})`);
    return 'other';
  };
  let gpu = 0;
  for (const e of events) {
    let sample: KernelSample | null = null;
    if (e.cat === 'Api') {
      // WebGpuContext::CollectProfilingData: name `node&op&program`, dur in us from timestamp queries.
      const [node, op = '?', program = op] = e.name.split('&');
      sample = { bucket: bucket(node, op), name: program === op ? op : `${op} (${program})`, ms: e.dur / 1000 };
      gpu++;
    } else if (e.cat === 'Node' && e.name.endsWith('_kernel_time')) {
      const provider = String(e.args?.provider ?? '');
      if (/webgpu|js|cuda|dml/i.test(provider)) continue; // a GPU EP's node: its host time is the recording, the GPU time is in the Api events
      const node = e.name.slice(0, -'_kernel_time'.length);
      const op = String(e.args?.op_name ?? '?');
      sample = { bucket: bucket(node, op), name: `${op} (${provider.replace('ExecutionProvider', '') || 'host'} EP)`, ms: e.dur / 1000, host: true };
    }
    if (!sample) continue;
    let r = starts.length - 1;
    while (r > 0 && starts[r] > e.ts) r--;
    if (r >= 0) runs[r].push(sample);
  }
  const kept = runs.slice(Math.min(skip, Math.max(0, runs.length - 1)));
  const source = gpu ? 'onnxruntime profiler: WebGPU timestamp queries per dispatch, host time of CPU EP nodes' : 'onnxruntime profiler: host time of its nodes (no WebGPU dispatches timed)';
  return summarize(kept, source, unmapped);
}

// ---------------------------------------------------------------------------------------------
// Report

export interface BucketComparison {
  bucket: Bucket | 'total';
  title: string;
  webq_ms: number;
  ort_ms: number;
  /** ort_ms / webq_ms, as speedup_vs_ort: above 1, webq is faster in this bucket. */
  ratio: number;
}

export function compareBuckets(webq: BucketProfile, ort: BucketProfile): BucketComparison[] {
  const row = (bucket: Bucket | 'total', w: number, o: number): BucketComparison => ({ bucket, title: bucket === 'total' ? 'total (kernels)' : BUCKET_TITLES[bucket], webq_ms: w, ort_ms: o, ratio: w > 0 ? o / w : NaN });
  return [...BUCKETS.map((b) => row(b, webq.buckets[b], ort.buckets[b])), row('total', webq.total_ms, ort.total_ms)];
}

/**
 * One table: a block of bucket rows per (webq dtype, onnxruntime graph) pair, then, where given,
 * the pair's wall-clock times of the timed rounds (host to host: what the kernels leave out).
 */
export function bucketTable(pairs: { name: string; rows: BucketComparison[]; webq: BucketProfile; ort: BucketProfile; wall?: { webq_ms: number; ort_ms: number } }[]): string {
  const pct = (x: number, total: number) => (total > 0 ? `${((100 * x) / total).toFixed(1)}%` : '-');
  const ratio = (w: number, o: number) => (w > 0 && Number.isFinite(o / w) ? fmt(o / w) : '-');
  const body = pairs.flatMap((p) => [
    ...p.rows.map((r, i) => [i === 0 ? p.name : '', r.title, fmt(r.webq_ms), fmt(r.ort_ms), ratio(r.webq_ms, r.ort_ms), pct(r.webq_ms, p.webq.total_ms), pct(r.ort_ms, p.ort.total_ms)]),
    ...(p.wall ? [['', 'wall clock (timed rounds)', fmt(p.wall.webq_ms), fmt(p.wall.ort_ms), ratio(p.wall.webq_ms, p.wall.ort_ms), '', '']] : []),
  ]);
  return table(['pair', 'bucket', 'webq ms', 'ort ms', 'ort/webq', 'webq %', 'ort %'], body, 2);
}

/** The largest kernels of a profile, one line each (to stderr). */
export function detailLines(p: BucketProfile, top = 12): string {
  const lines = p.detail.slice(0, top).map((k) => `  ${fmt(k.ms).padStart(8)} ms ${(p.total_ms > 0 ? ((100 * k.ms) / p.total_ms).toFixed(1) : '-').padStart(5)}%  x${String(k.count).padEnd(3)} ${k.bucket.padEnd(9)} ${k.name}${k.host ? ' [host]' : ''}\n`);
  const more = p.detail.length > top ? `  ... ${p.detail.length - top} more\n` : '';
  return lines.join('') + more;
}
