/**
 * The GPU sampler's constraint mask, logit bias and logprobs (src/ops/sample.ts) against the CPU
 * reference (src/reference/sample.ts), on the f32 and f16 paths. Tokens must match exactly (steps
 * whose float decisions sit within MARGIN of a boundary are skipped and counted, as in
 * sample.test.ts); logprobs within 2e-5 absolute (f32 sums on the GPU against f64).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.ts';
import {
  decodeLogprobs,
  LOGPROB_WORDS,
  sampleToken,
  samplerUniform,
  seenBitset,
  validateSamplingParams,
  writeSamplerStep,
  type SampleExtras,
  type SamplerState,
  type SamplingParams,
} from '../../src/ops/sample.ts';
import { referenceLogprobs, referenceSampleTrace } from '../../src/reference/sample.ts';
import { randn, rng, roundF16 } from '../kernels/check.ts';

const MARGIN = 1e-6;
const LP_TOL = 2e-5;

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
});
afterAll(() => ctx?.dispose());

function makeState(V: number, seen: Iterable<number>, mask: Uint32Array, bias: Float32Array, ring = 4): SamplerState {
  const W = Math.ceil(V / 32);
  return {
    seen: ctx.upload(seenBitset(V, seen), [W], 'u32', 'test:seen'),
    step: ctx.upload(new Uint32Array(4), [4], 'u32', 'test:step'),
    next: ctx.upload(new Uint32Array(1), [1], 'u32', 'test:next'),
    ids: ctx.upload(new Uint32Array(ring), [ring], 'u32', 'test:ids'),
    mask: ctx.upload(mask, [W], 'u32', 'test:mask'),
    bias: ctx.upload(bias, [V], 'f32', 'test:bias'),
    lp: ctx.upload(new Uint32Array(ring * LOGPROB_WORDS), [ring * LOGPROB_WORDS], 'u32', 'test:lp'),
  };
}
const dispose = (s: SamplerState) => [s.seen, s.step, s.next, s.ids, s.mask, s.bias, s.lp].forEach((t) => t.dispose());

/** A mask allowing about `frac` of the vocabulary, never none. */
function randomMask(V: number, frac: number, r: () => number): Uint32Array {
  const m = new Uint32Array(Math.ceil(V / 32));
  for (let i = 0; i < V; i++) if (r() < frac) m[i >>> 5] |= 1 << (i & 31);
  m[Math.floor(r() * V) >>> 5] |= 1 << (Math.floor(r() * V) & 31);
  const any = Array.from({ length: V }, (_, i) => (m[i >>> 5] >>> (i & 31)) & 1).some(Boolean);
  if (!any) m[0] |= 1;
  return m;
}
const allowed = (m: Uint32Array, i: number) => ((m[i >>> 5] >>> (i & 31)) & 1) === 1;

for (const prec of ['f32', 'f16'] as const) {
  describe(`masked sampler ${prec}`, () => {
    it('draws only allowed tokens and matches the reference, with bias and logprobs', async () => {
      const r = rng(prec === 'f32' ? 77 : 78);
      const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
      let skipped = 0;
      let compared = 0;
      let lpErr = 0;
      for (let c = 0; c < 24; c++) {
        const V = pick([7, 33, 257, 1000, 4097, 32000]);
        let x = randn(V, 900 + c, 1 + 3 * r());
        if (prec === 'f16') x = roundF16(x);
        const mask = c % 4 === 3 ? new Uint32Array(Math.ceil(V / 32)).fill(0xffffffff) : randomMask(V, pick([0.002, 0.05, 0.5]), r);
        const bias = new Float32Array(V);
        const withBias = c % 3 !== 0;
        if (withBias) for (let n = 0; n < 5; n++) bias[Math.floor(r() * V)] = pick([-100, -5, 3, 100]);
        const seen = new Set<number>();
        for (let n = Math.min(50, V >> 2); n > 0; n--) seen.add(Math.floor(r() * V));
        const p: SamplingParams = validateSamplingParams({
          temperature: pick([0, 0.5, 1, 1.5]),
          topK: r() < 0.5 ? 0 : pick([1, 5, 40]),
          topP: r() < 0.5 ? 1 : 0.5 + 0.45 * r(),
          minP: r() < 0.7 ? 0 : 0.05,
          repetitionPenalty: r() < 0.5 ? 1 : 1.3,
          seed: Math.floor(r() * 2 ** 32),
        });
        const topN = pick([0, 1, 5, 20]);
        const extras: SampleExtras = { mask: true, bias: withBias, topLogprobs: topN };
        const logits = ctx.uploadFloat(x, [V], prec);
        const state = makeState(V, seen, mask, bias);
        const refExtras = { mask, bias: withBias ? bias : undefined };
        const refSeen = new Set(seen);
        for (let s = 0; s < 3; s++) {
          const t = referenceSampleTrace(x, refSeen, p, samplerUniform(p.seed, s), refExtras);
          const lpRef = referenceLogprobs(x, refSeen, p, t.token, topN, refExtras);
          writeSamplerStep(ctx, state, s, p.seed);
          const rec = ctx.record();
          sampleToken(ctx, rec, logits, state, p, extras);
          await rec.submit();
          const got = (await ctx.read(state.next))[0];
          const where = `case ${c} step ${s} V=${V} ${JSON.stringify(p)}`;
          expect(allowed(mask, got), `${where}: drew masked token ${got}`).toBe(true);
          if (t.margin >= MARGIN) {
            compared++;
            expect(got, where).toBe(t.token);
            const lp = decodeLogprobs((await ctx.read(state.lp)) as Uint32Array, (s % 4) * LOGPROB_WORDS, topN);
            expect(lp.token).toBe(got);
            lpErr = Math.max(lpErr, Math.abs(lp.logprob - lpRef.logprob));
            expect(lp.top.map((e) => e.token), `${where}: top ids`).toEqual(lpRef.top.map((e) => e.token));
            lp.top.forEach((e, i) => (lpErr = Math.max(lpErr, Math.abs(e.logprob - lpRef.top[i].logprob))));
          } else skipped++;
          refSeen.add(got);
        }
        logits.dispose();
        dispose(state);
      }
      console.log(`${prec}: ${compared} masked steps compared, ${skipped} skipped near a boundary, logprob max abs error ${lpErr.toExponential(2)}`);
      expect(lpErr).toBeLessThanOrEqual(LP_TOL);
      expect(skipped).toBeLessThanOrEqual(3);
    });

    it('a bias of +100 makes a token the argmax; the mask overrides the bias', async () => {
      const V = 300;
      let x = randn(V, 5, 2);
      if (prec === 'f16') x = roundF16(x);
      const bias = new Float32Array(V);
      bias[123] = 100;
      bias[7] = 100;
      const all = new Uint32Array(Math.ceil(V / 32)).fill(0xffffffff);
      const no7 = all.slice();
      no7[0] &= ~(1 << 7);
      const logits = ctx.uploadFloat(x, [V], prec);
      for (const [mask, want] of [[all, x[7] >= x[123] ? 7 : 123], [no7, 123]] as const) {
        const state = makeState(V, [], mask, bias);
        const rec = ctx.record();
        sampleToken(ctx, rec, logits, state, validateSamplingParams({}), { mask: true, bias: true });
        await rec.submit();
        expect((await ctx.read(state.next))[0]).toBe(want);
        dispose(state);
      }
      logits.dispose();
    });
  });
}
