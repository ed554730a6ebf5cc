/**
 * `npm run bench -- ort`: webq against onnxruntime's WebGPU execution provider (onnxruntime-node,
 * the runtime transformers.js uses in Node), same model, same adapter, same process. The model is
 * the bert suite's MiniLM-shaped random checkpoint; this suite writes it a second time as an ONNX
 * graph shaped like an optimum export (separate Q/K/V MatMuls, erf GELU, LayerNormalization),
 * with the Linear layers as transformers.js quantizes them:
 *   fp32: MatMul;
 *   q4:   com.microsoft MatMulNBits, 4 bits, blocks of 32, symmetric (transformers.js runs
 *         onnxruntime's MatMul4BitsQuantizer);
 *   q8:   DynamicQuantizeLinear + MatMulInteger (int8 weights, one scale per tensor) + Cast + Mul,
 *         what onnxruntime's dynamic IntegerOps quantization (transformers.js' q8) writes.
 * Both sides are timed wall clock, host to host: token ids in, last hidden state [B, T, H] out as
 * a Float32Array. Rounds interleave every (runtime, dtype) pair, so a slow stretch of the machine
 * hits all of them. The outputs are compared too (cosine, max |diff|): the fp32 pair is an
 * independent check of webq's forward. `--profile` adds both runtimes' kernel times of one
 * forward, grouped into the same buckets (QKV, attention, attention output, FFN up, FFN down,
 * other; bench/ort/profile.ts): webq's GPU timestamps against onnxruntime's own profiler.
 *
 * onnxruntime-node is not a dependency of webq (its install script fetches CUDA libraries from
 * NuGet on Linux); install it without scripts to run this suite:
 *   npm i --no-save --ignore-scripts onnxruntime-node@1.30.0
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cosineSimilarity } from '../src/api/similarity.ts';
import { SafetensorsFile } from '../src/io/safetensors/reader.ts';
import { bertForward, uploadBertWeights } from '../src/models/bert/bert.ts';
import { resolveBertWeights } from '../src/models/bert/bert-weights.ts';
import type { BertConfig } from '../src/models/config.ts';
import type { LinearDType } from '../src/ops/linear.ts';
import { createBenchContext, parseAb, parseKernels } from './lib/device.ts';
import { fmt, median, parseModelArgs, report, table, type BenchIO } from './lib/measure.ts';
import { randomIds, writeMiniLM } from './lib/minilm.ts';
import { encodeModel, GraphBuilder, onnxNodeName, OnnxType } from './ort/onnx.ts';
import { bucketTable, compareBuckets, detailLines, ortProfile, profileWebq, readOrtProfile, summarize, type Bucket, type BucketComparison, type BucketProfile } from './ort/profile.ts';

const USAGE = `usage: npm run bench -- ort [--json] [--quick] [--dtypes f32,q8,q4] [--batch 32] [--seq 128] [--layers 6] [--reps N] [--ep webgpu|cpu] [--kernels gpu|cpu] [--profile] [--ab robustness]
  Pairs webq's f32, q8, w8a8, q4 with onnxruntime's fp32, q8, q8, q4 graphs of the same weights.
  --quick    batch 8, 1 timed round after 1 warm-up
  --ep       onnxruntime execution provider (default webgpu)
  --kernels  webq's GEMM/attention kernel family (default: the adapter's; see Capabilities.kernels)
  --profile  after the timed rounds, per-kernel times of both runtimes (webq: its GPU timestamps;
             onnxruntime: its profiler) in buckets: QKV, attention, attention output, FFN up,
             FFN down, layernorm/other (a table, and 'profile' in the JSON)
  --ab robustness  webq on two devices, Dawn's robustness off (webq's default in Node) and on,
             each round running onnxruntime and then both, so every row's ratio comes from the
             same rounds; rows say which ('robustness' in the JSON). Not with --profile.
  Needs onnxruntime-node: npm i --no-save --ignore-scripts onnxruntime-node@1.30.0
`;

/** The onnxruntime-node surface this suite uses. */
interface OrtTensor {
  data: Float32Array;
}
interface OrtSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, OrtTensor>>;
  /** Writes the profile file (`<profileFilePrefix>_<date>.json`) and stops profiling. */
  endProfiling(): void;
  release(): Promise<void>;
}
interface Ort {
  Tensor: new (type: 'int64', data: BigInt64Array, dims: number[]) => unknown;
  InferenceSession: {
    create(model: Uint8Array, opts: { executionProviders: string[]; logSeverityLevel?: number; enableProfiling?: boolean; profileFilePrefix?: string }): Promise<OrtSession>;
  };
}

