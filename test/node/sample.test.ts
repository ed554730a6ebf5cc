/**
 * GPU token sampler (src/ops/sample.ts) against the plain-loop reference (src/reference/sample.ts),
 * on the f32 and f16 paths. Tokens must match exactly. The GPU sums masses in f32 (and its exp()
 * may differ from the CPU's by an ulp or so), the reference in f64, so a step is compared only when
 * every float decision (the top-p crossing, min-p, the draw) sits at least MARGIN away from its
 * boundary: a razor-edge step would compare rounding, not the sampler. Such steps are counted and
 * must stay rare.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebqError } from '../../src/errors.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import {
  sampleToken,
  samplerUniform,
  seenBitset,
  validateSamplingParams,
  writeSamplerStep,
  LOGPROB_WORDS,
  type SamplerState,
  type SamplingParams,
} from '../../src/ops/sample.ts';
import { referenceSample, referenceSampleTrace } from '../../src/reference/sample.ts';
import { randn, rng, roundF16 } from '../kernels/check.ts';

/**
 * Relative distance from a boundary that rounding does not cross. Measured on lavapipe: of 1800
 * unfiltered draws (V up to 71000, flat to peaked), the only mismatch had a margin of 8e-9, and 14
 * draws under 1e-7 matched; 1e-6 leaves two orders of magnitude.
 */
const MARGIN = 1e-6;
/** Decode steps per random case. */
const STEPS = 8;

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
});
afterAll(() => ctx?.dispose());

function makeState(vocab: number, seen: Iterable<number>, ring = 8): SamplerState {
  const words = Math.ceil(vocab / 32);
  return {
    seen: ctx.upload(seenBitset(vocab, seen), [words], 'u32', 'test:seen'),
    step: ctx.upload(new Uint32Array(4), [4], 'u32', 'test:step'),
    next: ctx.upload(new Uint32Array(1), [1], 'u32', 'test:next'),
    ids: ctx.upload(new Uint32Array(ring).fill(0xdeadbeef), [ring], 'u32', 'test:ids'),
    mask: ctx.upload(new Uint32Array(words).fill(0xffffffff), [words], 'u32', 'test:mask'),
    bias: ctx.upload(new Float32Array(vocab), [vocab], 'f32', 'test:bias'),
    lp: ctx.upload(new Uint32Array(ring * LOGPROB_WORDS), [ring * LOGPROB_WORDS], 'u32', 'test:lp'),
  };
}

function disposeState(s: SamplerState): void {
  for (const t of [s.seen, s.step, s.next, s.ids, s.mask, s.bias, s.lp]) t.dispose();
}

/** One step on the GPU (one submit), reading back only next[0]. */
async function gpuSample(logits: Tensor, state: SamplerState, p: SamplingParams, step: number): Promise<number> {
  writeSamplerStep(ctx, state, step, p.seed);
  const rec = ctx.record();
  sampleToken(ctx, rec, logits, state, p);
  await rec.submit();
  return (await ctx.read(state.next))[0];
}

const params = (p: Partial<SamplingParams>) => validateSamplingParams(p);

