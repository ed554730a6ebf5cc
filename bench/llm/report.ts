/**
 * What `npm run bench -- llm` reports: the JSON object (--json) and its text tables, with the
 * targets the numbers are held against. Nothing here measures; see bench/README.md, "llm", for
 * what each field means.
 */
import type { KvDType } from '../../src/ops/kv-cache.ts';
import type { JsonObject } from '../../src/io/json.ts';
import type { LlmDType } from './options.ts';
import type { OrtSection } from './ort-section.ts';
import { fmt, table } from '../lib/measure.ts';

export interface LlmRow {
  dtype: LlmDType;
  kv: KvDType;
  act: 'f32' | 'f16';
  /** What the quantized Linears do with their input (LlmLoadOptions.activations as the load resolved it). */
  activations: 'float' | 'int8';
  prompt: number;
  tokens: number;
  prefill_ms: number;
  prefill_tokens_per_s: number;
  decode_ms_per_token: number;
  decode_tokens_per_s: number;
  /** f32's decode ms/token (same KV type) over this row's; null without an f32 row. */
  decode_speedup_vs_f32: number | null;
  weight_bytes: number;
  /** The row's KV cache (prompt + tokens positions), scales included. */
  kv_bytes: number;
  kv_bytes_per_token: number;
  reps: number;
}

export interface ContextRow {
  dtype: LlmDType;
  kv: KvDType;
  context: number;
  /** How the cache was filled to `context`: 'prefill' (forward passes) or 'random' (written). */
  fill: 'prefill' | 'random';
  steps: number;
  ms_per_token: number;
  tokens_per_s: number;
  /** ms_per_token over that of the smallest context (same KV type). */
  growth: number;
  /** context over the smallest context: the growth of a cost linear in the context. */
  linear_growth: number;
}

export interface RunAheadRow {
  dtype: LlmDType;
  kv: KvDType;
  /** Tokens per read-back. */
  batch: number;
  tokens: number;
  ms_per_token: number;
  tokens_per_s: number;
}

export interface Target {
  target: string;
  /** The measured ratio, or null when its inputs were not run. */
  value: number | null;
  goal: number;
  met: boolean | null;
}

/** The gptq-q4 rows' checkpoint (gptq.ts), as webq's importer read it. */
export interface GptqInfo {
  /** config.json's quantization_config. */
  quantization_config: JsonObject;
  /** The importer's one-line description of the format. */
  format: string;
  /** How its Linears landed in webq's layout, e.g. "int4 asymmetric, group 128 (exact)". */
  webq_layout: string;
  /** Seconds to generate, quantize and pack the checkpoint's Linears and upload the model. */
  load_s: number;
}

export interface LlmReport {
  model: string;
  shape: string;
  layers: number;
  params: number;
  adapter: string;
  kernels: 'gpu' | 'cpu';
  rows: LlmRow[];
  contexts: ContextRow[];
  run_ahead: RunAheadRow[];
  ort: OrtSection | null;
  /** null unless a gptq-q4 row ran. */
  gptq: GptqInfo | null;
  targets: Target[];
}

/** The targets, each as a ratio that must reach `goal` (>= goal is met). */
export function targetsOf(r: LlmReport): Target[] {
  const t = (target: string, value: number | null | undefined, goal: number): Target => ({ target, value: value ?? null, goal, met: value == null ? null : value >= goal });
  const kv0 = r.rows[0]?.kv;
  const row = (dtype: LlmDType) => r.rows.find((x) => x.dtype === dtype && x.kv === kv0);
  const f32 = row('f32');
  const q4 = row('q4');
  const maxCtx = Math.max(0, ...r.contexts.map((c) => c.context));
  const at = (kv: KvDType) => r.contexts.find((c) => c.kv === kv && c.context === maxCtx);
  const f16Kv = at('f16');
  const int8Kv = at('int8');
  const ortQ4 = r.ort?.pairs.find((p) => p.ort_dtype === 'q4');
  const out = [
    t(`q4 decode tokens/s >= 2.5x f32 (kv ${kv0})`, f32 && q4 ? f32.decode_ms_per_token / q4.decode_ms_per_token : null, 2.5),
    t(`int8 KV decode no slower than f16 KV at context ${maxCtx || '-'} (f16 ms / int8 ms)`, f16Kv && int8Kv ? f16Kv.ms_per_token / int8Kv.ms_per_token : null, 1),
  ];
  // Decode cost no worse than linear in the context: linear growth over measured growth >= 1.
  for (const kv of new Set(r.contexts.map((c) => c.kv))) {
    const last = r.contexts.filter((c) => c.kv === kv).at(-1)!;
    if (last.linear_growth > 1) out.push(t(`decode growth ${r.contexts[0].context} -> ${last.context} no worse than linear (kv ${kv}; linear / measured)`, last.linear_growth / last.growth, 1));
  }
  out.push(
    t('webq q4 prefill tokens/s >= 2x onnxruntime q4', ortQ4?.prefill_ratio, 2),
    t('webq q4 decode tokens/s >= 2x onnxruntime q4', ortQ4?.decode_ratio, 2),
  );
  return out;
}

