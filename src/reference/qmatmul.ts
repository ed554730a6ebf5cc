/**
 * CPU reference Linear layers for testing the GPU kernels: plain loops, f64 accumulation.
 *
 * Shapes (HF convention):  x [M, K] row-major,  W [N, K] row-major,  bias [N],
 *                          residual [M, N],      out [M, N] = epilogue(x W^T + bias).
 *
 * Epilogue order: out = act(x W^T + bias) + residual, i.e. bias before the activation and the
 * residual after it (the usual "h + MLP(h)" / fused down-projection order). All of it is done in
 * f64 and rounded to f32 once at the end.
 */
import { ShapeError } from '../errors.ts';
import { quantizeActivations, readActivationCode } from '../quant/activations.ts';
import { readCode, validateQuantizedWeight, zeroPoint, type QuantizedWeight } from '../quant/layout.ts';
import { dequantizeWeight, roundHalfAway } from '../quant/rtn.ts';
import { gelu, silu } from './math.ts';

export interface Epilogue {
  activation?: 'gelu' | 'silu';
  /** [M, N], added after the activation. */
  residual?: Float32Array;
}

function checkInputs(fn: string, x: Float32Array, M: number, K: number, N: number, bias?: Float32Array, ep?: Epilogue): void {
  for (const [name, v] of [['M', M], ['K', K], ['N', N]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new ShapeError(`${fn}: ${name} must be a positive integer, got ${v}`);
  }
  if (x.length !== M * K) throw new ShapeError(`${fn}: x has ${x.length} elements, expected M*K = ${M}*${K} = ${M * K}`);
  if (bias !== undefined && bias.length !== N) throw new ShapeError(`${fn}: bias has ${bias.length} elements, expected N = ${N}`);
  if (ep?.residual !== undefined && ep.residual.length !== M * N) {
    throw new ShapeError(`${fn}: residual has ${ep.residual.length} elements, expected M*N = ${M}*${N} = ${M * N}`);
  }
  if (ep?.activation !== undefined && ep.activation !== 'gelu' && ep.activation !== 'silu') {
    throw new ShapeError(`${fn}: activation must be 'gelu' or 'silu', got ${JSON.stringify(ep.activation)}`);
  }
}

/** out[t, n] = act(acc + bias[n]) + residual[t, n], rounded to f32. */
function finish(acc: number, t: number, n: number, N: number, bias?: Float32Array, ep?: Epilogue): number {
  let v = acc + (bias !== undefined ? bias[n] : 0);
  if (ep?.activation === 'gelu') v = gelu(v);
  else if (ep?.activation === 'silu') v = silu(v);
  if (ep?.residual !== undefined) v += ep.residual[t * N + n];
  return v;
}

/** f32 Linear: x [M, K], w [N, K] -> [M, N] = epilogue(x w^T + bias). */
export function refLinear(
  x: Float32Array,
  M: number,
  K: number,
  w: Float32Array,
  N: number,
  bias?: Float32Array,
  epilogue?: Epilogue,
): Float32Array {
  checkInputs('refLinear', x, M, K, N, bias, epilogue);
  if (w.length !== N * K) throw new ShapeError(`refLinear: w has ${w.length} elements, expected N*K = ${N}*${K} = ${N * K}`);
  const out = new Float32Array(M * N);
  for (let t = 0; t < M; t++) {
    for (let n = 0; n < N; n++) {
      let acc = 0; // f64
      for (let k = 0; k < K; k++) acc += x[t * K + k] * w[n * K + k];
      out[t * N + n] = finish(acc, t, n, N, bias, epilogue);
    }
  }
  return out;
}

/** Weight-only quantized Linear: dequantize W to f32 (as a dequantizing kernel would), then refLinear. */
export function refQLinear(
  x: Float32Array,
  M: number,
  K: number,
  q: QuantizedWeight,
  bias?: Float32Array,
  epilogue?: Epilogue,
): Float32Array {
  if (q.K !== K) throw new ShapeError(`refQLinear: x has K=${K} but the weight has K=${q.K}`);
  return refLinear(x, M, K, dequantizeWeight(q), q.N, bias, epilogue);
}

/**
 * Integer-activation quantized Linear (W8A8, and W4A8 for 4-bit weights), exactly as a
 * dot4I8Packed kernel computes it, block by block of 32 along K:
 *
 *   x is quantized per token (one scale s_x[t]), per block of 32 (s_x[t, b]), or with one fixed
 *   scale (a number: static activations, codes clamped to +-127), K padded to Kp
 *   per token t, output n, block b (inside weight group g):
 *     dot_b  = sum_{k in b} q_x[t,k] * code_w[n,k]                  exact integer
 *     sum_b  = sum_{k in b} q_x[t,k]                                 exact integer
 *   out[t,n] = sum_b s_x[t,b] * s_w[n,g] * (dot_b - zero[n,g] * sum_b)   then bias / epilogue
 *
 * code_w is the stored code (int8 signed; int4 nibble 0..15) and zero the stored zero point
 * (int8 symmetric: 0, int4 symmetric: 8, asymmetric: zeros[n,g]).
 */
export function refW8A8(
  x: Float32Array,
  M: number,
  K: number,
  q: QuantizedWeight,
  bias?: Float32Array,
  epilogue?: Epilogue,
  actScales: 'token' | 'block' | number = 'token',
): Float32Array {
  validateQuantizedWeight(q);
  if (q.K !== K) throw new ShapeError(`refW8A8: x has K=${K} but the weight has K=${q.K}`);
  const { N, Kp, groupSize: G, groups } = q;
  checkInputs('refW8A8', x, M, K, N, bias, epilogue);
  if (Kp % 32 !== 0) throw new ShapeError(`refW8A8: Kp=${Kp} must be a multiple of 32`);
  const blocks = Kp / 32;
  // Codes [M, Kp] and scales [M, blocks]; per block means each block of 32 is its own "token".
  const qx = new Int32Array(M * Kp);
  const sx = new Float32Array(M * blocks);
  if (typeof actScales === 'number') {
    // Static (w8a8-static): one fixed scale; values past 127 scales clamp.
    sx.fill(actScales);
    for (let t = 0; t < M; t++) for (let k = 0; k < K; k++) qx[t * Kp + k] = Math.max(-127, Math.min(127, roundHalfAway(x[t * K + k] / actScales)));
  } else if (actScales === 'token') {
    const a = quantizeActivations(x, M, K, Kp);
    for (let t = 0; t < M; t++) {
      for (let k = 0; k < Kp; k++) qx[t * Kp + k] = readActivationCode(a, t, k);
      sx.fill(a.scales[t], t * blocks, (t + 1) * blocks);
    }
  } else {
    const xb = new Float32Array(M * Kp);
    for (let t = 0; t < M; t++) xb.set(x.subarray(t * K, (t + 1) * K), t * Kp);
    const a = quantizeActivations(xb, M * blocks, 32, 32);
    for (let r = 0; r < M * blocks; r++) for (let k = 0; k < 32; k++) qx[r * 32 + k] = readActivationCode(a, r, k);
    sx.set(a.scales);
  }
  const qw = new Int32Array(N * Kp);
  for (let n = 0; n < N; n++) for (let k = 0; k < Kp; k++) qw[n * Kp + k] = readCode(q.values, q.bits, Kp, n, k);

  const out = new Float32Array(M * N);
  for (let t = 0; t < M; t++) {
    for (let n = 0; n < N; n++) {
      let acc = 0; // f64 sum over blocks
      for (let b = 0; b < blocks; b++) {
        const g = Math.floor((b * 32) / G);
        let dot = 0;
        let sum = 0;
        for (let k = b * 32; k < (b + 1) * 32; k++) {
          dot += qx[t * Kp + k] * qw[n * Kp + k];
          sum += qx[t * Kp + k];
        }
        acc += sx[t * blocks + b] * q.scales[n * groups + g] * (dot - zeroPoint(q, n, g) * sum);
      }
      out[t * N + n] = finish(acc, t, n, N, bias, epilogue);
    }
  }
  return out;
}
