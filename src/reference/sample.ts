/**
 * Plain-loop CPU reference for the GPU token sampler (src/ops/sample.ts), in Hugging Face
 * transformers' order: logit bias and constraint mask, repetition penalty, then temperature (or argmax), top-k, top-p, min-p, draw.
 * Tests compare the GPU's token with this one; nothing in the runtime calls it.
 *
 * The values the kernel computes in f32 (penalized scores, z = score * (1/temperature), z - max)
 * are rounded to f32 here too, so both sides see identical z. Masses and probabilities are summed
 * in f64: the GPU's f32 sums differ from them by rounding only, which matters only when a decision
 * sits within rounding of its boundary. referenceSampleTrace reports how far each decision was from
 * its boundary, so tests can pick cases away from such razor edges.
 */
import type { SamplingParams } from '../ops/sample.ts';

const f32 = Math.fround;

export interface SampleTrace {
  token: number;
  /**
   * Smallest relative distance of a float decision from its boundary: top-p's crossing
   * (mass / total vs topP), min-p (exp(z - max) / minP vs 1), the draw (cumulative mass / total vs u).
   * Infinity when no float decision was made (greedy, or only top-k, which compares exact values).
   */
  margin: number;
}

/** What the step reads beyond the logits: a constraint's bitmask (bit set = allowed) and a logit bias. */
export interface ReferenceExtras {
  mask?: Uint32Array; // [ceil(V/32)]
  bias?: Float32Array; // [V]
}

/** logits [V] (the last position), seen = ids already in the sequence, u in [0, 1) -> token id. */
export function referenceSample(logits: Float32Array, seen: Set<number>, p: SamplingParams, u: number, x: ReferenceExtras = {}): number {
  return referenceSampleTrace(logits, seen, p, u, x).token;
}

/**
 * The scores every filter starts from: 0. the bias is added and a token the mask disallows is
 * -inf, 1. the repetition penalty moves a seen token's score toward "less likely" on either sign.
 */
function scores(logits: Float32Array, seen: Set<number>, p: SamplingParams, x: ReferenceExtras): Float32Array {
  const V = logits.length;
  const pen = f32(p.repetitionPenalty), invPen = f32(1 / p.repetitionPenalty);
  const score = new Float32Array(V); // [V]
  for (let i = 0; i < V; i++) {
    if (x.mask && ((x.mask[i >>> 5] >>> (i & 31)) & 1) === 0) {
      score[i] = -Infinity;
      continue;
    }
    const s = x.bias ? f32(logits[i] + x.bias[i]) : logits[i];
    score[i] = p.repetitionPenalty !== 1 && seen.has(i) ? (s < 0 ? f32(s * pen) : f32(s * invPen)) : s;
  }
  return score;
}

/**
 * OpenAI's logprobs for a step: log softmax of the scores (bias, mask, penalty) over temperature
 * (1 when greedy), before top-k/top-p/min-p; the chosen token's and the topN highest (lowest id on
 * ties, tokens of probability 0 left out). Summed in f64.
 */
export function referenceLogprobs(logits: Float32Array, seen: Set<number>, p: SamplingParams, chosen: number, topN: number, x: ReferenceExtras = {}) {
  const score = scores(logits, seen, p, x);
  const invT = p.temperature === 0 ? 1 : f32(1 / p.temperature);
  const z = score.map((s) => f32(s * invT)); // [V]
  let zmax = -Infinity;
  for (const v of z) zmax = Math.max(zmax, v);
  let total = 0;
  for (const v of z) total += Math.exp(v - zmax);
  const lse = zmax + Math.log(total);
  const order = Array.from(z.keys()).filter((i) => z[i] > -Infinity).sort((a, b) => z[b] - z[a] || a - b);
  return { logprob: z[chosen] - lse, top: order.slice(0, topN).map((i) => ({ token: i, logprob: z[i] - lse })) };
}

export function referenceSampleTrace(logits: Float32Array, seen: Set<number>, p: SamplingParams, u: number, x: ReferenceExtras = {}): SampleTrace {
  const V = logits.length;
  const score = scores(logits, seen, p, x); // [V]

  // 2. Temperature 0: argmax, lowest index on ties.
  if (p.temperature === 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (score[i] > score[best]) best = i;
    return { token: best, margin: Infinity };
  }
  const invT = f32(1 / p.temperature);
  const z = new Float32Array(V); // [V]
  let zmax = -Infinity;
  for (let i = 0; i < V; i++) {
    z[i] = f32(score[i] * invT);
    if (z[i] > zmax) zmax = z[i];
  }
  const w = new Float64Array(V); // [V] unnormalized probability exp(z - max)
  for (let i = 0; i < V; i++) w[i] = Math.exp(f32(z[i] - zmax));
  const keep = new Uint8Array(V).fill(1); // [V]
  let margin = Infinity;

  // 3. Top-k: keep z >= the k-th largest z (ties kept).
  if (p.topK > 0 && p.topK < V) {
    const sorted = Float32Array.from(z).sort().reverse();
    const kth = sorted[p.topK - 1];
    for (let i = 0; i < V; i++) if (z[i] < kth) keep[i] = 0;
  }

  // 4. Top-p: the smallest set of highest tokens whose mass reaches topP (ties at the crossing kept).
  if (p.topP < 1) {
    const order: number[] = [];
    let total = 0;
    for (let i = 0; i < V; i++) if (keep[i]) { order.push(i); total += w[i]; }
    order.sort((a, b) => (z[a] > z[b] ? -1 : z[a] < z[b] ? 1 : 0)); // descending; -inf ties too
    const target = f32(p.topP) * total;
    let cum = 0, j = 0;
    while (j < order.length) {
      // Take a whole group of equal z at once: a tie is kept or dropped together.
      const v = z[order[j]];
      let group = 0;
      while (j < order.length && z[order[j]] === v) group += w[order[j++]];
      if (cum + group >= target) {
        margin = Math.min(margin, (cum + group - target) / total, (target - cum) / total);
        for (let i = 0; i < V; i++) if (z[i] < v) keep[i] = 0;
        break;
      }
      cum += group;
    }
  }

  // 5. Min-p: keep tokens whose probability is at least minP times the largest (over what remains).
  if (p.minP > 0) {
    let total = 0;
    for (let i = 0; i < V; i++) if (keep[i]) total += w[i];
    let top = 0;
    for (let i = 0; i < V; i++) if (keep[i]) top = Math.max(top, w[i] / total);
    const minP = f32(p.minP);
    for (let i = 0; i < V; i++) {
      if (!keep[i]) continue;
      margin = Math.min(margin, Math.abs(w[i] / minP - 1));
      if (w[i] / total < minP * top) keep[i] = 0;
    }
  }

  // 6. Draw: walk kept tokens in index order; the first whose cumulative mass exceeds u * total.
  let total = 0;
  for (let i = 0; i < V; i++) if (keep[i]) total += w[i];
  const target = u * total;
  let cum = 0, last = -1;
  for (let i = 0; i < V; i++) {
    if (!keep[i]) continue;
    if (w[i] > 0) last = i; // a -inf logit is never drawn, not even by the rounding guard
    if (cum + w[i] > target) {
      return { token: i, margin: Math.min(margin, (target - cum) / total, (cum + w[i] - target) / total) };
    }
    cum += w[i];
  }
  return { token: last, margin: 0 }; // u * total rounded up to total: the last kept token with mass
}
