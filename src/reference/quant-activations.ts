/**
 * References and checkers for GPU per-token activation quantization (see src/quant/activations.ts
 * for the definition and packing).
 *
 * A GPU cannot be expected to reproduce every code bit-for-bit: its f32 division may be off by an
 * ulp or two, and WGSL's round() breaks ties to even. So `checkActivationQuant` accepts any code
 * c in -127..127 with |x - c*s| <= (s/2)(1 + relTol), which admits the reference code and, only at
 * near-ties, its neighbour; the scale must match the reference to relTol.
 */
import { ShapeError } from '../errors.ts';
import { groupSums, quantizeActivations, type QuantizedActivations } from '../quant/activations.ts';

export { quantizeActivations as refQuantizeActivations, groupSums as refGroupSums };
export type { QuantizedActivations };

/** Unpacks int8-packed rows [rows, Kp/4] u32 into [rows, Kp] int8 codes. */
export function unpackInt8Rows(values: Uint32Array, rows: number, Kp: number): Int8Array {
  if (Kp % 4 !== 0 || values.length < rows * (Kp / 4)) {
    throw new ShapeError(`unpackInt8Rows: need Kp % 4 == 0 and ${rows}*${Kp}/4 words, got Kp=${Kp}, ${values.length} words`);
  }
  const out = new Int8Array(rows * Kp);
  for (let i = 0; i < rows * Kp; i++) out[i] = (values[i >> 2] >>> ((i & 3) << 3)) & 0xff; // Int8Array wraps
  return out;
}

/**
 * Checks a GPU result (packed codes [M, Kp/4], scales [M]) against the definition for x [M, K].
 * Returns null when it is acceptable, else a message naming the first bad element. Padding codes
 * (k >= K) must be exactly 0.
 */
export function checkActivationQuant(
  x: Float32Array,
  M: number,
  K: number,
  Kp: number,
  gpuValues: Uint32Array,
  gpuScales: Float32Array,
  relTol = 1e-5,
): string | null {
  const ref = quantizeActivations(x, M, K, Kp);
  if (gpuScales.length < M) return `scales has ${gpuScales.length} entries, expected M = ${M}`;
  const codes = unpackInt8Rows(gpuValues, M, Kp);
  const refCodes = unpackInt8Rows(ref.values, M, Kp);
  for (let t = 0; t < M; t++) {
    const s = gpuScales[t];
    const r = ref.scales[t];
    if (Math.abs(s - r) > relTol * r) return `token ${t}: scale ${s}, expected ${r}`;
    for (let k = 0; k < Kp; k++) {
      const c = codes[t * Kp + k];
      if (k >= K) {
        if (c !== 0) return `token ${t}: padding code at k=${k} is ${c}, expected 0`;
        continue;
      }
      const v = x[t * K + k];
      if (c === -128 || Math.abs(v - c * s) > (s / 2) * (1 + relTol)) {
        return `token ${t}, k=${k}: x=${v} scale=${s} got code ${c}, expected ${refCodes[t * Kp + k]} (|x - c*s| must be <= s/2)`;
      }
    }
  }
  return null;
}
