/**
 * Scalar math for CPU references, accurate to ~1e-15 relative (erf) so references are never the
 * weak side of a GPU comparison. No lookup tables or platform erf (JS has none).
 */

const TWO_OVER_SQRT_PI = 1.1283791670955126; // 2 / sqrt(pi)
const ONE_OVER_SQRT_PI = 0.5641895835477563; // 1 / sqrt(pi)
const SQRT1_2 = Math.SQRT1_2;

/**
 * erf for |x| < 2.5 via the all-positive series
 *   erf(x) = 2/sqrt(pi) * exp(-x^2) * sum_n (2x^2)^n x / (1*3*...*(2n+1)),
 * which has no cancellation (unlike the alternating Taylor series), so it is accurate to a few ulp.
 */
function erfSeries(x: number): number {
  const x2 = 2 * x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= x2 / (2 * n + 1);
    sum += term;
    if (Math.abs(term) <= 1e-17 * Math.abs(sum)) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x * x) * sum;
}

/**
 * erfc for x >= 2.5 via the continued fraction
 *   erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
 * evaluated with the modified Lentz method; it converges quickly for large x, where 1 - erf(x)
 * would lose all relative precision.
 */
function erfcContinuedFraction(x: number): number {
  if (x === Infinity) return 0;
  const tiny = 1e-300;
  let f = x;
  let C = f;
  let D = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n / 2;
    D = x + a * D;
    if (D === 0) D = tiny;
    C = x + a / C;
    if (C === 0) C = tiny;
    D = 1 / D;
    const delta = C * D;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return (ONE_OVER_SQRT_PI * Math.exp(-x * x)) / f;
}

/** The error function, |relative error| ~1e-15. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a < 2.5) return erfSeries(x);
  const r = 1 - erfcContinuedFraction(a);
  return x < 0 ? -r : r;
}

/** The complementary error function 1 - erf(x), accurate in relative terms for large x too. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 1 + erf(-x);
  if (x < 2.5) return 1 - erfSeries(x); // erfc >= 4e-4 here, so the subtraction loses < 4 digits
  return erfcContinuedFraction(x);
}

/** GELU, exact (erf) form: 0.5 * x * (1 + erf(x / sqrt 2)), written with erfc to keep x << 0 accurate. */
export function gelu(x: number): number {
  return 0.5 * x * erfc(-x * SQRT1_2);
}

/** SiLU (swish): x * sigmoid(x) = x / (1 + exp(-x)). */
export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}
