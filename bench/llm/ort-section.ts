/**
 * `bench llm --ort`: onnxruntime-node on the same random weights, the same adapter and the same
 * process as webq, graph from onnx.ts, run as ort.ts describes. Pairs:
 *   webq f32 <-> onnxruntime fp32 (MatMul),   webq q4 <-> onnxruntime q4 (MatMulNBits)
 * each measured in alternation with webq's paired row (same prompt, same number of decode steps,
 * webq's KV cache in the first --kv type), so the ratios come from neighbouring measurements.
 *
 * The correctness check runs onnxruntime's fp32 graph and webq's f32 weights with an f32 KV cache
 * on the same prompt: last-position logits and the first greedy tokens. onnxruntime 1.30's WebGPU
 * FlashAttention prefill program (used for runs of 32 tokens or more) returns wrong attention
 * outputs on lavapipe (rows from the 9th on; its subgroups have 8 lanes), so the check prefills
 * onnxruntime in chunks of --ort-chunk tokens, which take its correct decode-attention programs, and
 * reports how far the one-run prefill is from it. The timed prefill is the one run, as
 * transformers.js does it.
 */
import type { Decoder } from '../../src/generate/decoder.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import type { LlamaGpuWeights } from '../../src/models/llama/llama.ts';
import type { LlamaConfig } from '../../src/models/llama/llama-config.ts';
import type { KvDType } from '../../src/ops/kv-cache.ts';
import type { LinearDType } from '../../src/ops/linear.ts';
import { llmOnnx, type OrtLlmDType } from './onnx.ts';
import { argmax, createLlmSession, OrtSequence, type Ort } from './ort.ts';
import type { SyntheticLlamaStore } from '../../fixtures/index.ts';
import { timeDecode, timePrefill, warmUp } from './webq.ts';
import { fmt, median, type BenchIO } from '../lib/measure.ts';

export interface OrtPairRow {
  dtype: LinearDType;
  ort_dtype: OrtLlmDType;
  ort_ep: string;
  /** webq's KV cache type in this pair (onnxruntime's is fp32). */
  kv: KvDType;
  prompt: number;
  tokens: number;
  webq_prefill_tokens_per_s: number;
  ort_prefill_tokens_per_s: number;
  /** webq tokens/s over onnxruntime's. */
  prefill_ratio: number;
  webq_decode_tokens_per_s: number;
  ort_decode_tokens_per_s: number;
  decode_ratio: number;
  ort_model_bytes: number;
  reps: number;
}

export interface OrtCheck {
  /** Greedy tokens compared (the prefill's included). */
  tokens: number;
  ort_chunk: number;
  /** max |webq - ort| over the last position's logits, and that over max |ort logit|. */
  max_abs_diff: number;
  rel_diff: number;
  /** Leading greedy tokens on which the two runtimes agree. */
  tokens_agree: number;
  webq_ids: number[];
  ort_ids: number[];
  /** max |one-run prefill - chunked prefill| of onnxruntime's own last logits, over max |logit|. */
  ort_one_run_rel_diff: number;
  pass: boolean;
}

export interface OrtSection {
  ep: string;
  pairs: OrtPairRow[];
  check: OrtCheck | null;
}

export interface OrtSectionInput {
  ort: Ort;
  ctx: GpuContext;
  cfg: LlamaConfig;
  store: SyntheticLlamaStore;
  io: BenchIO;
  prompt: number[];
  tokens: number;
  batch: number;
  reps: number;
  ep: string;
  chunk: number;
  /** MatMulNBits accuracy_level of the q4 graph (0: unset). */
  accuracyLevel: number;
  /** onnxruntime's logSeverityLevel (0 verbose: node placements, programs run; 3 errors). */
  logLevel: number;
  kv: KvDType;
  weightsFor(dtype: LinearDType): Promise<LlamaGpuWeights>;
  decoder(w: LlamaGpuWeights, kv: KvDType, cap: number): Decoder;
}

