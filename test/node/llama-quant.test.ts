// Quantized LLM paths against the fp32 CPU reference: every weight dtype and KV cache type, on a
// tiny Llama with planted outlier channels (tiny-llama.ts), measured per token over teacher-forced
// positions as KL(p_fp32 || p_quant) and top-1 agreement. Also: the f16 activation path, the `gpu`
// kernel family, and decode past one attention split (contexts over 256 keys).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Decoder } from '../../src/generate/decoder.ts';
import { kvCacheFor } from '../../src/generate/kv.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { parseLlamaConfig, type LlamaConfig } from '../../src/models/llama/llama-config.ts';
import { uploadLlamaWeights } from '../../src/models/llama/llama.ts';
import { resolveLlamaWeights } from '../../src/models/llama/llama-weights.ts';
import type { KvDType } from '../../src/ops/kv-cache.ts';
import type { LinearDType } from '../../src/ops/linear.ts';
import { llamaReferenceForward } from '../../src/reference/llama.ts';
import type { UploadOptions } from '../../src/models/upload.ts';
import { writeTinyLlama, type TinyLlama } from '../../fixtures/tiny-llama.ts';
import { argmax, klDivergence } from '../helpers/distribution.ts';

let dir: string;
let m: TinyLlama;
let cfg: LlamaConfig;
const contexts: Record<string, GpuContext> = {};

const IDS = (() => {
  let s = 17;
  return Array.from({ length: 40 }, () => (s = (s * 1103515245 + 12345) >>> 0) % 256);
})();
const FROM = 24; // teacher-forced positions FROM .. 39: 16 tokens
let ref: Float32Array;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-llamaq-'));
  m = await writeTinyLlama(join(dir, 'm'), { modelType: 'llama', hidden: 128, heads: 4, kvHeads: 2, intermediate: 256, seed: 21 });
  cfg = parseLlamaConfig(m.config);
  ref = llamaReferenceForward(cfg, m.weights, IDS);
  contexts.cpu = await GpuContext.create();
  contexts.gpu = await GpuContext.create({ kernels: 'gpu' });
});

afterAll(async () => {
  Object.values(contexts).forEach((c) => c.dispose());
  await rm(dir, { recursive: true, force: true });
});

async function decoder(ctx: GpuContext, dtype: LinearDType, kv: KvDType, cap = 64, up: UploadOptions = {}): Promise<Decoder> {
  const store = await (await openModelFiles(m.dir)).checkpoint();
  const w = await uploadLlamaWeights(ctx, store, cfg, resolveLlamaWeights(store, cfg), dtype, up);
  const cache = kvCacheFor(ctx, cfg, cap, kv);
  const dec = new Decoder(ctx, cfg, w, cache);
  const dispose = dec.dispose.bind(dec);
  dec.dispose = () => (dispose(), w.dispose());
  return dec;
}

/** Mean KL(ref || got) per token and top-1 agreement over positions FROM..end, one cached decode step each. */
async function measure(dec: Decoder): Promise<{ kl: number; top1: number; maxAbs: number }> {
  const V = cfg.vocabSize;
  let kl = 0;
  let agree = 0;
  let maxAbs = 0;
  for (let t = FROM; t < IDS.length; t++) {
    const got = await dec.logits(IDS.slice(0, t + 1));
    const want = ref.subarray(t * V, (t + 1) * V);
    kl += klDivergence(want, got);
    for (let i = 0; i < V; i++) maxAbs = Math.max(maxAbs, Math.abs(got[i] - want[i]));
    if (argmax(got) === argmax(want)) agree++;
  }
  const n = IDS.length - FROM;
  return { kl: kl / n, top1: agree / n, maxAbs };
}

// Bounds, from what lavapipe measured here (mean KL per token, top-1 agreement over 16 tokens):
//   f32/f32 ~2e-13, 1     f32/f16 2.8e-7, 1     f32/int8 6.7e-5, 1     f16/f16 1.9e-6, 1
//   q8/int8 (weight-only, group 32: llamaQuantDefaults) 7.8e-4, 1
//   w8a8/f16 5.7e-3, 1    q4/f16 7.2e-2, 0.88   w4a8/int8 1.0e-1, 0.69
//   with int8 activation blocks (activations: 'int8'): q8/int8 2.4e-3, 1   q4/f16 8.7e-2, 0.81
// (4-bit round-to-nearest on a model with 6x salient weight columns and 20x activation channels:
// what the quantization methods of the toolkit are for.)
// q8 with int8 KV must stay within the aim, KL <= 1e-3 per token.
// q4 rows: plain round-to-nearest (clipSearch: false) under the bounds above; then the default,
// the range search (src/quant/range-search.ts), under the same KL bound. On this random model the
// search measured KL 9.1e-2 against round-to-nearest's 8.1e-2, and top-1 0.25: it clips a little
// of each group's largest weights, and here the planted salient columns are the largest weights
// and meet 20x activations, and a random model's top two logits sit close, so top-1 over 16
// tokens swings with small changes. Trained weights are where the search is judged
// (quantize-trained.test.ts: 10-16% less KL than round-to-nearest); here it must only stay sane.
const PLAIN = { clipSearch: false };
const CASES: [LinearDType | 'q8 int8-activations' | 'q4 int8-activations', KvDType, { kl: number; top1: number }, UploadOptions?][] = [
  ['f32', 'f32', { kl: 1e-8, top1: 1 }],
  ['f32', 'f16', { kl: 1e-5, top1: 1 }],
  ['f32', 'int8', { kl: 3e-4, top1: 0.9 }],
  ['f16', 'f16', { kl: 2e-5, top1: 0.9 }],
  ['q8', 'int8', { kl: 1e-3, top1: 0.9 }],
  ['w8a8', 'f16', { kl: 1e-2, top1: 0.85 }],
  ['q4', 'f16', { kl: 0.15, top1: 0.6 }, PLAIN],
  ['q8 int8-activations', 'int8', { kl: 5e-3, top1: 0.9 }],
  ['q4 int8-activations', 'f16', { kl: 0.15, top1: 0.6 }, PLAIN],
  ['w4a8', 'int8', { kl: 0.15, top1: 0.55 }],
  ['q4', 'f16', { kl: 0.15, top1: 0.2 }],
];

