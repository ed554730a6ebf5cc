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
import { groupSums, quantizeActivations, readActivationCode } from '../quant/activations.ts';
import { readCode, validateQuantizedWeight, zeroPoint, type QuantizedWeight } from '../quant/layout.ts';
import { dequantizeWeight } from '../quant/rtn.ts';
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
 * dot4I8Packed kernel computes it:
 *
 *   x is quantized per token:  q_x [M, Kp] int8, s_x [M]          (quantizeActivations, K padded)
 *   per token t, output n, group g:
 *     acc_g  = sum_{k in g} q_x[t,k] * code_w[n,k]                  exact integer
 *     sum_g  = sum_{k in g} q_x[t,k]                                 exact integer (groupSums)
 *   out[t,n] = s_x[t] * sum_g s_w[n,g] * (acc_g - zero[n,g] * sum_g)   then bias / epilogue
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
): Float32Array {
  validateQuantizedWeight(q);
  if (q.K !== K) throw new ShapeError(`refW8A8: x has K=${K} but the weight has K=${q.K}`);
  const { N, Kp, groupSize: G, groups } = q;
  checkInputs('refW8A8', x, M, K, N, bias, epilogue);
  const a = quantizeActivations(x, M, K, Kp);
  const sums = groupSums(a, G);
  // Unpack once so the inner loop is plain integer arithmetic. [M, Kp] and [N, Kp].
  const qx = new Int32Array(M * Kp);
  for (let t = 0; t < M; t++) for (let k = 0; k < Kp; k++) qx[t * Kp + k] = readActivationCode(a, t, k);
  const qw = new Int32Array(N * Kp);
  for (let n = 0; n < N; n++) for (let k = 0; k < Kp; k++) qw[n * Kp + k] = readCode(q.values, q.bits, Kp, n, k);

  const out = new Float32Array(M * N);
  for (let t = 0; t < M; t++) {
    for (let n = 0; n < N; n++) {
      let acc = 0; // f64 sum over groups
      for (let g = 0; g < groups; g++) {
        let dot = 0; // |dot| <= 127 * 128 * G: exact here and fits an i32 on the GPU for G < 132k
        for (let k = g * G; k < (g + 1) * G; k++) dot += qx[t * Kp + k] * qw[n * Kp + k];
        acc += q.scales[n * groups + g] * (dot - zeroPoint(q, n, g) * sums[t * groups + g]);
      }
      out[t * N + n] = finish(a.scales[t] * acc, t, n, N, bias, epilogue);
    }
  }
  return out;
}