type OrtDType = 'fp32' | 'q8' | 'q4';
const PAIR: Partial<Record<LinearDType, OrtDType>> = { f32: 'fp32', q8: 'q8', w8a8: 'q8', q4: 'q4' };

export interface OrtResult {
  model: string;
  dtype: LinearDType;
  ort_dtype: OrtDType;
  ort_ep: string;
  batch: number;
  seq: number;
  webq_ms: number;
  ort_ms: number;
  webq_sentences_per_s: number;
  ort_sentences_per_s: number;
  /** webq's speed over onnxruntime's (ort_ms / webq_ms). */
  speedup_vs_ort: number;
  /** Dawn's robustness on webq's device ('off' is webq's default in Node). */
  robustness: 'off' | 'on';
  /** Cosine and max |difference| between the two last hidden states. */
  cosine: number;
  max_abs_diff: number;
  /** Each runtime's cosine with onnxruntime's fp32 output (null when f32 was not run). */
  webq_cosine_vs_fp32: number | null;
  ort_cosine_vs_fp32: number | null;
  reps: number;
  adapter: string;
  kernels: 'gpu' | 'cpu';
  /** With --profile (else null): kernel ms of one forward per bucket on both sides. */
  profile: OrtProfile | null;
}

export interface OrtProfile {
  /** One row per bucket, then `total`: webq_ms, ort_ms and ratio = ort_ms / webq_ms. */
  buckets: BucketComparison[];
  webq: BucketProfile;
  ort: BucketProfile;
}

/**
 * ONNX graph of the checkpoint's BertModel, Linear layers as `mode` asks. `nodeBuckets`, if given,
 * receives each node's name and its profile bucket (bench/ort/profile.ts).
 */
