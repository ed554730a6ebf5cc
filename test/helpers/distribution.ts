/**
 * Plain float64 distribution maths for tests that compare a model's logits with a reference:
 * written here, apart from src/quant/guard.ts, so a test does not check the library with itself.
 */

/** Softmax in float64 (max subtracted first). */
export function softmax(x: ArrayLike<number>): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < x.length; i++) mx = Math.max(mx, x[i]);
  const p = new Float64Array(x.length);
  let s = 0;
  for (let i = 0; i < x.length; i++) s += p[i] = Math.exp(x[i] - mx);
  for (let i = 0; i < x.length; i++) p[i] /= s;
  return p;
}

/** Index of the largest value (the first on a tie). */
export function argmax(x: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[b]) b = i;
  return b;
}

/** KL(softmax(want) || softmax(got)) for one position's logits. */
export function klDivergence(want: ArrayLike<number>, got: ArrayLike<number>): number {
  const p = softmax(want);
  const q = softmax(got);
  let kl = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > 0) kl += p[i] * Math.log(p[i] / Math.max(q[i], 1e-300));
  return kl;
}