describe.each(['cpu', 'gpu'])('%s kernels', (family) => {
  it.each(CASES)('%s weights, %s KV: KL and top-1 against fp32 (%j %j)', async (dtype, kv, bound, up) => {
    const ctx = contexts[family];
    if ((dtype === 'f16' || kv === 'f16') && !ctx.caps.f16) return;
    const [d, acts] = dtype.split(' ') as [LinearDType, string | undefined];
    const dec = await decoder(ctx, d, kv, 64, { ...up, ...(acts ? { activations: 'int8' as const } : {}) });
    try {
      const r = await measure(dec);
      console.log(`${family} ${dtype}/${kv}${up ? ' plain' : ''}: KL ${r.kl.toExponential(2)} top-1 ${r.top1} max|dlogit| ${r.maxAbs.toFixed(4)}`);
      expect(r.kl).toBeLessThanOrEqual(bound.kl);
      expect(r.top1).toBeGreaterThanOrEqual(bound.top1);
    } finally {
      dec.dispose();
    }
  });
});

it('decode past one split (300-token context): logits equal the reference, f32 and int8 KV', async () => {
  const long = Array.from({ length: 300 }, (_, i) => (i * 37 + 11) % cfg.vocabSize);
  const want = llamaReferenceForward(cfg, m.weights, long);
  const V = cfg.vocabSize;
  for (const kv of ['f32', 'int8'] as const) {
    const dec = await decoder(contexts.cpu, 'f32', kv, 320);
    try {
      await dec.logits(long.slice(0, 290)); // prefill
      for (let t = 290; t < 300; t++) {
        const got = await dec.logits(long.slice(0, t + 1)); // decode steps over 2 splits
        const w = want.subarray(t * V, (t + 1) * V);
        let d = 0;
        for (let i = 0; i < V; i++) d = Math.max(d, Math.abs(got[i] - w[i]));
        expect(d, `${kv} position ${t}`).toBeLessThan(kv === 'f32' ? 1e-3 : 0.15);
        expect(argmax(got)).toBe(argmax(w));
      }
    } finally {
      dec.dispose();
    }
  }
});

it('a tied table under a quantized dtype is int8 for the gather and the head: KL stays close, and no float copy', async () => {
  const tied = await writeTinyLlama(join(dir, 'tied'), { modelType: 'qwen2', tied: true, hidden: 128, heads: 4, kvHeads: 2, intermediate: 256, seed: 23 });
  const tcfg = parseLlamaConfig(tied.config);
  const tref = llamaReferenceForward(tcfg, tied.weights, IDS);
  const V = tcfg.vocabSize;
  const results: Record<string, number> = {};
  for (const dtype of ['f16', 'q8'] as const) {
    const store = await (await openModelFiles(tied.dir)).checkpoint();
    const w = await uploadLlamaWeights(contexts.cpu, store, tcfg, resolveLlamaWeights(store, tcfg), dtype);
    const cache = kvCacheFor(contexts.cpu, tcfg, 64, 'f32');
    const dec = new Decoder(contexts.cpu, tcfg, w, cache);
    try {
      let kl = 0;
      for (let t = FROM; t < IDS.length; t++) {
        kl += klDivergence(tref.subarray(t * V, (t + 1) * V), await dec.logits(IDS.slice(0, t + 1)));
      }
      results[dtype] = kl / (IDS.length - FROM);
      // The table is [V, H]: 2 bytes a value in f16, about 1 + 2/32 in int8 with group scales.
      if (dtype === 'q8') expect(w.embed.bytes).toBeLessThan(V * tcfg.hiddenSize * 1.1);
      else expect(w.embed.bytes).toBe(V * tcfg.hiddenSize * 2);
    } finally {
      dec.dispose();
      w.dispose();
    }
  }
  console.log(`tied qwen2: KL f16 ${results.f16.toExponential(2)}, q8 (int8 table) ${results.q8.toExponential(2)}`);
  expect(results.q8).toBeLessThanOrEqual(1e-3);
});