export function bertOnnx(cfg: BertConfig, w: Record<string, Float32Array>, mode: OrtDType, nodeBuckets?: Map<string, Bucket>): Uint8Array {
  const g = new GraphBuilder();
  /** Runs `build`, then files the nodes it added under `bucket`. */
  const mark = <T>(bucket: Bucket, build: () => T): T => {
    const from = g.nodes.length;
    const out = build();
    for (let i = from; i < g.nodes.length; i++) nodeBuckets?.set(onnxNodeName(g.nodes[i], i), bucket);
    return out;
  };
  const H = cfg.hiddenSize;
  const D = cfg.headDim;
  const get = (name: string): Float32Array => {
    const t = w[name];
    if (!t) throw new Error(`bench ort: the checkpoint has no ${name}`);
    return t;
  };
  const linear = (x: string, base: string, N: number, K: number): string => {
    const wt = get(`${base}.weight`); // [N, K], the Hugging Face layout
    let y: string;
    if (mode === 'fp32') {
      const t = new Float32Array(K * N); // MatMul wants [K, N]
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = wt[n * K + k];
      y = g.op1('MatMul', [x, g.f32([K, N], t)]);
    } else if (mode === 'q4') {
      const blocks = K / 32;
      const packed = new Uint8Array(N * blocks * 16);
      const scales = new Float32Array(N * blocks);
      for (let n = 0; n < N; n++) {
        for (let b = 0; b < blocks; b++) {
          let amax = 0;
          for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(wt[n * K + 32 * b + i]));
          const s = amax / 7 || 1;
          scales[n * blocks + b] = s;
          for (let i = 0; i < 32; i++) {
            const q = Math.min(7, Math.max(-8, Math.round(wt[n * K + 32 * b + i] / s))) + 8;
            packed[(n * blocks + b) * 16 + (i >> 1)] |= q << (4 * (i & 1)); // even index: low nibble
          }
        }
      }
      y = g.op1('MatMulNBits', [x, g.init(OnnxType.UINT8, [N, blocks, 16], packed), g.f32([N * blocks], scales)], { K, N, bits: 4, block_size: 32 }, 'com.microsoft');
    } else {
      let amax = 0;
      for (const v of wt) amax = Math.max(amax, Math.abs(v));
      const s = amax / 127 || 1;
      const q = new Int8Array(K * N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) q[k * N + n] = Math.round(wt[n * K + k] / s);
      const [xq, xs, xz] = g.op('DynamicQuantizeLinear', [x], undefined, { outputs: 3 });
      const acc = g.op1('MatMulInteger', [xq, g.init(OnnxType.INT8, [K, N], q), xz, g.init(OnnxType.INT8, [], new Int8Array(1))]);
      y = g.op1('Mul', [g.op1('Cast', [acc], { to: OnnxType.FLOAT }), g.op1('Mul', [xs, g.f32([], [s])])]);
    }
    return g.op1('Add', [y, g.f32([N], get(`${base}.bias`))]);
  };
  const norm = (x: string, base: string) =>
    g.op1('LayerNormalization', [x, g.f32([H], get(`${base}.weight`)), g.f32([H], get(`${base}.bias`))], { axis: -1, epsilon: { float: cfg.layerNormEps } });

  let h = '';
  const { maskBias } = mark('other', () => {
    const words = g.op1('Gather', [g.f32([cfg.vocabSize, H], get('embeddings.word_embeddings.weight')), 'input_ids']);
    const seq = g.op1('Squeeze', [g.op1('Shape', ['input_ids'], { start: 1, end: 2 }), g.i64([0])]);
    const scalar = (x: bigint) => g.init(OnnxType.INT64, [], BigInt64Array.of(x), 'c');
    const positions = g.op1('Unsqueeze', [g.op1('Range', [scalar(0n), seq, scalar(1n)]), g.i64([0])]); // [1, T]
    const pos = g.op1('Gather', [g.f32([cfg.maxPositions, H], get('embeddings.position_embeddings.weight')), positions]);
    const types = g.op1('Gather', [g.f32([cfg.typeVocabSize, H], get('embeddings.token_type_embeddings.weight')), 'token_type_ids']);
    h = norm(g.op1('Add', [g.op1('Add', [words, types]), pos]), 'embeddings.LayerNorm');
    // Additive mask [B, 1, 1, T]: 0 for real tokens, the most negative float for padding.
    const m = g.op1('Cast', [g.op1('Unsqueeze', ['attention_mask', g.i64([1, 2])])], { to: OnnxType.FLOAT });
    return { maskBias: g.op1('Mul', [g.op1('Sub', [g.f32([], [1]), m]), g.f32([], [-3.4028234663852886e38])]) };
  });
  const toHeads = g.i64([0, 0, cfg.numHeads, D]);
  const merge = g.i64([0, 0, H]);
  for (let l = 0; l < cfg.numLayers; l++) {
    const b = `encoder.layer.${l}`;
    const heads = (t: string) => g.op1('Transpose', [g.op1('Reshape', [t, toHeads])], { perm: [0, 2, 1, 3] });
    const [ql, kl, vl] = mark('qkv', () => ['query', 'key', 'value'].map((n) => linear(h, `${b}.attention.self.${n}`, H, H)));
    const ctxv = mark('attention', () => {
      const [q, k, v] = [heads(ql), heads(kl), heads(vl)];
      const scores = g.op1('Div', [g.op1('MatMul', [q, g.op1('Transpose', [k], { perm: [0, 1, 3, 2] })]), g.f32([], [Math.sqrt(D)])]);
      const p = g.op1('Softmax', [g.op1('Add', [scores, maskBias])], { axis: -1 });
      return g.op1('Reshape', [g.op1('Transpose', [g.op1('MatMul', [p, v])], { perm: [0, 2, 1, 3] }), merge]);
    });
    const a = mark('attn_out', () => g.op1('Add', [linear(ctxv, `${b}.attention.output.dense`, H, H), h]));
    h = mark('other', () => norm(a, `${b}.attention.output.LayerNorm`));
    const gelu = mark('ffn_up', () => {
      const f = linear(h, `${b}.intermediate.dense`, cfg.intermediateSize, H);
      return g.op1('Mul', [g.op1('Mul', [f, g.op1('Add', [g.op1('Erf', [g.op1('Div', [f, g.f32([], [Math.SQRT2])])]), g.f32([], [1])])]), g.f32([], [0.5])]);
    });
    const o = mark('ffn_down', () => g.op1('Add', [linear(gelu, `${b}.output.dense`, H, cfg.intermediateSize), h]));
    h = mark('other', () => norm(o, `${b}.output.LayerNorm`));
  }
  mark('other', () => g.nodes.push({ op: 'Identity', inputs: [h], outputs: ['last_hidden_state'] }));
  const ids = (name: string) => ({ name, type: OnnxType.INT64, dims: ['batch', 'sequence'] });
  return encodeModel({
    name: `bert-${mode}`,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [ids('input_ids'), ids('attention_mask'), ids('token_type_ids')],
    outputs: [{ name: 'last_hidden_state', type: OnnxType.FLOAT, dims: ['batch', 'sequence', H] }],
  });
}

