/**
 * `npm run bench -- llm`: text generation with a LLaMA-family decoder (random weights generated on
 * read, fixtures/llm-synthetic.ts), wall clock host to host, as a caller of Decoder sees it:
 *   1. per weight dtype and KV type: prefill tokens/s over a prompt, greedy decode tokens/s;
 *   2. decode ms/token with the cache filled to each of several contexts (one dtype);
 *   3. run-ahead decoding (a read-back every `--batch` tokens) against one read-back per token;
 *   (a `gptq-q4` row runs the same model stored as a GPTQ int4 checkpoint, bench/llm/gptq.ts,
 *   loaded through webq's GPTQ importer with the q4 kernels, beside webq's own q4)
 *   4. with --ort, onnxruntime-node's WebGPU EP on the same weights, adapter and process
 *      (bench/llm/onnx.ts builds its graph), with a correctness check of its fp32 graph
 *      against webq's f32 forward.
 * Then the targets, each beside its measured value. Options and columns: bench/README.md, "llm".
 */
import type { Decoder } from '../src/generate/decoder.ts';
import type { GpuContext } from '../src/gpu/context.ts';
import { uploadLlamaWeights, type LlamaGpuWeights } from '../src/models/llama/llama.ts';
import type { LlamaConfig } from '../src/models/llama/llama-config.ts';
import { resolveLlamaWeights, type LlamaWeights } from '../src/models/llama/llama-weights.ts';
import type { KvDType } from '../src/ops/kv-cache.ts';
import { contiguousGroups } from '../src/quant/imports/common.ts';
import { parseQuantizationConfig, planLayout, specText } from '../src/quant/imports/index.ts';
import { createBenchContext } from './lib/device.ts';
import { gptqGroupFor, gptqLlm, layerLinears, type GptqLlm } from './llm/gptq.ts';
import { LLM_USAGE, parseLlmOptions, splitLlmDType, type LlmDType, type LlmOptions } from './llm/options.ts';
import { loadOrt, ORT_INSTALL } from './llm/ort.ts';
import { runOrtSection } from './llm/ort-section.ts';
import { formatReport, targetsOf, type ContextRow, type GptqInfo, type LlmReport, type LlmRow, type RunAheadRow } from './llm/report.ts';
import { syntheticLlm, type SyntheticLlm } from '../fixtures/index.ts';
import { fillRandom, makeDecoder, promptIds, timeDecode, timePrefill, warmUp } from './llm/webq.ts';
import { fmt, median, type BenchIO } from './lib/measure.ts';

/** What every section shares: the device, the model, weights uploaded on first use, and decoders. */
interface Bench {
  o: LlmOptions;
  io: BenchIO;
  ctx: GpuContext;
  cfg: LlamaConfig;
  /** The rows' dtypes and KV types that this device runs. */
  dtypes: LlmDType[];
  kvs: KvDType[];
  prompt: number[];
  /** gptq-q4's weights: the model as a GPTQ checkpoint, q4 kernels (bench/llm/gptq.ts). */
  weightsFor(dtype: LlmDType): Promise<LlamaGpuWeights>;
  /** A decoder with its own cache of `cap` positions (freed at the end of the run). */
  decoder(w: LlamaGpuWeights, kv: KvDType, cap: number): Decoder;
}

