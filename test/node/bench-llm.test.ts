// `npm run bench -- llm` at test size: the suite's run() in this process on the tiny shape
// (2 layers, a few tokens), checking its --json contract: stdout is exactly one JSON object with a
// row per requested (dtype, kv), context rows per KV type, both read-back batches and the targets,
// every number finite and positive; and the gptq-q4 row's checkpoint, packed as AutoGPTQ packs it
// (checked against test/helpers/quant-formats.ts) and loaded through webq's GPTQ importer. The --ort path runs only where onnxruntime-node is installed
// (it is not a webq dependency, and CI does not have it).
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../bench/llm.ts';
import { gptqGroupFor, gptqLlm, layerLinears } from '../../bench/llm/gptq.ts';
import { syntheticLlm } from '../../fixtures/llm-synthetic.ts';
import { f16ArrayToF32 } from '../../src/io/safetensors/half.ts';
import { resolveLlamaWeights } from '../../src/models/llama/llama-weights.ts';
import { dequantGptqRef, packGptq, quantizeInts, tensorMap } from '../helpers/quant-formats.ts';

const repo = resolve(import.meta.dirname, '../..');

async function bench(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s) });
  return { code, stdout, stderr };
}

const TINY = ['--model', 'tiny', '--layers', '2', '--prompt', '12', '--tokens', '3', '--contexts', '8,40', '--steps', '2', '--json'];

function positive(obj: Record<string, unknown>, keys: string[], where: string): void {
  for (const k of keys) expect(Number.isFinite(obj[k]) && (obj[k] as number) > 0, `${where}.${k} = ${obj[k]}`).toBe(true);
}