/**
 * onnxruntime's kernel profile of one graph: a session of its own with `enableProfiling` (the timed
 * one runs without), one warm-up run and `reps` profiled ones, then the profile file it writes,
 * bucketed (bench/ort/profile.ts).
 */
async function profileOrt(ort: Ort, graph: { bytes: Uint8Array; buckets: Map<string, Bucket> }, ep: string, feeds: Record<string, unknown>, reps: number, prefix: string): Promise<BucketProfile> {
  const session = await ort.InferenceSession.create(graph.bytes, { executionProviders: [ep], logSeverityLevel: 3, enableProfiling: true, profileFilePrefix: prefix });
  try {
    for (let i = 0; i < 1 + reps; i++) await session.run(feeds);
    session.endProfiling();
  } finally {
    await session.release();
  }
  let events;
  try {
    events = await readOrtProfile(prefix);
  } catch (e) {
    return summarize([], `none: ${(e as Error).message}`); // the timed results stand without it
  }
  return ortProfile(events, (node) => graph.buckets.get(node), 1);
}

function compare(a: Float32Array, b: Float32Array): { cosine: number; maxAbs: number } {
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
  return { cosine: cosineSimilarity(a, b), maxAbs };
}

export async function run(args: string[], io: BenchIO): Promise<number> {
  const parsed = parseModelArgs('ort', args, USAGE, io, { ep: { type: 'string' }, kernels: { type: 'string' }, profile: { type: 'boolean' }, ab: { type: 'string' } }, (o) => parseKernels(o.kernels));
  if (typeof parsed === 'number') return parsed;
  const { v, B, T, layers, reps } = parsed;
  const dtypes = String(v.dtypes ?? 'f32,q8,q4').split(',') as LinearDType[];
  const unpaired = dtypes.filter((d) => !PAIR[d]);
  if (unpaired.length) {
    io.stderr(`bench ort: no onnxruntime counterpart for ${unpaired.join(', ')} (choose from ${Object.keys(PAIR).join(', ')})\n`);
    return 2;
  }
  let ort: Ort;
  try {
    const mod = (await import('onnxruntime-node')) as Ort & { default?: Ort };
    ort = mod.default ?? mod;
  } catch (e) {
    io.stderr(`bench ort: cannot load onnxruntime-node (${(e as Error).message.split('\n')[0]}).\nIt is not a dependency of webq; install it with:\n  npm i --no-save --ignore-scripts onnxruntime-node@1.30.0\n`);
    return 2;
  }
  const ep = String(v.ep ?? 'webgpu');
  const warmup = 1;
  const dir = await mkdtemp(join(tmpdir(), 'webq-bench-ort-'));
  let ab: 'robustness' | undefined;
  try {
    const a = parseAb(v.ab);
    if (a === 'gemv-multi') throw new Error('--ab gemv-multi is for the kernels suite');
    ab = a;
  } catch (e) {
    io.stderr(`bench ort: ${(e as Error).message}\n`);
    return 2;
  }
  if (ab && v.profile) {
    io.stderr('bench ort: --ab and --profile are separate runs\n');
    return 2;
  }
  const { ctx } = await createBenchContext({ kernels: parseKernels(v.kernels), robustness: false });
  // --ab robustness: a second device with Dawn's bounds clamping on, timed in the same rounds.
  const other = ab ? (await createBenchContext({ kernels: parseKernels(v.kernels), robustness: true })).ctx : null;
  const devices = other ? [{ ctx, robustness: 'off' as const }, { ctx: other, robustness: 'on' as const }] : [{ ctx, robustness: (ctx.caps.robustness ? 'on' : 'off') as 'on' | 'off' }];
  const results: OrtResult[] = [];
  const sessions: { release(): Promise<void> }[] = [];
  const uploads: { dispose(): void }[] = [];
  try {
    const { tiny, cfg, model } = await writeMiniLM(dir, layers);
    io.stderr(`adapter: ${ctx.caps.adapter} (${ctx.caps.kernels} kernels); onnxruntime-node, ${ep} EP; ${model}; batch ${B} x ${T} tokens; wall clock host to host; median of ${reps} rounds after ${warmup} warm-up\n`);
    const ids = randomIds(B * T, cfg.vocabSize);
    const feeds = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, (x) => BigInt(x)), [B, T]),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(B * T).fill(1n), [B, T]),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(B * T), [B, T]),
    };
    const store = await SafetensorsFile.open(join(dir, 'model.safetensors'));
    const refs = resolveBertWeights(store, cfg);
    const ortSessions = new Map<OrtDType, OrtSession>();
    // Each graph with its nodes' profile buckets, kept for the profiled session of --profile.
    const graphs = new Map<OrtDType, { bytes: Uint8Array; buckets: Map<string, Bucket> }>();
    const pairs: {
      dtype: LinearDType; od: OrtDType; w: Awaited<ReturnType<typeof uploadBertWeights>>; ctx: typeof ctx; robustness: 'off' | 'on'; session: OrtSession;
      webq: number[]; ort: number[]; out: { webq: Float32Array<ArrayBufferLike>; ort: Float32Array<ArrayBufferLike> };
    }[] = [];
    for (const dtype of dtypes) {
      const od = PAIR[dtype]!;
      if (!ortSessions.has(od)) {
        const buckets = new Map<string, Bucket>();
        const bytes = bertOnnx(cfg, tiny.weights, od, buckets);
        const session = await ort.InferenceSession.create(bytes, { executionProviders: [ep], logSeverityLevel: 3 });
        sessions.push(session);
        ortSessions.set(od, session);
        if (v.profile) graphs.set(od, { bytes, buckets });
      }
      for (const d of devices) {
        const w = await uploadBertWeights(d.ctx, store, cfg, refs, dtype);
        uploads.push(w);
        pairs.push({ dtype, od, w, ctx: d.ctx, robustness: d.robustness, session: ortSessions.get(od)!, webq: [] as number[], ort: [] as number[], out: { webq: new Float32Array() as Float32Array<ArrayBufferLike>, ort: new Float32Array() as Float32Array<ArrayBufferLike> } });
      }
    }
    await store.close();
    for (let round = 0; round < warmup + reps; round++) {
      // One onnxruntime run per dtype and round; every device's webq run of that dtype follows it,
      // the devices in turn first (the run right after onnxruntime's can pay for its threads).
      const ortRuns = new Map<LinearDType, { o: Record<string, OrtTensor>; ms: number }>();
      const order = dtypes.flatMap((d) => {
        const group = pairs.filter((p) => p.dtype === d);
        return round % 2 ? group.reverse() : group;
      });
      for (const p of order) {
        let run = ortRuns.get(p.dtype);
        if (!run) {
          const t0 = performance.now();
          const o = await p.session.run(feeds);
          run = { o, ms: performance.now() - t0 };
          ortRuns.set(p.dtype, run);
        }
        const { o, ms: tOrt } = run;
        const c = p.ctx;
        const t0 = performance.now();
        const batch = {
          ids: c.write(ids, [B * T], 'u32', 'input_ids'),
          types: c.write(new Uint32Array(B * T), [B * T], 'u32', 'token_type_ids'),
          positions: c.write(new Uint32Array(B * T).map((_, i) => i % T), [B * T], 'u32', 'position_ids'),
          mask: c.write(new Uint32Array(B * T).fill(1), [B * T], 'u32', 'attention_mask'),
          B,
          T,
        };
        const rec = c.record({ label: `bert-${p.dtype}` });
        const h = bertForward(c, rec, p.w, cfg, batch);
        await rec.submit();
        const out = await c.readFloat(h);
        const tWebq = performance.now() - t0;
        h.dispose();
        batch.ids.dispose();
        batch.types.dispose();
        batch.mask.dispose();
        batch.positions.dispose();
        if (round === 0) p.out = { webq: out, ort: o.last_hidden_state.data };
        else {
          p.ort.push(tOrt);
          p.webq.push(tWebq);
        }
      }
    }
    const fp32 = pairs.find((p) => p.od === 'fp32')?.out.ort;
    for (const p of pairs) {
      const wm = median(p.webq);
      const om = median(p.ort);
      const c = compare(p.out.webq, p.out.ort);
      results.push({
        model, dtype: p.dtype, ort_dtype: p.od, ort_ep: ep, batch: B, seq: T, webq_ms: wm, ort_ms: om,
        webq_sentences_per_s: (B * 1000) / wm, ort_sentences_per_s: (B * 1000) / om, speedup_vs_ort: om / wm,
        cosine: c.cosine, max_abs_diff: c.maxAbs,
        webq_cosine_vs_fp32: fp32 ? compare(p.out.webq, fp32).cosine : null, ort_cosine_vs_fp32: fp32 ? compare(p.out.ort, fp32).cosine : null, reps: p.webq.length, adapter: ctx.caps.adapter, kernels: ctx.caps.kernels, robustness: p.robustness, profile: null,
      });
      io.stderr(`${p.dtype} / ort ${p.od}${ab ? ` [robustness ${p.robustness}]` : ''}: webq ${p.webq.map(fmt).join(' ')} ms, onnxruntime ${p.ort.map(fmt).join(' ')} ms\n`);
    }
    let profileText = '';
    if (v.profile) {
      // After the timed rounds, so that neither runtime's timing carries the profilers' cost.
      const ortProfiles = new Map<OrtDType, BucketProfile>();
      const blocks = [];
      for (const [i, p] of pairs.entries()) {
        const batch = {
          ids: ctx.write(ids, [B * T], 'u32', 'input_ids'),
          types: ctx.write(new Uint32Array(B * T), [B * T], 'u32', 'token_type_ids'),
          positions: ctx.write(new Uint32Array(B * T).map((_, i) => i % T), [B * T], 'u32', 'position_ids'),
          mask: ctx.write(new Uint32Array(B * T).fill(1), [B * T], 'u32', 'attention_mask'),
          B,
          T,
        };
        let webqProfile: BucketProfile;
        try {
          webqProfile = await profileWebq(ctx, (rec, tap) => {
            const h = bertForward(ctx, rec, p.w, cfg, batch, tap);
            return () => h.dispose();
          }, reps);
        } finally {
          batch.ids.dispose();
          batch.types.dispose();
          batch.mask.dispose();
          batch.positions.dispose();
        }
        let ortProf = ortProfiles.get(p.od);
        if (!ortProf) {
          ortProf = await profileOrt(ort, graphs.get(p.od)!, ep, feeds, reps, join(dir, `ort-profile-${p.od}`));
          ortProfiles.set(p.od, ortProf);
        }
        const profile: OrtProfile = { buckets: compareBuckets(webqProfile, ortProf), webq: webqProfile, ort: ortProf };
        results[i].profile = profile;
        const name = `${p.dtype} / ${p.od}`;
        blocks.push({ name, rows: profile.buckets, webq: webqProfile, ort: ortProf, wall: { webq_ms: results[i].webq_ms, ort_ms: results[i].ort_ms } });
        io.stderr(`${name}: webq kernels (${webqProfile.source}; ${webqProfile.kernels} per forward, median of ${webqProfile.runs}):\n${detailLines(webqProfile)}`);
        io.stderr(`${name}: onnxruntime kernels (${ortProf.source}; ${ortProf.kernels} per forward, median of ${ortProf.runs}${ortProf.host_ms ? `; ${fmt(ortProf.host_ms)} ms on the host CPU` : ''}):\n${detailLines(ortProf)}`);
        if (ortProf.unmapped.length) io.stderr(`  onnxruntime nodes filed under other by guess: ${ortProf.unmapped.join(', ')}\n`);
      }
      profileText = `\nkernel ms per forward by bucket (webq: GPU timestamps; onnxruntime: its profiler; ort/webq > 1: webq faster)\n${bucketTable(blocks)}`;
    }
    const rows = results.map((r) => [r.dtype, r.ort_dtype, r.robustness, fmt(r.webq_ms), fmt(r.ort_ms), fmt(r.webq_sentences_per_s), fmt(r.ort_sentences_per_s), fmt(r.speedup_vs_ort), r.cosine.toFixed(5), fmt(r.max_abs_diff), r.webq_cosine_vs_fp32?.toFixed(5) ?? '-', r.ort_cosine_vs_fp32?.toFixed(5) ?? '-']);
    const text = table(['webq', 'ort', 'robustness', 'webq ms', 'ort ms', 'webq sent/s', 'ort sent/s', 'speedup_vs_ort', 'cosine', 'max|diff|', 'webq cos fp32', 'ort cos fp32'], rows, 3);
    report(io, !!v.json, text + profileText, results);
    return 0;
  } finally {
    for (const w of uploads) w.dispose();
    for (const session of sessions) await session.release();
    ctx.dispose();
    other?.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}