const mib = (b: number) => fmt(b / 2 ** 20);
const x = (v: number | null) => (v === null ? '-' : `${fmt(v)}x`);

export function formatReport(r: LlmReport): string {
  const parts: string[] = [];
  const first = r.rows[0];
  parts.push(`llm: ${r.model}, ${fmt(r.params / 1e6)}M params; ${r.adapter} (${r.kernels} kernels); wall clock host to host\n`);
  parts.push(`\nprefill of ${first.prompt} tokens, then ${first.tokens} greedy tokens (read-back every ${r.run_ahead[0]?.batch ?? 8}); median of ${first.reps}\n`);
  parts.push(
    table(
      ['dtype', 'kv', 'act', 'activations', 'prefill tok/s', 'decode tok/s', 'decode ms/tok', 'decode vs f32', 'weights MiB', 'KV MiB', 'KV KiB/tok'],
      r.rows.map((w) => [w.dtype, w.kv, w.act, w.activations, fmt(w.prefill_tokens_per_s), fmt(w.decode_tokens_per_s), fmt(w.decode_ms_per_token), x(w.decode_speedup_vs_f32), mib(w.weight_bytes), mib(w.kv_bytes), fmt(w.kv_bytes_per_token / 1024)]),
      3,
    ),
  );
  if (r.gptq) parts.push(`gptq-q4: ${r.gptq.format}, AutoGPTQ packing, read by webq's GPTQ importer into ${r.gptq.webq_layout}; q4 kernels\n`);
  if (r.contexts.length) {
    parts.push(`\ndecode at context (${r.contexts[0].dtype} weights; cache filled ${r.contexts[0].fill === 'random' ? 'with random keys and values (--fill random)' : 'by prefills (--fill prefill)'}, ${r.contexts[0].steps} steps timed)\n`);
    parts.push(table(['kv', 'context', 'ms/tok', 'tok/s', 'growth', 'linear'], r.contexts.map((c) => [c.kv, String(c.context), fmt(c.ms_per_token), fmt(c.tokens_per_s), x(c.growth), x(c.linear_growth)])));
  }
  if (r.run_ahead.length) {
    const ra = r.run_ahead;
    const base = ra.find((a) => a.batch === 1);
    parts.push(`\nread-back batch (${ra[0].dtype} weights, kv ${ra[0].kv}, ${ra[0].tokens} tokens)\n`);
    parts.push(table(['batch', 'ms/tok', 'tok/s', 'vs batch 1'], ra.map((a) => [String(a.batch), fmt(a.ms_per_token), fmt(a.tokens_per_s), base ? x(base.ms_per_token / a.ms_per_token) : '-'])));
  }
  if (r.ort) {
    parts.push(`\nonnxruntime-node (${r.ort.ep} EP), same weights, adapter and process; webq/ort = ratio of tokens/s\n`);
    parts.push(
      table(
        ['webq', 'ort', 'kv', 'webq prefill tok/s', 'ort prefill tok/s', 'prefill webq/ort', 'webq decode tok/s', 'ort decode tok/s', 'decode webq/ort', 'ort graph MiB'],
        r.ort.pairs.map((p) => [p.dtype, p.ort_dtype, p.kv, fmt(p.webq_prefill_tokens_per_s), fmt(p.ort_prefill_tokens_per_s), x(p.prefill_ratio), fmt(p.webq_decode_tokens_per_s), fmt(p.ort_decode_tokens_per_s), x(p.decode_ratio), mib(p.ort_model_bytes)]),
        3,
      ),
    );
    const c = r.ort.check;
    if (c) {
      parts.push(
        `check (webq f32 + f32 KV vs onnxruntime fp32, its prefill in chunks of ${c.ort_chunk}): ${c.pass ? 'PASS' : 'FAIL'}: last logits max|diff| ${fmt(c.max_abs_diff)} (${fmt(c.rel_diff)} of max|logit|), ` +
          `greedy tokens agree ${c.tokens_agree}/${c.tokens} (webq ${c.webq_ids.join(' ')}; ort ${c.ort_ids.join(' ')})\n` +
          `  onnxruntime's one-run prefill (timed above) vs its chunked prefill: ${fmt(c.ort_one_run_rel_diff)} of max|logit|${c.ort_one_run_rel_diff > 1e-3 ? ' (its FlashAttention prefill is wrong on this adapter)' : ''}\n`,
      );
    }
  }
  parts.push('\ntargets\n');
  parts.push(table(['target', 'value', 'goal', 'met'], r.targets.map((t) => [t.target, x(t.value), `${t.goal}x`, t.met === null ? 'not run' : t.met ? 'yes' : 'no'])));
  return parts.join('');
}