for (const prec of ['f32', 'f16'] as const) {
  const input = (x: Float32Array) => (prec === 'f16' ? roundF16(x) : x);

  describe(`sampler ${prec}`, () => {
    it('greedy is the argmax, lowest index on ties', async () => {
      for (const V of [5, 1003, 70001]) {
        const x = input(randn(V, V, 2));
        let max = -Infinity;
        for (const v of x) max = Math.max(max, v);
        const tied = [V - 1, 3, Math.max(4, V >> 1)]; // the maximum three times; 3 is the lowest
        for (const i of tied) x[i] = max + 1;
        const logits = ctx.uploadFloat(x, [V], prec);
        const state = makeState(V, []);
        const got = await gpuSample(logits, state, params({}), 0);
        expect(got, `V=${V}`).toBe(3);
        expect(referenceSample(x, new Set(), params({}), 0)).toBe(3);
        logits.dispose();
        disposeState(state);
      }
    });

    it('repetition penalty changes the argmax when it should', async () => {
      // [label, logits, seen, penalty, expected]: positive scores are divided, negative multiplied.
      const cases: [string, number[], number[], number, number][] = [
        ['positive, strong', [0.5, 2.0, 1.9, -1], [1], 1.1, 2], // 2.0 / 1.1 = 1.82 < 1.9
        ['positive, weak', [0.5, 2.0, 1.9, -1], [1], 1.02, 1], // 2.0 / 1.02 = 1.96 > 1.9
        ['negative, strong', [-3, -1.0, -1.2, -2], [1], 1.3, 2], // -1.0 * 1.3 = -1.3 < -1.2
        ['negative, weak', [-3, -1.0, -1.2, -2], [1], 1.1, 1], // -1.1 > -1.2
        ['penalty < 1 favours seen', [0.5, 1.9, 2.0, -1], [1], 0.9, 1], // 1.9 / 0.9 = 2.11
      ];
      for (const [label, values, seen, penalty, want] of cases) {
        const x = input(new Float32Array(values));
        const logits = ctx.uploadFloat(x, [x.length], prec);
        for (const temperature of [0, 0.01]) {
          const state = makeState(x.length, seen);
          const p = params({ temperature, repetitionPenalty: penalty });
          expect(await gpuSample(logits, state, p, 0), `${label} T=${temperature}`).toBe(want);
          expect(referenceSample(x, new Set(seen), p, samplerUniform(0, 0)), `${label} (reference)`).toBe(want);
          disposeState(state);
        }
        logits.dispose();
      }
    });

    it('matches the reference token for token on random logits and settings', async () => {
      const r = rng(prec === 'f32' ? 1234 : 5678);
      const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
      const sizes = [5, 31, 33, 255, 257, 1000, 4097, 32000, 50257, 70000];
      let skipped = 0;
      for (let c = 0; c < 50; c++) {
        const V = c < sizes.length ? sizes[c] : 5 + Math.floor(r() ** 2 * 70000);
        let x = randn(V, 100 * c + (prec === 'f32' ? 1 : 2), 1 + 4 * r());
        if (c % 5 === 4) x = x.map((v) => Math.round(v * 2) / 2); // coarse grid: many exact ties
        if (c % 7 === 3) x = x.map((v, i) => (i % 10 === 9 ? -Infinity : v)); // masked tokens
        x = input(x);
        const seen = new Set<number>();
        if (r() < 0.6) for (let n = Math.min(200, V >> 2); n > 0; n--) seen.add(Math.floor(r() * V));
        const p = params({
          temperature: pick([0.25, 0.7, 1, 1.6]),
          topK: r() < 0.5 ? 0 : pick([1, 2, 7, 50, 1000, V + 3]),
          topP: r() < 0.5 ? 1 : 0.3 + 0.69 * r(),
          minP: r() < 0.6 ? 0 : 0.005 + 0.3 * r(),
          repetitionPenalty: seen.size && r() < 0.7 ? pick([0.8, 1.1, 1.5]) : 1,
          seed: Math.floor(r() * 2 ** 32),
        });
        // STEPS decode steps, one submit each, read back once from the ring. The kernel marks each
        // sampled token as seen, so the reference follows the same growing set (the penalty sees it).
        const logits = ctx.uploadFloat(x, [V], prec);
        const state = makeState(V, seen, STEPS);
        for (let s = 0; s < STEPS; s++) {
          writeSamplerStep(ctx, state, s, p.seed);
          const rec = ctx.record();
          sampleToken(ctx, rec, logits, state, p);
          void rec.submit();
        }
        const got = Array.from(await ctx.read(state.ids));
        const refSeen = new Set(seen);
        for (let s = 0; s < STEPS; s++) {
          const t = referenceSampleTrace(x, refSeen, p, samplerUniform(p.seed, s));
          if (t.margin >= MARGIN) {
            expect(got[s], `case ${c} step ${s}: V=${V} ${JSON.stringify(p)} margin=${t.margin.toExponential(2)}`).toBe(t.token);
          } else skipped++;
          refSeen.add(got[s]);
        }
        expect(Array.from(await ctx.read(state.seen)), `case ${c}: seen bits`).toEqual(Array.from(seenBitset(V, refSeen)));
        logits.dispose();
        disposeState(state);
      }
      expect(skipped, `steps of ${50 * STEPS} too close to a boundary to compare`).toBeLessThanOrEqual(8);
    });

    it('handles a 262144-token vocabulary (the largest in use)', async () => {
      const V = 262144;
      const x = input(randn(V, 262144, 3));
      const seen = new Set(Array.from({ length: 1000 }, (_, i) => (i * 104729) % V));
      const logits = ctx.uploadFloat(x, [V], prec);
      for (const p of [
        params({ temperature: 0.8, topK: 40, topP: 0.95, minP: 0.02, repetitionPenalty: 1.2, seed: 1 }),
        params({ temperature: 1, topP: 0.7, seed: 2 }), // 0.9 crosses at a token 3e-7 of the mass wide: too close to compare
      ]) {
        const state = makeState(V, seen);
        let compared = 0;
        for (let s = 0; compared < 3; s++) {
          expect(s, 'steps tried for 3 clear of rounding').toBeLessThan(8);
          const t = referenceSampleTrace(x, seen, p, samplerUniform(p.seed, s));
          const got = await gpuSample(logits, state, p, s);
          if (t.margin >= MARGIN) {
            expect(got, `${JSON.stringify(p)} step ${s}`).toBe(t.token);
            compared++;
          }
          seen.add(got);
        }
        disposeState(state);
      }
      logits.dispose();
    });

    it('writes next, the ring slot and the seen bit', async () => {
      const V = 100;
      const x = input(randn(V, 7, 3));
      const logits = ctx.uploadFloat(x, [V], prec);
      const state = makeState(V, [0, 31, 64], 5);
      const p = params({ temperature: 1, seed: 99 });
      const got = await gpuSample(logits, state, p, 7);
      expect(got).toBe(referenceSample(x, new Set([0, 31, 64]), p, samplerUniform(99, 7)));
      const ids = Array.from(await ctx.read(state.ids));
      expect(ids).toEqual([0, 1, 2, 3, 4].map((i) => (i === 7 % 5 ? got : 0xdeadbeef)));
      const want = seenBitset(V, [0, 31, 64, got]);
      expect(Array.from(await ctx.read(state.seen))).toEqual(Array.from(want));
      logits.dispose();
      disposeState(state);
    });
  });
}