export async function run(args: string[], io: BenchIO): Promise<number> {
  let o: LlmOptions | 'help';
  try {
    o = parseLlmOptions(args);
  } catch (e) {
    io.stderr(`bench llm: ${(e as Error).message}\n${LLM_USAGE}`);
    return 2;
  }
  if (o === 'help') {
    io.stdout(LLM_USAGE);
    return 0;
  }
  const ort = o.ort ? await loadOrt() : null;
  if (typeof ort === 'string') {
    io.stderr(`bench llm: --ort needs onnxruntime-node, which cannot be loaded (${ort}).\nIt is not a dependency of webq; install it with:\n  ${ORT_INSTALL}\n`);
    return 2;
  }
  const m: SyntheticLlm = syntheticLlm(o.model, { layers: o.layers, seed: o.seed });
  const { cfg, store } = m;
  // gptq-q4: the same model as a GPTQ checkpoint, its tensors resolved by webq's importer up front
  // (a group_size that does not divide a Linear's inputs is refused there, as for a real file).
  const usesGptq = [...o.dtypes, o.decodeDtype].some((d) => splitLlmDType(d).dtype === 'gptq-q4');
  let gptq: { m: GptqLlm; refs: LlamaWeights } | null = null;
  if (usesGptq) {
    const g = gptqLlm(m, gptqGroupFor(cfg, o.gptqGroup));
    try {
      gptq = { m: g, refs: resolveLlamaWeights(g.store, g.cfg) };
    } catch (e) {
      io.stderr(`bench llm: gptq-q4 (${JSON.stringify(g.quantizationConfig)}): webq cannot load it: ${(e as Error).message}\n`);
      return 2;
    }
  }
  const need = Math.max(o.prompt + o.tokens, ...o.contexts.map((c) => c + o.steps));
  if (need > cfg.maxPositions) {
    io.stderr(`bench llm: prompt + tokens and contexts + steps must fit max_position_embeddings (${cfg.maxPositions}) of ${o.model}; asked for ${need}\n`);
    return 2;
  }

  const { ctx } = await createBenchContext({ kernels: o.kernels });
  const weights = new Map<LlmDType, LlamaGpuWeights>();
  let gptqLoadS = 0;
  const decoders: Decoder[] = [];
  const refs = resolveLlamaWeights(store, cfg);
  try {
    const f16 = ctx.caps.f16;
    const dtypes = o.dtypes.filter((d) => f16 || d !== 'f16');
    const kvs = o.kv.filter((k) => f16 || k !== 'f16');
    if (dtypes.length < o.dtypes.length || kvs.length < o.kv.length) io.stderr(`skip f16 weights and f16 KV: no shader-f16 on this device\n`);
    if (!dtypes.length || !kvs.length) throw new Error('no dtype or no KV type left to run on this device');
    const b: Bench = {
      o, io, ctx, cfg, dtypes, kvs, prompt: promptIds(o.prompt, cfg.vocabSize, o.seed),
      async weightsFor(dtype) {
        let w = weights.get(dtype);
        if (!w) {
          const t0 = performance.now();
          const { dtype: base, activations } = splitLlmDType(dtype);
          w = base === 'gptq-q4' ? await uploadLlamaWeights(ctx, gptq!.m.store, gptq!.m.cfg, gptq!.refs, 'q4', { activations }) : await uploadLlamaWeights(ctx, store, cfg, refs, base, { activations });
          weights.set(dtype, w);
          const s = (performance.now() - t0) / 1000;
          if (base === 'gptq-q4') gptqLoadS = s;
          io.stderr(`  ${dtype}: ${fmt(w.bytes / 2 ** 20)} MiB uploaded in ${fmt(s)} s, ${w.activations} activations${base === 'gptq-q4' ? ' (GPTQ tensors generated, quantized and packed, then imported)' : ''}\n`);
        }
        return w;
      },
      decoder(w, kv, cap) {
        const d = makeDecoder(ctx, cfg, w, kv, cap);
        decoders.push(d);
        return d;
      },
    };
    io.stderr(`adapter: ${ctx.caps.adapter} (${ctx.caps.kernels} kernels); ${m.name}, ${fmt(m.params / 1e6)}M params; prompt ${o.prompt}, ${o.tokens} greedy tokens; wall clock host to host\n`);
    const rows = await measureRows(b);
    const contexts = await measureContexts(b);
    const runAhead = await measureRunAhead(b);
    const ortSection = ort
      ? await runOrtSection({ ort, ctx, cfg, store, io, prompt: b.prompt, tokens: o.tokens, batch: o.batch, reps: o.reps, ep: o.ortEp, chunk: o.ortChunk, accuracyLevel: o.ortAccuracyLevel, logLevel: o.ortLog, kv: kvs[0], weightsFor: b.weightsFor, decoder: b.decoder })
      : null;
    const report: LlmReport = {
      model: m.name, shape: o.model, layers: cfg.numLayers, params: m.params, adapter: ctx.caps.adapter, kernels: ctx.caps.kernels,
      rows, contexts, run_ahead: runAhead, ort: ortSection, gptq: gptq && [...weights.keys()].some((d) => splitLlmDType(d).dtype === 'gptq-q4') ? gptqInfo(gptq.m, gptqLoadS) : null, targets: [],
    };
    report.targets = targetsOf(report);
    const text = formatReport(report);
    if (o.json) {
      io.stderr(text);
      io.stdout(`${JSON.stringify(report)}\n`);
    } else io.stdout(text);
    return 0;
  } finally {
    for (const d of decoders) d.dispose();
    for (const w of weights.values()) w.dispose();
    ctx.dispose();
  }
}

/**
 * 1. Every (dtype, kv) row, each with its own cache of prompt + tokens positions: a prefill, then
 * greedy decoding. Rounds interleave the rows, so a slow stretch of the machine falls on all of them.
 */
