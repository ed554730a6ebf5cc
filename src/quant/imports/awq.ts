/**
 * AWQ checkpoints, GEMM version (AutoAWQ, llm-awq exports; `quant_method: "awq"`). A Linear with
 * K inputs, N outputs and group G (4 bits only) is stored as
 *
 *   qweight  I32 [K, N/8]     row k's codes packed along N, interleaved: nibble i (bits 4i) of
 *                             word c holds column 8c + AWQ_ORDER[i], AWQ_ORDER = [0,2,4,6,1,3,5,7]
 *   qzeros   I32 [K/G, N/8]   the true zero points, packed the same way
 *   scales   F16 [K/G, N]
 *
 * and dequantizes (AutoAWQ's dequantize_gemm) as
 *   W[k][n] = (code[k][n] - zero[k/G][n]) * scales[k/G][n]
 * after unpacking nibbles in position order and undoing the interleave (AWQ_REVERSE_ORDER).
 * Other AWQ versions pack differently (GEMV: along K; Marlin, ExLlama, IPEX: repacked for their
 * kernels) and are named as unsupported.
 */
import type { JsonObject } from '../../io/json.ts';
import type { TensorStore } from '../../io/safetensors/reader.ts';
import { checkBits, configFields, contiguousGroups, expectTensor, groupText, ImportError, readF32, readWords, shown, type ImportFormat, type ImportedLinear } from './common.ts';

/** Column (within a word's 8) held by nibble i. */
export const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] as const;

export function parseAwq(qc: JsonObject, source: string): ImportFormat {
  const f = configFields(qc, source);
  const bits = checkBits(f.int('bits', f.int('w_bit', 4)), f.where, 'AWQ');
  if (bits !== 4) throw new ImportError('QUANT_IMPORT_UNSUPPORTED', `${f.where}: AWQ ${bits}-bit weights are not supported; AWQ GEMM checkpoints are 4-bit`);
  const group = f.int('group_size', f.int('q_group_size', 128));
  if (group !== -1 && group < 1) throw f.bad('group_size', 'a positive integer or -1 (one group per row)');
  const version = (f.str('version') ?? 'gemm').toLowerCase();
  if (version !== 'gemm') {
    throw new ImportError('QUANT_IMPORT_UNSUPPORTED', `${f.where}: AWQ version ${shown(version)} is not supported (its weights are packed for that kernel); webq reads AWQ "gemm" checkpoints`);
  }
  const zeroPoint = f.bool('zero_point', true);

  const linear = (store: TensorStore, base: string, N: number, K: number): ImportedLinear | null => {
    const qweight = `${base}.qweight`;
    if (!store.has(qweight)) return null;
    const G = group === -1 ? K : group;
    const why = `a [${N}, ${K}] Linear at 4 bits, ${groupText(G, K)} (config.json quantization_config)`;
    if (N % 8 !== 0) throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: "${qweight}": AWQ packs 8 codes per int32 along the outputs, so the Linear's ${N} outputs must be a multiple of 8`);
    if (K % G !== 0) throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: "${qweight}": group_size ${G} does not divide the Linear's ${K} inputs`);
    const groups = K / G;
    expectTensor(store, qweight, ['I32', 'U32'], [K, N / 8], why);
    expectTensor(store, `${base}.qzeros`, ['I32', 'U32'], [groups, N / 8], why);
    expectTensor(store, `${base}.scales`, ['F16', 'BF16', 'F32'], [groups, N], why);
    /** Unpacks a [rows, N/8] AWQ-packed tensor into [N, rows] (transposed: webq rows are outputs). */
    const unpack = (words: Uint32Array, rows: number, put: (n: number, r: number, v: number) => void) => {
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < N / 8; c++) {
          const word = words[r * (N / 8) + c];
          for (let i = 0; i < 8; i++) put(8 * c + AWQ_ORDER[i], r, (word >>> (4 * i)) & 0xf);
        }
      }
    };
    return {
      base, N, K, bits: 4, symmetric: false,
      tensors: [qweight, `${base}.qzeros`, `${base}.scales`],
      readGIdx: async () => contiguousGroups(K, G),
      async readGroups() {
        const s = await readF32(store, `${base}.scales`);
        const scales = new Float32Array(N * groups);
        const zeros = new Float32Array(N * groups);
        for (let g = 0; g < groups; g++) for (let n = 0; n < N; n++) scales[n * groups + g] = s[g * N + n];
        unpack(await readWords(store, `${base}.qzeros`), groups, (n, g, z) => (zeros[n * groups + g] = z));
        return { groups, gIdx: contiguousGroups(K, G), scales, zeros };
      },
      async readCodes() {
        const codes = new Uint8Array(N * K);
        unpack(await readWords(store, qweight), K, (n, k, v) => (codes[n * K + k] = v));
        return codes;
      },
    };
  };

  return {
    method: 'awq',
    description: `AWQ GEMM 4-bit, ${group === -1 ? 'per channel' : `group ${group}`}, ${zeroPoint ? 'asymmetric (zero points)' : 'symmetric'}`,
    dtype: 'q4',
    marker: '.qweight',
    linear,
    async shapeOf(store, base) {
      const t = store.get(`${base}.qweight`)!;
      return [(t.shape[1] ?? 0) * 8, t.shape[0] ?? 0];
    },
  };
}