describe('sampler RNG', () => {
  it('samplerUniform is deterministic, in [0, 1), and distinct across steps', () => {
    const us = Array.from({ length: 1000 }, (_, s) => samplerUniform(42, s));
    expect(us).toEqual(Array.from({ length: 1000 }, (_, s) => samplerUniform(42, s)));
    expect(us.every((u) => u >= 0 && u < 1)).toBe(true);
    expect(new Set(us).size).toBe(1000);
    expect(samplerUniform(43, 0)).not.toBe(samplerUniform(42, 0));
  });

  it('the GPU draws exactly samplerUniform: same seed and step, same token; other steps, other draws', async () => {
    // 65536 equal logits: every weight is exactly 1 and every sum exact, so the token is
    // floor(u * 65536), the top 16 bits of the WGSL uniform, to compare with the TypeScript one.
    const V = 65536;
    const logits = ctx.uploadFloat(new Float32Array(V), [V], 'f32');
    const state = makeState(V, []);
    const p = params({ temperature: 1, seed: 2024 });
    const tokens: number[] = [];
    for (let step = 0; step < 8; step++) {
      const t = await gpuSample(logits, state, p, step);
      expect(t, `step ${step}`).toBe(Math.floor(samplerUniform(2024, step) * V));
      expect(await gpuSample(logits, state, p, step), `step ${step} again`).toBe(t);
      tokens.push(t);
    }
    expect(new Set(tokens).size).toBe(8);
    logits.dispose();
    disposeState(state);
  });

  it('2000 draws from an 8-token distribution match its probabilities', async () => {
    const x = new Float32Array([2, 1, 0.5, 0, -0.5, -1, 1.5, -3]);
    const steps = 2000;
    const logits = ctx.uploadFloat(x, [8], 'f32');
    const state = makeState(8, [], steps);
    const p = params({ temperature: 1, seed: 7 });
    for (let s = 0; s < steps; s++) {
      writeSamplerStep(ctx, state, s, p.seed);
      const rec = ctx.record();
      sampleToken(ctx, rec, logits, state, p);
      void rec.submit(); // no readback per step: the ring holds every draw
    }
    const ids = Array.from(await ctx.read(state.ids));
    const counts = new Array(8).fill(0);
    for (const id of ids) counts[id]++;
    let z = 0;
    for (const v of x) z += Math.exp(v);
    for (let i = 0; i < 8; i++) {
      const prob = Math.exp(x[i]) / z;
      // Within 4 standard errors of a binomial frequency (a 6e-5 chance per token of failing for a fair sampler).
      const tol = 4 * Math.sqrt((prob * (1 - prob)) / steps);
      expect(Math.abs(counts[i] / steps - prob), `token ${i}: ${counts[i]}/${steps} vs p=${prob.toFixed(4)}`).toBeLessThanOrEqual(tol);
    }
    // And each draw is the reference's token for that step's uniform, wherever that is clear of rounding.
    for (let s = 0; s < steps; s++) {
      const t = referenceSampleTrace(x, new Set(), p, samplerUniform(7, s));
      if (t.margin >= MARGIN) expect(ids[s], `step ${s}`).toBe(t.token);
    }
    logits.dispose();
    disposeState(state);
  });
});

