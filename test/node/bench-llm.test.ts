// `npm run bench -- llm` at test size: the suite's run() in this process on the tiny shape
// (2 layers, a few tokens), checking its --json contract: stdout is exactly one JSON object with a
// row per requested (dtype, kv), context rows per KV type, both read-back batches and the targets,
// every number finite and positive. The --ort path runs only where onnxruntime-node is installed
// (it is not a webq dependency, and CI does not have it).
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../../bench/llm.ts';

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
    const { code, stdout, stderr } = await bench(...TINY, '--dtypes', 'f32,q4,w8a8', '--kv', 'f16,int8');
    expect(code, stderr).toBe(0);
    const r = JSON.parse(stdout);
    expect(stdout.trim().split('\n')).toHaveLength(1); // nothing but the JSON on stdout
    expect(stderr).toContain('targets'); // the table goes to stderr
    expect(r).toMatchObject({ shape: 'tiny', layers: 2, ort: null });
    expect(r.rows.map((x: { dtype: string; kv: string }) => `${x.dtype}/${x.kv}`)).toEqual(['f32/f16', 'f32/int8', 'q4/f16', 'q4/int8', 'w8a8/f16', 'w8a8/int8']);
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
    expect(stdout).toContain('prefill tok/s');
    expect(stdout).toContain('cache filled by prefills (--fill prefill)');
    expect(stdout).toMatch(/^int8 +20 /m);
    const bad = await bench('--dtypes', 'f32,q5');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--dtypes: q5; choose from');
    expect((await bench('--model', 'tiny', '--contexts', '8,99999')).code).toBe(2);
  });

  // onnxruntime-node is not a dependency (bench/lib/llm-ort.ts says why): where it is installed,
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