async function measureRows(b: Bench): Promise<LlmRow[]> {
  const { o, io, prompt } = b;
  const rows: { dtype: LlmDType; kv: KvDType; dec: Decoder; prefill: number[]; decode: number[] }[] = [];
  for (const dtype of b.dtypes) {
    const w = await b.weightsFor(dtype);
    for (const kv of b.kvs) rows.push({ dtype, kv, dec: b.decoder(w, kv, o.prompt + o.tokens), prefill: [], decode: [] });
  }
  for (let round = 0; round < o.reps; round++) {
    for (const r of rows) {
      if (round === 0) await warmUp(r.dec, prompt);
      r.prefill.push((await timePrefill(r.dec, prompt)).ms);
      r.decode.push((await timeDecode(r.dec, prompt, o.tokens, o.batch)).msPerToken);
      io.stderr(`  ${r.dtype} kv ${r.kv}: prefill ${fmt(r.prefill.at(-1)!)} ms, decode ${fmt(r.decode.at(-1)!)} ms/token\n`);
    }
  }
  const out = rows.map((r): LlmRow => {
    const prefillMs = median(r.prefill);
    const decodeMs = median(r.decode);
    const cache = r.dec.cache;
    r.dec.cache.truncate(0);
    return {
      dtype: r.dtype, kv: r.kv, act: r.dec.weights.precision, activations: r.dec.weights.activations, prompt: o.prompt, tokens: o.tokens,
      prefill_ms: prefillMs, prefill_tokens_per_s: (1000 * o.prompt) / prefillMs, decode_ms_per_token: decodeMs, decode_tokens_per_s: 1000 / decodeMs, decode_speedup_vs_f32: null,
      weight_bytes: r.dec.weights.bytes, kv_bytes: cache.bytes, kv_bytes_per_token: cache.bytes / cache.shape.cap, reps: r.prefill.length,
    };
  });
  for (const r of out) {
    const f32 = out.find((x) => x.dtype === 'f32' && x.kv === r.kv);
    r.decode_speedup_vs_f32 = f32 ? f32.decode_ms_per_token / r.decode_ms_per_token : null;
  }
  return out;
}

/**
 * 2. Decode at growing contexts, one cache per KV type, --decode-dtype weights. The cache reaches
 * each context by prefills that extend it (--fill prefill) or is written with random keys and
 * values and told it holds the context's tokens (--fill random; see fillRandom).
 */
async function measureContexts(b: Bench): Promise<ContextRow[]> {
  const { o, io } = b;
  const out: ContextRow[] = [];
  if (!o.contexts.length) return out;
  const w = await b.weightsFor(o.decodeDtype);
  const long = promptIds(o.contexts.at(-1)!, b.cfg.vocabSize, o.seed + 1);
  for (const kv of b.kvs) {
    const dec = b.decoder(w, kv, o.contexts.at(-1)! + o.steps);
    await warmUp(dec, long);
    if (o.fill === 'random') fillRandom(b.ctx, dec.cache, o.seed);
    for (const c of o.contexts) {
      const t0 = performance.now();
      const ids = long.slice(0, c);
      if (o.fill === 'random') {
        dec.cache.truncate(0);
        dec.cache.ids.push(...ids);
      } else {
        for (let n = dec.cachedPrefix(ids); n < c; ) {
          n = Math.min(c, n + o.fillChunk);
          await dec.logits(long.slice(0, n)); // runs only what the cache lacks
        }
      }
      const fillS = (performance.now() - t0) / 1000;
      const t = await timeDecode(dec, ids, o.steps, o.batch);
      const first = out.find((x) => x.kv === kv);
      out.push({
        dtype: o.decodeDtype, kv, context: c, fill: o.fill, steps: o.steps, ms_per_token: t.msPerToken, tokens_per_s: 1000 / t.msPerToken,
        growth: first ? t.msPerToken / first.ms_per_token : 1, linear_growth: c / (first?.context ?? c),
      });
      io.stderr(`  ${o.decodeDtype} kv ${kv} context ${c}: ${fmt(t.msPerToken)} ms/token (fill ${fmt(fillS)} s)\n`);
    }
    dec.cache.truncate(0);
  }
  return out;
}

/** 3. The same decode (--decode-dtype, first KV type) with a read-back every --batch tokens and every token. */
async function measureRunAhead(b: Bench): Promise<RunAheadRow[]> {
  const { o, prompt } = b;
  const kv = b.kvs[0];
  const dec = b.decoder(await b.weightsFor(o.decodeDtype), kv, o.prompt + o.tokens);
  await warmUp(dec, prompt);
  await timePrefill(dec, prompt);
  const samples = new Map<number, number[]>([[o.batch, []], [1, []]]);
  for (let round = 0; round < o.reps; round++) {
    for (const [batch, ms] of samples) ms.push((await timeDecode(dec, prompt, o.tokens, batch)).msPerToken);
  }
  dec.cache.truncate(0);
  const out = [...samples].map(([batch, ms]): RunAheadRow => ({ dtype: o.decodeDtype, kv, batch, tokens: o.tokens, ms_per_token: median(ms), tokens_per_s: 1000 / median(ms) }));
  b.io.stderr(`  read-back ${o.decodeDtype} kv ${kv}: ${out.map((r) => `batch ${r.batch} ${fmt(r.ms_per_token)} ms/token`).join(', ')}\n`);
  return out;
}

/** What the gptq-q4 rows ran: the config, the importer's description, where the Linears landed in webq's layout. */
function gptqInfo(g: GptqLlm, loadS: number): GptqInfo {
  const layouts = new Set(
    layerLinears(g.cfg).map(([, , K]) => {
      const plan = planLayout(K, 4, { gIdx: contiguousGroups(K, g.store.group) }, false);
      return `${specText(plan.spec)}${plan.exact ? ' (exact)' : ' (re-quantized)'}`;
    }),
  );
  const format = parseQuantizationConfig(g.quantizationConfig)!.description;
  return { quantization_config: g.quantizationConfig, format, webq_layout: [...layouts].join('; '), load_s: loadS };
}