const PAIRS: [LinearDType, OrtLlmDType][] = [
  ['f32', 'fp32'],
  ['q4', 'q4'],
];
const CHECK_TOKENS = 8;

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export async function runOrtSection(s: OrtSectionInput): Promise<OrtSection> {
  const { ort, cfg, io, prompt, tokens } = s;
  const P = prompt.length;
  const pairs: OrtPairRow[] = [];
  let check: OrtCheck | null = null;
  for (const [dtype, od] of PAIRS) {
    const t0 = performance.now();
    const model = llmOnnx(cfg, (name) => s.store.values(name), od, { maxPositions: P + Math.max(tokens, CHECK_TOKENS) + 1, accuracyLevel: s.accuracyLevel });
    const session = await createLlmSession(ort, model, cfg, s.ep, s.logLevel);
    io.stderr(`  onnxruntime ${od}: ${fmt(model.byteLength / 2 ** 20)} MiB graph, session ready in ${fmt((performance.now() - t0) / 1000)} s (${s.ep} EP)\n`);
    const seq = new OrtSequence(ort, session, cfg);
    try {
      const dec = s.decoder(await s.weightsFor(dtype), s.kv, P + tokens);
      await warmUp(dec, prompt);
      await seq.time(prompt, 2); // compiles onnxruntime's programs for this graph
      const t = { webqPrefill: [] as number[], webqDecode: [] as number[], ortPrefill: [] as number[], ortDecode: [] as number[] };
      let oneRun: Float32Array = new Float32Array();
      for (let r = 0; r < s.reps; r++) {
        const o = await seq.time(prompt, tokens);
        oneRun = o.logits;
        t.ortPrefill.push(o.prefillMs);
        t.ortDecode.push(o.decodeMs);
        t.webqPrefill.push((await timePrefill(dec, prompt)).ms);
        t.webqDecode.push((await timeDecode(dec, prompt, tokens, s.batch)).msPerToken);
        io.stderr(`  ${dtype} / ort ${od}: prefill webq ${fmt(t.webqPrefill.at(-1)!)} ms, ort ${fmt(o.prefillMs)} ms; decode webq ${fmt(t.webqDecode.at(-1)!)} ms/token, ort ${fmt(o.decodeMs)} ms/token\n`);
      }
      dec.cache.truncate(0);
      const tps = (n: number, ms: number[]) => (1000 * n) / median(ms);
      const row: OrtPairRow = {
        dtype, ort_dtype: od, ort_ep: s.ep, kv: s.kv, prompt: P, tokens,
        webq_prefill_tokens_per_s: tps(P, t.webqPrefill), ort_prefill_tokens_per_s: tps(P, t.ortPrefill), prefill_ratio: median(t.ortPrefill) / median(t.webqPrefill),
        webq_decode_tokens_per_s: tps(1, t.webqDecode), ort_decode_tokens_per_s: tps(1, t.ortDecode), decode_ratio: median(t.ortDecode) / median(t.webqDecode),
        ort_model_bytes: model.byteLength, reps: s.reps,
      };
      pairs.push(row);
      if (od === 'fp32') check = await checkFp32(s, seq, oneRun);
    } finally {
      seq.dispose();
      await session.release();
    }
  }
  return { ep: s.ep, pairs, check };
}

/** onnxruntime fp32 (prefill in chunks) against webq f32 weights with an f32 KV cache. */
async function checkFp32(s: OrtSectionInput, seq: OrtSequence, oneRun: Float32Array): Promise<OrtCheck> {
  const n = Math.min(CHECK_TOKENS, s.tokens + 1);
  const chunk = Math.min(s.chunk, 31);
  const o = await seq.greedy(s.prompt, n, chunk);
  const dec = s.decoder(await s.weightsFor('f32'), 'f32', s.prompt.length + n);
  const { logits } = await timePrefill(dec, s.prompt);
  const webqIds = n > 1 ? (await timeDecode(dec, s.prompt, n - 1, s.batch)).ids : [argmax(logits)];
  dec.cache.truncate(0);
  const ref = maxAbs(o.first);
  const diff = maxAbsDiff(logits, o.first);
  let agree = 0;
  while (agree < n && webqIds[agree] === o.ids[agree]) agree++;
  const c: OrtCheck = {
    tokens: n, ort_chunk: chunk, max_abs_diff: diff, rel_diff: diff / ref, tokens_agree: agree, webq_ids: webqIds, ort_ids: o.ids,
    ort_one_run_rel_diff: maxAbsDiff(oneRun, o.first) / ref, pass: diff / ref <= 1e-3 && agree === n,
  };
  s.io.stderr(`  check: webq f32 vs onnxruntime fp32 logits max|diff| ${fmt(diff)} (${fmt(c.rel_diff)} of max |logit| ${fmt(ref)}), greedy tokens agree ${agree}/${n}\n`);
  return c;
}
