/**
 * How far a quantized model's outputs are from the float model's on the same texts: the accuracy
 * guard of `webq quantize --max-error` and the report's whole-model numbers.
 *
 *   encoders  cosine of the mean-pooled embeddings per text; error = 1 - mean cosine
 *   decoders  per token, KL(p_float || p_quant) of the next-token distributions, and whether both
 *             pick the same top token; error = mean KL per token (nats)
 */
import { WebqError } from '../errors.ts';

export interface ModelError {
  kind: 'encoder' | 'decoder';
  /** The one number --max-error compares with (see above). */
  error: number;
  /** Encoders: mean and minimum cosine over the texts. */
  cosine?: { mean: number; min: number };
  /** Decoders: mean KL per token and the fraction of tokens whose top-1 agrees. */
  kl?: number;
  top1?: number;
  /** Texts (encoders) or tokens (decoders) compared. */
  count: number;
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) [ab, aa, bb] = [ab + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]];
  return aa === 0 || bb === 0 ? (aa === bb ? 1 : 0) : ab / Math.sqrt(aa * bb);
}

/** One embedding per text from each model. */
export function encoderError(ref: readonly Float32Array[], got: readonly Float32Array[]): ModelError {
  const c = ref.map((r, i) => cosine(r, got[i]));
  const mean = c.reduce((s, v) => s + v, 0) / c.length;
  return { kind: 'encoder', error: 1 - mean, cosine: { mean, min: Math.min(...c) }, count: c.length };
}

function logSoftmax(x: ArrayLike<number>, off: number, V: number, out: Float64Array): void {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, x[off + v]);
  let s = 0;
  for (let v = 0; v < V; v++) s += Math.exp(x[off + v] - m);
  const lse = m + Math.log(s);
  for (let v = 0; v < V; v++) out[v] = x[off + v] - lse;
}

/** Two models' next-token distributions compared position by position (compareLogits). */
export interface TokenComparison {
  /** KL(p_ref || p_got) at each position, nats. */
  kl: Float64Array;
  /** Positions where both models' likeliest token is the same. */
  agree: number;
  /** Sums of -log p(target) over the positions given a target (>= 0), for each model, and how many. */
  nllRef: number;
  nllGot: number;
  scored: number;
}

/**
 * Logits [T, V] of two models on the same ids; `targets` (optional, [T]) are the ids that came
 * next (a negative one: none), for each model's loss. Softmaxes in f64.
 */
export function compareLogits(ref: ArrayLike<number>, got: ArrayLike<number>, V: number, targets?: ArrayLike<number>): TokenComparison {
  const T = Math.floor(ref.length / V);
  const lp = new Float64Array(V);
  const lq = new Float64Array(V);
  const kl = new Float64Array(T);
  let agree = 0;
  let nllRef = 0;
  let nllGot = 0;
  let scored = 0;
  for (let t = 0; t < T; t++) {
    const off = t * V;
    logSoftmax(ref, off, V, lp);
    logSoftmax(got, off, V, lq);
    let k = 0;
    let ar = 0;
    let ag = 0;
    for (let v = 0; v < V; v++) {
      k += Math.exp(lp[v]) * (lp[v] - lq[v]);
      if (lp[v] > lp[ar]) ar = v;
      if (lq[v] > lq[ag]) ag = v;
    }
    kl[t] = Math.max(0, k);
    agree += ar === ag ? 1 : 0;
    const y = targets ? targets[t] : -1;
    if (y >= 0) {
      nllRef -= lp[y];
      nllGot -= lq[y];
      scored++;
    }
  }
  return { kl, agree, nllRef, nllGot, scored };
}

/** The q-th quantile (0..1) of `values` by nearest rank (0 for none). */
export function quantile(values: ArrayLike<number>, q: number): number {
  if (!values.length) return 0;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** Logits [T, V] per text from each model. */
export function decoderError(ref: readonly Float32Array[], got: readonly Float32Array[], V: number): ModelError {
  let kl = 0;
  let agree = 0;
  let tokens = 0;
  ref.forEach((r, i) => {
    const c = compareLogits(r, got[i], V);
    for (const k of c.kl) kl += k;
    agree += c.agree;
    tokens += c.kl.length;
  });
  return { kind: 'decoder', error: kl / tokens, kl: kl / tokens, top1: agree / tokens, count: tokens };
}

/** The error of outputs against the float model's, for either kind. */
export function modelError(kind: 'encoder' | 'decoder', ref: readonly Float32Array[], got: readonly Float32Array[], vocab: number): ModelError {
  return kind === 'encoder' ? encoderError(ref, got) : decoderError(ref, got, vocab);
}

export function describeError(e: ModelError): string {
  if (e.kind === 'encoder') return `embedding cosine vs float ${e.cosine!.mean.toFixed(5)} (min ${e.cosine!.min.toFixed(5)}, ${e.count} texts), error 1 - cosine = ${e.error.toExponential(2)}`;
  return `logit KL vs float ${e.kl!.toExponential(2)} per token, top-1 agreement ${(100 * e.top1!).toFixed(1)}% (${e.count} tokens)`;
}

/** Raised by --max-error: the quantized model is too far from the float one; nothing was written. */
export class AccuracyGuardError extends WebqError {
  constructor(message: string) {
    super('ACCURACY_GUARD', message);
  }
}
