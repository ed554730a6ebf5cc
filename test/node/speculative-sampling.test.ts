// Speculative decoding with sampling (#24): the GPU's sampled verification against its CPU
// reference, its acceptance rule in distribution against the textbook rejection rule (10k draws,
// chi-square), and sampled generation with lookup drafts drawing the same tokens as without them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlmModel } from '../../src/api/llm.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { samplerUniform, validateSamplingParams, type SamplingParams } from '../../src/ops/sample.ts';
import { verifySampledDrafts } from '../../src/ops/verify.ts';
import { referenceSample } from '../../src/reference/sample.ts';
import { rejectionStep, verifySampledReference } from '../../src/reference/verify.ts';
import { TRAINED_LLAMA } from '../helpers/trained-fixture.ts';

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
});
afterAll(() => ctx?.dispose());

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
}

/** Runs verifySampledDrafts on `logits` [rows, V] and returns out (count, then one token per row). */
async function gpuVerify(logits: Float32Array, rows: number, V: number, draft: number[], params: SamplingParams, step0: number): Promise<Uint32Array> {
  const lt = ctx.upload(logits, [rows, V], 'f32');
  const dr = ctx.upload(Uint32Array.from(draft.length ? draft : [0]), [Math.max(1, draft.length)], 'u32');
  const out = ctx.upload(new Uint32Array(rows + 1), [rows + 1], 'u32');
  const step = ctx.upload(Uint32Array.from([step0, params.seed, 0, 0]), [4], 'u32');
  const seen = ctx.upload(new Uint32Array(Math.ceil(V / 32)), [Math.ceil(V / 32)], 'u32');
  const mask = ctx.upload(new Uint32Array(Math.ceil(V / 32)), [Math.ceil(V / 32)], 'u32');
  const bias = ctx.upload(new Float32Array(V), [V], 'f32');
  try {
    const rec = ctx.record();
    verifySampledDrafts(ctx, rec, lt, dr, out, { step, seen, mask, bias }, params);
    await rec.submit();
    return (await ctx.read(out)) as Uint32Array;
  } finally {
    [lt, dr, out, step, seen, mask, bias].forEach((t) => t.dispose());
  }
}

/** The target distribution after temperature and top-k (the sampler's filters), in f64. */
function filtered(logits: Float32Array, p: SamplingParams): Float64Array {
  const z = Array.from(logits, (l) => Math.fround(l * Math.fround(1 / p.temperature)));
  const kth = [...z].sort((a, b) => b - a)[p.topK - 1];
  const w = z.map((v) => (v >= kth ? Math.exp(v - Math.max(...z)) : 0));
  const total = w.reduce((a, b) => a + b, 0);
  return Float64Array.from(w, (v) => v / total);
}

/** Pearson's chi-square of `counts` against probabilities `p` over the categories with p > 0. */
function chiSquare(counts: number[], p: Float64Array, n: number): { chi2: number; df: number } {
  let chi2 = 0, cats = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] === 0) {
      expect(counts[i], `token ${i} has probability 0`).toBe(0);
      continue;
    }
    cats++;
    chi2 += (counts[i] - n * p[i]) ** 2 / (n * p[i]);
  }
  return { chi2, df: cats - 1 };
}

