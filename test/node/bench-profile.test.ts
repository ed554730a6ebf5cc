// bench/ort/profile.ts: the buckets of `npm run bench -- ort --profile`, on made-up profiles (no GPU).
import { describe, expect, it } from 'vitest';
import { compareBuckets, ortProfile, summarize, webqBucket, type TraceEvent } from '../../bench/ort/profile.ts';

describe('bench profile buckets', () => {
  it('files webq dispatches by the Linear being recorded, attention and norm kernels by shader', () => {
    expect(webqBucket(null, 'embed_sum.main[f32]{WG=256}')).toBe('other');
    expect(webqBucket('layers.0.qkv', 'quantize_act_sg.main[f16+sg]{PER_BLOCK=true}')).toBe('qkv');
    expect(webqBucket('layers.0.qkv', 'attention_sg.main[f32+sg]{HD=32,WG=64}')).toBe('attention');
    expect(webqBucket('layers.3.attnOut', 'qgemm.wint[f16]{BITS=4}')).toBe('attn_out');
    expect(webqBucket('layers.3.attnOut', 'norm.layernorm[f16]{WG=64}')).toBe('other');
    expect(webqBucket('layers.3.inter', 'matmul.main[f32]{ACT=1}')).toBe('ffn_up');
    expect(webqBucket('layers.3.out', 'matmul.main[f32]{ACT=0}')).toBe('ffn_down');
  });

  it("reads onnxruntime's profile: GPU dispatches and CPU EP nodes per run, warm-up dropped", () => {
    const run = (ts: number, scale: number): TraceEvent[] => [
      { cat: 'Session', name: 'model_run', ts, dur: 1000 },
      { cat: 'Api', name: 'MatMul_14&MatMul&MatMul', ts: ts + 10, dur: 300 * scale },
      { cat: 'Api', name: 'Softmax_30&Softmax&Softmax', ts: ts + 20, dur: 50 * scale },
      { cat: 'Api', name: 'BiasGelu&BiasGelu&BiasGelu', ts: ts + 30, dur: 20 * scale },
      { cat: 'Api', name: 'Fancy&FancyOp&Fancy', ts: ts + 40, dur: 10 * scale },
      // A WebGPU node's host time is its recording, not the kernel: skipped.
      { cat: 'Node', name: 'MatMul_14_kernel_time', ts: ts + 5, dur: 999, args: { provider: 'WebGpuExecutionProvider', op_name: 'MatMul' } },
      { cat: 'Node', name: 'MatMulInteger_47_kernel_time', ts: ts + 50, dur: 40 * scale, args: { provider: 'CPUExecutionProvider', op_name: 'MatMulInteger' } },
    ];
    const buckets = new Map([
      ['MatMul_14', 'qkv'],
      ['Softmax_30', 'attention'],
      ['MatMulInteger_47', 'ffn_down'],
    ] as const);
    // Warm-up run 10x slower, then runs at 1x, 2x, 3x: medians are the 2x run's.
    const p = ortProfile([...run(0, 10), ...run(10_000, 1), ...run(20_000, 2), ...run(30_000, 3)], (n) => buckets.get(n as 'MatMul_14'));
    expect(p.runs).toBe(3);
    expect(p.buckets).toEqual({ qkv: 0.6, attention: 0.1, attn_out: 0, ffn_up: 0.04, ffn_down: 0.08, other: 0.02 });
    expect(p.total_ms).toBeCloseTo(0.84, 9);
    expect(p.host_ms).toBeCloseTo(0.08, 9);
    expect(p.kernels).toBe(5);
    expect(p.unmapped).toEqual(['Fancy (FancyOp)']);
    expect(p.detail[0]).toEqual({ bucket: 'qkv', name: 'MatMul', ms: 0.6, count: 1, host: false });
    expect(p.detail.find((k) => k.host)).toMatchObject({ bucket: 'ffn_down', name: 'MatMulInteger (CPU EP)', count: 1 });

    const webq = summarize([[{ bucket: 'qkv', name: 'gemm', ms: 0.3 }, { bucket: 'attention', name: 'attention', ms: 0.1 }]], 'test');
    const rows = compareBuckets(webq, p);
    expect(rows.map((r) => r.bucket)).toEqual(['qkv', 'attention', 'attn_out', 'ffn_up', 'ffn_down', 'other', 'total']);
    expect(rows[0].ratio).toBeCloseTo(2, 9);
    expect(rows[2].ratio).toBeNaN(); // webq has no time there
    expect(rows[6]).toMatchObject({ webq_ms: 0.4, ort_ms: p.total_ms });
  });
});
