// The benchmark runner end to end, as a user runs it: a child process (bench/run.mjs loads the
// TypeScript suite through Vite), one small shape, one timed run. Checks the --json contract:
// stdout is exactly one JSON array, each case with the documented fields as finite numbers.
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const exec = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');

function bench(...args: string[]) {
  return exec(process.execPath, ['bench/run.mjs', ...args], { cwd: repo, timeout: 90_000, maxBuffer: 16 << 20 });
}

describe('npm run bench', () => {
  it('kernels --json prints one JSON array with a result per case', async () => {
    const { stdout, stderr } = await bench('kernels', '--filter', '128x384x1536', '--reps', '1', '--json');
    const results = JSON.parse(stdout) as Record<string, unknown>[];
    expect(Array.isArray(results)).toBe(true);
    expect(stderr).toContain('copy kernel:');
    const dtypes = results.map((r) => r.dtype);
    expect(dtypes).toContain('f32');
    for (const r of results) {
      expect(r.kernel).toBe('gemm');
      expect(r.shape).toEqual([128, 384, 1536]);
      expect(['f32', 'f16', 'q8', 'q4', 'w8a8']).toContain(r.dtype);
      expect(['f32', 'f16']).toContain(r.act);
      for (const k of ['ms', 'gbps', 'ratio_to_copy', 'speedup_vs_f32', 'gflops', 'copy_gbps', 'weight_bytes', 'traffic_bytes']) {
        expect(Number.isFinite(r[k]) && (r[k] as number) > 0, `${r.dtype}.${k} = ${r[k]}`).toBe(true);
      }
      expect(typeof r.adapter === 'string' && r.adapter.length > 0).toBe(true);
      expect(r.reps).toBe(1);
    }
    // The same run's f32 case is the baseline: its speedup is 1 by definition.
    expect(results.find((r) => r.dtype === 'f32')!.speedup_vs_f32).toBe(1);
    // lavapipe gets the subgroup kernels by default; --kernels gpu switches to the tiled ones (with
    // subgroups, as lavapipe has them: matmul_gpu_sg, A shuffled, B in a workgroup tile).
    expect(results.find((r) => r.dtype === 'f32')!.kernels).toEqual([expect.stringMatching(/^matmul_sg\.main/)]);
    const gpu = JSON.parse((await bench('kernels', '--filter', '128x384x1536 f32', '--reps', '1', '--json', '--kernels', 'gpu')).stdout) as Record<string, unknown>[];
    expect(gpu.map((r) => r.kernels)).toEqual([[expect.stringMatching(/^matmul_gpu_sg\.main4/)]]);
  });

  it('bert --json interleaves the dtypes and reports each with the documented fields', async () => {
    const { stdout, stderr } = await bench('bert', '--batch', '2', '--seq', '16', '--layers', '1', '--dtypes', 'f32,q8,q8:float', '--reps', '2', '--json');
    const results = JSON.parse(stdout) as Record<string, unknown>[];
    expect(results.map((r) => r.dtype)).toEqual(['f32', 'q8', 'q8:float']);
    expect(results.map((r) => r.activations)).toEqual(['float', 'int8', 'float']); // an encoder's q8 default: int8 blocks
    expect(stderr).toContain('dtypes interleaved');
    for (const r of results) {
      expect(r).toMatchObject({ batch: 2, seq: 16, reps: 2 });
      for (const k of ['ms', 'sentences_per_s', 'weight_bytes', 'speedup_vs_f32']) {
        expect(Number.isFinite(r[k]) && (r[k] as number) > 0, `${r.dtype}.${k} = ${r[k]}`).toBe(true);
      }
      expect(r.sentences_per_s as number).toBeCloseTo((2 * 1000) / (r.ms as number), 6);
    }
    expect(results[0].speedup_vs_f32).toBe(1);
    expect(results[1].speedup_vs_f32 as number).toBeCloseTo((results[0].ms as number) / (results[1].ms as number), 6);
    // int8 linear weights: the q8 model is smaller (embeddings and norms stay float).
    expect(results[1].weight_bytes as number).toBeLessThan(results[0].weight_bytes as number);
  });

  it('load --json times each case and sizes its file, with the documented fields', async () => {
    const { stdout, stderr } = await bench('load', '--vocab', '700', '--hidden', '64', '--layers', '1', '--reps', '2', '--json');
    const results = JSON.parse(stdout) as Record<string, unknown>[];
    expect(results.map((r) => [r.case, r.file, r.dtype, r.embeddings])).toEqual([
      ['f32', 'f32', 'f32', 'f32'], ['q8 from f32', 'f32', 'q8', 'int8'], ['q8 pre-quantized', 'q8', 'q8', 'int8'], ['q4 pre-quantized', 'q4', 'q4', 'int8'],
    ]);
    expect(stderr).toContain('cases interleaved');
    for (const r of results) {
      expect(r.reps).toBe(2);
      for (const k of ['ms', 'file_bytes', 'file_ratio', 'time_vs_q8_from_f32', 'weight_bytes']) expect(Number.isFinite(r[k]) && (r[k] as number) > 0, `${r.case}.${k} = ${r[k]}`).toBe(true);
      expect(r.time_vs_q8_from_f32 as number).toBeCloseTo((r.ms as number) / (results[1].ms as number), 6);
      expect(r.file_ratio as number).toBeCloseTo((r.file_bytes as number) / (results[0].file_bytes as number), 6);
    }
    expect([results[0].file_ratio, results[1].time_vs_q8_from_f32]).toEqual([1, 1]);
    // Packed tables: the q8 file is well under half the f32 one, q4 smaller still; the same model either way.
    expect(results[2].file_ratio as number).toBeLessThan(0.45);
    expect(results[3].file_ratio as number).toBeLessThan(results[2].file_ratio as number);
    expect(results[2].weight_bytes).toBe(results[1].weight_bytes);
    await expect(bench('load', '--embeddings', 'int2')).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('--embeddings must be int8, int4, f16, f32, got "int2"') });
  });

  // onnxruntime-node is not a dependency (bench/ort.ts says why): where a developer installed it,
  // the suite runs and its fp32 pair is a cross-runtime check of webq's forward; elsewhere (CI)
  // it must stop with exit code 2 and say how to install it.
  it('ort compares webq with onnxruntime on the same weights, or says how to get onnxruntime', async () => {
    let hasOrt = true;
    try {
      createRequire(resolve(repo, 'bench/ort.ts')).resolve('onnxruntime-node');
    } catch {
      hasOrt = false;
    }
    const args = ['ort', '--batch', '2', '--seq', '16', '--layers', '1', '--dtypes', 'f32,q4', '--reps', '1', '--json'];
    if (!hasOrt) {
      await expect(bench(...args)).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('npm i --no-save --ignore-scripts onnxruntime-node@') });
      return;
    }
    const results = JSON.parse((await bench(...args)).stdout) as Record<string, number | string>[];
    expect(results.map((r) => [r.dtype, r.ort_dtype])).toEqual([['f32', 'fp32'], ['q4', 'q4']]);
    for (const r of results) {
      for (const k of ['webq_ms', 'ort_ms', 'speedup_vs_ort']) expect(Number.isFinite(r[k]) && (r[k] as number) > 0, `${r.dtype}.${k}`).toBe(true);
      expect(r.speedup_vs_ort as number).toBeCloseTo((r.ort_ms as number) / (r.webq_ms as number), 6);
    }
    // Same fp32 model in two runtimes: the last hidden states agree to f32 rounding.
    expect(results[0].max_abs_diff as number).toBeLessThan(1e-4);
    expect(results[1].webq_cosine_vs_fp32 as number).toBeGreaterThan(0.98);
  });

  it('activations --json: per family and choice, accuracy against fp32 and prefill against decode', async () => {
    const { stdout } = await exec(process.execPath, ['bench/run.mjs', 'activations', '--outliers', '20', '--dtypes', 'q8', '--json'], { cwd: repo, timeout: 170_000, maxBuffer: 16 << 20 });
    const rows = JSON.parse(stdout) as Record<string, number | string>[];
    expect(rows.map((r) => `${r.family} ${r.dtype} ${r.activations}`)).toEqual(['llama q8 float', 'llama q8 int8', 'bert q8 float', 'bert q8 int8']);
    for (const r of rows.slice(0, 2)) {
      expect(r.kl as number).toBeGreaterThan(0);
      expect(r.kl as number).toBeLessThan(0.05);
      expect(r.cosine_last as number).toBeGreaterThan(0.99);
      expect(r.prefill_vs_decode_rel as number).toBeLessThan(4e-3); // the bound of llm-activations.test.ts
    }
    expect(rows[0].kl as number).toBeLessThan(rows[1].kl as number); // q8: float is the closer to fp32 here
    for (const r of rows.slice(2)) {
      expect(r.cosine_min as number).toBeLessThanOrEqual(r.cosine_mean as number);
      expect(r.cosine_min as number).toBeGreaterThan(0.999);
    }
  }, 180_000);

  it('rejects an unknown suite or option with exit code 2', async () => {
    await expect(bench('activations', '--dtypes', 'w8a8')).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('usage:') });
    await expect(bench('nope')).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('unknown suite') });
    await expect(bench('kernels', '--bogus')).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('usage:') });
    await expect(bench('bert', '--seq', '600')).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('--seq must be an integer from 1 to 512, got "600"') });
    await expect(bench('ort', '--batch', 'abc')).rejects.toMatchObject({ code: 2, stderr: expect.stringContaining('--batch must be a positive integer, got "abc"') });
  });
});