describe('sampler options and guards', () => {
  it('validateSamplingParams fills defaults (greedy) and rejects each bad value by name', () => {
    expect(validateSamplingParams({})).toEqual({ temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0 });
    const bad: [Partial<SamplingParams>, RegExp][] = [
      [{ temperature: -0.5 }, /temperature .*got -0\.5/],
      [{ temperature: Infinity }, /temperature .*got Infinity/],
      [{ temperature: NaN }, /temperature .*got NaN/],
      [{ temperature: 1e-40 }, /temperature .*got 1e-40/],
      [{ topK: -1 }, /topK .*got -1/],
      [{ topK: 2.5 }, /topK .*got 2\.5/],
      [{ topP: 0 }, /topP .*got 0/],
      [{ topP: 1.5 }, /topP .*got 1\.5/],
      [{ minP: -0.1 }, /minP .*got -0\.1/],
      [{ minP: 1 }, /minP .*got 1/],
      [{ repetitionPenalty: 0 }, /repetitionPenalty .*got 0/],
      [{ repetitionPenalty: -1 }, /repetitionPenalty .*got -1/],
      [{ seed: -1 }, /seed .*got -1/],
      [{ seed: 2 ** 32 }, /seed .*got 4294967296/],
      [{ seed: 1.5 }, /seed .*got 1\.5/],
      [{ temperature: '1' as never }, /temperature .*got "1"/],
    ];
    for (const [p, re] of bad) {
      let err: unknown;
      try {
        validateSamplingParams(p);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(p)).toBeInstanceOf(WebqError);
      expect((err as WebqError).code).toBe('BAD_OPTION');
      expect((err as Error).message).toMatch(re);
    }
  });

  it('sampleToken rejects state tensors of the wrong size', () => {
    const logits = ctx.uploadFloat(new Float32Array(100), [100], 'f32');
    const state = makeState(64, []); // seen has 2 words; 100 tokens need 4
    const rec = ctx.record();
    expect(() => sampleToken(ctx, rec, logits, state, params({}))).toThrow(/seen must have ceil\(100 \/ 32\) = 4 elements/);
    logits.dispose();
    disposeState(state);
  });
});

describe('sampler timing', () => {
  it('samples V=151936 (all filters on) in one dispatch per step', async () => {
    const V = 151936;
    const x = randn(V, 11, 3);
    const logits = ctx.uploadFloat(x, [V], 'f32');
    const seen = Array.from({ length: 300 }, (_, i) => (i * 7919) % V);
    const state = makeState(V, seen, 32);
    const full = params({ temperature: 0.7, topK: 50, topP: 0.9, minP: 0.05, repetitionPenalty: 1.1, seed: 5 });
    const time = async (p: SamplingParams): Promise<number> => {
      await gpuSample(logits, state, p, 0); // compile and warm
      const t0 = performance.now();
      for (let s = 1; s <= 20; s++) {
        writeSamplerStep(ctx, state, s, p.seed);
        const rec = ctx.record();
        sampleToken(ctx, rec, logits, state, p);
        void rec.submit();
      }
      await ctx.dev.sync();
      return (performance.now() - t0) / 20;
    };
    const msFull = await time(full);
    const msGreedy = await time(params({ repetitionPenalty: 1.1 }));
    const msPlain = await time(params({ temperature: 1, seed: 5 }));
    console.log(`sampler V=${V} on ${ctx.caps.adapter}: all filters ${msFull.toFixed(1)} ms, plain sampling ${msPlain.toFixed(1)} ms, greedy ${msGreedy.toFixed(1)} ms per step`);
    expect(msFull).toBeGreaterThan(0);
    logits.dispose();
    disposeState(state);
  });
});