describe('verifySampledDrafts kernel', () => {
  it('each row draws what the CPU sampler draws with that token index, and the count is the agreeing prefix', async () => {
    const V = 300, rows = 7;
    const rnd = lcg(7);
    const logits = Float32Array.from({ length: rows * V }, () => (rnd() - 0.5) * 8);
    for (const params of [
      validateSamplingParams({ temperature: 0.9, seed: 123 }),
      validateSamplingParams({ temperature: 1.3, topK: 20, topP: 0.9, seed: 9 }),
      validateSamplingParams({ temperature: 0.7, minP: 0.05, seed: 4242 }),
    ]) {
      const step0 = 5;
      const row = (r: number) => referenceSample(logits.subarray(r * V, (r + 1) * V), new Set(), params, samplerUniform(params.seed, step0 + r));
      const drawn = Array.from({ length: rows }, (_, r) => row(r));
      // Drafts agreeing with the first three draws, then not.
      const draft = [drawn[0], drawn[1], drawn[2], (drawn[3] + 1) % V, drawn[4], drawn[5]];
      const ref = verifySampledReference(rows, draft, row);
      expect(ref.accepted).toBe(3);
      const got = await gpuVerify(logits, rows, V, draft, params, step0);
      expect(Array.from(got)).toEqual([ref.accepted, ...ref.tokens]);
    }
  });

  it('in distribution: 10k draws of one drafted position match the rejection rule and p (chi-square, p = 0.001)', async () => {
    // A vocabulary of 64 with top-k 8: 8 categories, 7 degrees of freedom for the kept token
    // (critical value 24.32 at p = 0.001), and 7 categories / 6 degrees of freedom for the
    // residual after a rejection (22.46). The drafted token x is the second most likely.
    const V = 64, N = 10000;
    const rnd = lcg(3);
    const row = Float32Array.from({ length: V }, () => (rnd() - 0.5) * 6);
    const params = validateSamplingParams({ temperature: 0.8, topK: 8, seed: 77 });
    const p = filtered(row, params);
    const x = Array.from(p.keys()).sort((a, b) => p[b] - p[a])[1];
    // The GPU: N rows of the same logits with the draft x at every row; row r uses token index r,
    // so out[1 + r] is an independent trial of one verification of x (accepted when it equals x).
    const logits = new Float32Array(N * V);
    for (let r = 0; r < N; r++) logits.set(row, r * V);
    const out = await gpuVerify(logits, N, V, new Array(N - 1).fill(x), params, 0);
    const kept = new Array(V).fill(0), residual = new Array(V).fill(0);
    let accepted = 0;
    for (let r = 0; r < N; r++) {
      const t = out[1 + r];
      kept[t]++;
      if (t === x) accepted++;
      else residual[t]++;
    }
    // The textbook rule with its own uniforms, on the CPU.
    const rule = new Array(V).fill(0);
    const u = lcg(99);
    let ruleAccepted = 0;
    for (let r = 0; r < N; r++) {
      const s = rejectionStep(p, x, u(), u());
      rule[s.token]++;
      if (s.accepted) ruleAccepted++;
    }
    const resP = Float64Array.from(p, (v, i) => (i === x ? 0 : v / (1 - p[x])));
    const gpuKept = chiSquare(kept, p, N);
    const gpuRes = chiSquare(residual, resP, N - accepted);
    const cpuRule = chiSquare(rule, p, N);
    console.log(`p(x) = ${p[x].toFixed(4)}; GPU accepted ${accepted} / ${N}, rule ${ruleAccepted} / ${N}; chi2 kept ${gpuKept.chi2.toFixed(2)} (df ${gpuKept.df}), residual ${gpuRes.chi2.toFixed(2)} (df ${gpuRes.df}), rule ${cpuRule.chi2.toFixed(2)} (df ${cpuRule.df})`);
    expect(gpuKept.df).toBe(7);
    expect(gpuRes.df).toBe(6);
    expect(gpuKept.chi2).toBeLessThan(24.32);
    expect(gpuRes.chi2).toBeLessThan(22.46);
    expect(cpuRule.chi2).toBeLessThan(24.32);
    // Acceptance rates: both binomial(N, p(x)); 4 standard deviations.
    const sd = Math.sqrt(N * p[x] * (1 - p[x]));
    expect(Math.abs(accepted - N * p[x])).toBeLessThan(4 * sd);
    expect(Math.abs(ruleAccepted - N * p[x])).toBeLessThan(4 * sd);
  });
});

describe('sampled generation with lookup drafts', () => {
  it('draws the same tokens as sampling without speculation for every seed, with drafts accepted (trained fixture, f32 and q4)', async () => {
    const story = 'Emma was a brave little girl who lived in a nest near the town. Every Thursday, Emma and Nora went to the town together. Emma was a brave little girl who lived in a nest near the town. Every Thursday, Emma';
    for (const dtype of ['f32', 'q4'] as const) {
      const model = await LlmModel.load(TRAINED_LLAMA, { dtype, context: ctx, contextLength: 160 });
      try {
        let accepted = 0, rejected = 0;
        for (let seed = 1; seed <= 3; seed++) {
          const o = { maxTokens: 20, temperature: 0.8, topK: 40, topP: 0.95, seed, ignoreEos: true };
          const plain = await model.generate(story, o);
          const spec = await model.generate(story, { ...o, speculative: { method: 'lookup', k: 4 } });
          expect(spec.tokens, `seed ${seed}`).toEqual(plain.tokens);
          accepted += spec.usage.completionTokensDetails!.acceptedPredictionTokens;
          rejected += spec.usage.completionTokensDetails!.rejectedPredictionTokens;
        }
        console.log(`trained ${dtype}, sampled: accepted ${accepted}, rejected ${rejected} over 3 seeds x 20 tokens`);
        expect(accepted).toBeGreaterThan(0);
      } finally {
        model.dispose();
      }
    }
  });
});