describe('npm run bench -- llm', () => {
  it('--json: one object with every (dtype, kv) row, the contexts, the read-back batches and the targets', async () => {
    const { code, stdout, stderr } = await bench(...TINY, '--dtypes', 'f32,q4,gptq-q4,w8a8,q4:int8', '--kv', 'f16,int8');
    expect(code, stderr).toBe(0);
    const r = JSON.parse(stdout);
    expect(stdout.trim().split('\n')).toHaveLength(1); // nothing but the JSON on stdout
    expect(stderr).toContain('targets'); // the table goes to stderr
    expect(r).toMatchObject({ shape: 'tiny', layers: 2, ort: null });
    expect(r.rows.map((x: { dtype: string; kv: string }) => `${x.dtype}/${x.kv}`)).toEqual(['f32/f16', 'f32/int8', 'q4/f16', 'q4/int8', 'gptq-q4/f16', 'gptq-q4/int8', 'w8a8/f16', 'w8a8/int8', 'q4:int8/f16', 'q4:int8/int8']);
    // What each row's quantized Linears did with their input: q4 and GPTQ weight-only by default.
    expect(r.rows.map((x: { activations: string }) => x.activations)).toEqual(['float', 'float', 'float', 'float', 'float', 'float', 'int8', 'int8', 'int8', 'int8']);
    for (const row of r.rows) {
      expect(row).toMatchObject({ prompt: 12, tokens: 3, reps: 1 });
      positive(row, ['prefill_ms', 'prefill_tokens_per_s', 'decode_ms_per_token', 'decode_tokens_per_s', 'decode_speedup_vs_f32', 'weight_bytes', 'kv_bytes', 'kv_bytes_per_token'], `${row.dtype}/${row.kv}`);
      expect(row.prefill_tokens_per_s).toBeCloseTo((12 * 1000) / row.prefill_ms, 6);
      expect(row.kv_bytes_per_token * 15).toBeCloseTo(row.kv_bytes, 6); // a cache of prompt + tokens positions
    }
    const byKey = (d: string, kv: string) => r.rows.find((x: { dtype: string; kv: string }) => x.dtype === d && x.kv === kv);
    expect(byKey('f32', 'f16').decode_speedup_vs_f32).toBe(1);
    expect(byKey('q4', 'f16').weight_bytes).toBeLessThan(byKey('f32', 'f16').weight_bytes);
    expect(byKey('q4', 'int8').kv_bytes).toBeLessThan(byKey('q4', 'f16').kv_bytes); // int8 codes + scales < f16
    // gptq-q4: tiny's inputs (64, 160) take group 32, which maps exactly onto webq's int4 layout.
    expect(byKey('gptq-q4', 'f16').weight_bytes).toBeLessThan(byKey('f32', 'f16').weight_bytes);
    expect(r.gptq).toMatchObject({ quantization_config: { quant_method: 'gptq', bits: 4, group_size: 32, desc_act: false, sym: false }, webq_layout: 'int4 asymmetric, group 32 (exact)' });
    expect(r.gptq.format).toContain('GPTQ 4-bit, group 32, asymmetric');
    expect(r.gptq.load_s).toBeGreaterThan(0);
    // Contexts: q4 weights (the default decode dtype), each KV type at each context.
    expect(r.contexts.map((c: { kv: string; context: number }) => `${c.kv}@${c.context}`)).toEqual(['f16@8', 'f16@40', 'int8@8', 'int8@40']);
    for (const c of r.contexts) {
      expect(c).toMatchObject({ dtype: 'q4', steps: 2 });
      positive(c, ['ms_per_token', 'tokens_per_s', 'growth', 'linear_growth'], `context ${c.kv}@${c.context}`);
    }
    expect(r.contexts[1].linear_growth).toBe(5);
    expect(r.run_ahead.map((a: { batch: number }) => a.batch)).toEqual([8, 1]);
    for (const a of r.run_ahead) positive(a, ['ms_per_token', 'tokens_per_s'], `batch ${a.batch}`);
    // Every target is listed; those needing onnxruntime are 'not run' (null) without --ort.
    const targets = r.targets as { target: string; value: number | null; met: boolean | null }[];
    expect(targets.find((t) => t.target.startsWith('q4 decode'))!.value).toBeGreaterThan(0);
    expect(targets.find((t) => t.target.startsWith('int8 KV'))!.value).toBeGreaterThan(0);
    expect(targets.filter((t) => t.target.includes('onnxruntime')).map((t) => t.met)).toEqual([null, null]);
  });

  it('prints the tables without --json, and rejects bad options with exit code 2', async () => {
    const { code, stdout } = await bench('--model', 'tiny', '--layers', '1', '--prompt', '8', '--tokens', '2', '--contexts', '4,20', '--fill', 'prefill', '--fill-chunk', '7', '--dtypes', 'f32', '--kv', 'int8');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^llm: tiny-1L/);
    expect(stdout).not.toContain('gptq-q4');
    expect(stdout).toContain('prefill tok/s');
    expect(stdout).toContain('cache filled by prefills (--fill prefill)');
    expect(stdout).toMatch(/^int8 +20 /m);
    const bad = await bench('--dtypes', 'f32,q5');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--dtypes: q5; choose from');
    expect((await bench('--model', 'tiny', '--contexts', '8,99999')).code).toBe(2);
  });

  it('gptq-q4: the synthetic model as an AutoGPTQ int4 checkpoint that webq imports', () => {
    expect(gptqGroupFor(syntheticLlm('qwen2.5-0.5b', { layers: 1 }).cfg)).toBe(128);
    expect(gptqGroupFor(syntheticLlm('smollm2-135m', { layers: 1 }).cfg)).toBe(64); // hidden 576 = 4.5 x 128
    expect(gptqGroupFor(syntheticLlm('tiny', { layers: 1 }).cfg)).toBe(32);
    const m = syntheticLlm('tiny', { layers: 1 });
    const g = gptqLlm(m, 32);
    expect(g.cfg.quantizationConfig).toEqual({ quant_method: 'gptq', bits: 4, group_size: 32, desc_act: false, sym: false });
    // Bit for bit what the reference packer (AutoGPTQ QuantLinear.pack) writes for the same quantizer.
    for (const [base, N, K] of layerLinears(m.cfg)) {
      const w = m.store.values(`${base}.weight`);
      const ref = packGptq(base, quantizeInts(w, N, K, { bits: 4, group: 32, sym: false }));
      expect(g.store.has(`${base}.weight`)).toBe(false);
      const ours = g.store.packedLinear(base, N, K);
      const got = { qweight: ours.qweight, qzeros: ours.qzeros, scales: ours.scales, g_idx: ours.gIdx } as Record<string, ArrayBufferView>;
      for (const t of ref) {
        const sfx = t.name.slice(base.length + 1);
        expect(g.store.get(t.name), t.name).toMatchObject({ dtype: t.dtype, shape: t.shape });
        expect(new Uint8Array(got[sfx].buffer, got[sfx].byteOffset, got[sfx].byteLength), t.name).toEqual(new Uint8Array((t.data as ArrayBufferView).buffer, (t.data as ArrayBufferView).byteOffset, (t.data as ArrayBufferView).byteLength));
      }
      // AutoGPTQ's dequantization gives the weight back to within half a step.
      const deq = dequantGptqRef(tensorMap(ref), base, 4);
      const err = deq.reduce((e, x, i) => Math.max(e, Math.abs(x - w[i])), 0);
      expect(err, base).toBeLessThan(0.6 * Math.max(...f16ArrayToF32(ours.scales)));
    }
    // webq's importer finds every Linear as GPTQ tensors; the rest stays float.
    const refs = resolveLlamaWeights(g.store, g.cfg);
    const l0 = refs.layers[0];
    for (const part of [l0.q, l0.k, l0.v, l0.o, l0.gate, l0.up, l0.down]) expect(part.weight.imported?.bits).toBe(4);
    expect(refs.embed.imported).toBeUndefined();
  });

  // onnxruntime-node is not a dependency (bench/llm/ort.ts says why): where it is installed,
  // its fp32 graph of the same weights must agree with webq's f32 forward.
  it('--ort: onnxruntime on the same weights agrees with webq f32 (where onnxruntime-node is installed)', async ({ skip }) => {
    try {
      createRequire(resolve(repo, 'bench/llm.ts')).resolve('onnxruntime-node');
    } catch {
      skip('onnxruntime-node is not installed (npm i --no-save --ignore-scripts onnxruntime-node@1.30.0)');
    }
    const { code, stdout, stderr } = await bench(...TINY, '--dtypes', 'f32,q4', '--kv', 'f16', '--contexts', 'none', '--ort');
    expect(code, stderr).toBe(0);
    const r = JSON.parse(stdout);
    expect(r.ort.pairs.map((p: { dtype: string; ort_dtype: string }) => [p.dtype, p.ort_dtype])).toEqual([['f32', 'fp32'], ['q4', 'q4']]);
    for (const p of r.ort.pairs) {
      positive(p, ['webq_prefill_tokens_per_s', 'ort_prefill_tokens_per_s', 'prefill_ratio', 'webq_decode_tokens_per_s', 'ort_decode_tokens_per_s', 'decode_ratio', 'ort_model_bytes'], p.ort_dtype);
      expect(p.prefill_ratio).toBeCloseTo(p.webq_prefill_tokens_per_s / p.ort_prefill_tokens_per_s, 6);
    }
    // Same fp32 weights in two runtimes: last logits to f32 rounding, the same greedy tokens.
    expect(r.ort.check).toMatchObject({ pass: true, tokens: 4 });
    expect(r.ort.check.rel_diff).toBeLessThan(1e-4);
    expect(r.ort.check.webq_ids).toEqual(r.ort.check.ort_ids);
    expect(r.targets.filter((t: { target: string }) => t.target.includes('onnxruntime')).every((t: { value: number }) => t.value > 0)).toBe(true);
  });
});
