/**
 * GPTQ checkpoints (AutoGPTQ, GPTQModel, optimum; `quant_method: "gptq"`). A Linear with K inputs,
 * N outputs, B bits (4 or 8) and group G (-1: one group, G = K) is stored as
 *
 *   qweight  I32 [K*B/32, N]      column n's codes packed along K: word i holds k = i*(32/B) + j
 *                                 at bits B*j ("element j of a word at bits B*j")
 *   qzeros   I32 [K/G, N*B/32]    zero points packed along N the same way; "gptq" (v1) files
 *                                 store zero - 1, "gptq_v2" the zero itself
 *   scales   F16 [K/G, N]
 *   g_idx    I32 [K]              group of each column (optional: k / G); with desc_act
 *                                 (act-order) GPTQ visits columns by Hessian order, so a
 *                                 group's columns are scattered and g_idx is not monotonic
 *
 * and dequantizes (AutoGPTQ's torch path, qlinear_cuda.py) as
 *   zero = ((qzeros >> B*j) & maxq) + 1          (v1; v2 without the + 1)
 *   W[k][n] = scales[g_idx[k]][n] * (((qweight >> B*j) & maxq) - zero[g_idx[k]][n])
 * A v1 zero of 0 has no encoding (zero - 1 wraps); AutoGPTQ's reader then gives 2^B, and so do we.
 * Symmetric files (sym: true) still store zero points, 2^(B-1), which map onto webq's implicit one.
 */
import type { JsonObject } from '../../io/json.ts';
import type { TensorStore } from '../../io/safetensors/reader.ts';
import { checkBits, configFields, contiguousGroups, expectTensor, groupText, ImportError, lookup, readF32, readGroupIndex, readWords, type ImportFormat, type ImportedLinear } from './common.ts';

const UNSUPPORTED_FORMATS: Record<string, string> = {
  marlin: 'Marlin-repacked GPTQ (checkpoint_format "marlin")',
  bitblas: 'BitBLAS-repacked GPTQ (checkpoint_format "bitblas")',
  ipex: 'IPEX-repacked GPTQ (checkpoint_format "ipex")',
};

export function parseGptq(qc: JsonObject, source: string): ImportFormat {
  const f = configFields(qc, source);
  const bits = checkBits(f.int('bits'), f.where, 'GPTQ');
  const group = f.int('group_size', -1);
  if (group !== -1 && group < 1) throw f.bad('group_size', 'a positive integer or -1 (one group per row)');
  const descAct = f.bool('desc_act', false);
  const sym = f.bool('sym', true);
  // transformers writes checkpoint_format, GPTQModel's quantize_config.json `format`; older AutoGPTQ is_marlin_format.
  const format = (f.str('checkpoint_format') ?? f.str('format') ?? 'gptq').toLowerCase();
  if (f.bool('is_marlin_format', false)) throw new ImportError('QUANT_IMPORT_UNSUPPORTED', `${f.where}: ${UNSUPPORTED_FORMATS.marlin} is not supported; use a checkpoint in the plain "gptq" format`);
  const repacked = lookup(UNSUPPORTED_FORMATS, format);
  if (repacked) throw new ImportError('QUANT_IMPORT_UNSUPPORTED', `${f.where}: ${repacked} is not supported; use a checkpoint in the plain "gptq" format`);
  if (format !== 'gptq' && format !== 'gptq_v2') throw f.bad(f.has('checkpoint_format') ? 'checkpoint_format' : 'format', '"gptq" or "gptq_v2"');
  const v2 = format === 'gptq_v2';
  const perWord = 32 / bits;
  const maxq = (1 << bits) - 1;

  const linear = (store: TensorStore, base: string, N: number, K: number): ImportedLinear | null => {
    const qweight = `${base}.qweight`;
    if (!store.has(qweight)) return null;
    const G = group === -1 ? K : group;
    const why = `a [${N}, ${K}] Linear at ${bits} bits, ${groupText(G, K)} (config.json quantization_config)`;
    if (K % perWord !== 0 || N % perWord !== 0) throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: "${qweight}": GPTQ packs ${perWord} ${bits}-bit codes per int32, so the Linear's [${N}, ${K}] must be multiples of ${perWord}`);
    if (K % G !== 0) throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: "${qweight}": group_size ${G} does not divide the Linear's ${K} inputs`);
    const groups = K / G;
    const t = store.get(qweight)!;
    const other = 12 - bits; // 4 <-> 8
    if (t.shape.length === 2 && t.shape[1] === N && t.shape[0] !== K / perWord && t.shape[0] === (K * other) / 32) {
      throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: tensor "${qweight}" is [${t.shape.join(', ')}], expected [${K / perWord}, ${N}] for ${why}; [${t.shape.join(', ')}] is ${other}-bit packing: does quantization_config's bits (${bits}) match the checkpoint?`);
    }
    expectTensor(store, qweight, ['I32', 'U32'], [K / perWord, N], why);
    expectTensor(store, `${base}.qzeros`, ['I32', 'U32'], [groups, N / perWord], why);
    expectTensor(store, `${base}.scales`, ['F16', 'BF16', 'F32'], [groups, N], why);
    const gIdxName = `${base}.g_idx`;
    const hasGIdx = store.has(gIdxName);
    if (hasGIdx) expectTensor(store, gIdxName, ['I32', 'I64'], [K], why);
    else if (descAct) throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: missing tensor "${gIdxName}"; desc_act (act-order) checkpoints need each column's group`);
    const readGIdx = async () => (hasGIdx ? readGroupIndex(store, gIdxName, K, groups) : contiguousGroups(K, G));
    return {
      base, N, K, bits, symmetric: sym,
      tensors: [qweight, `${base}.qzeros`, `${base}.scales`, ...(hasGIdx ? [gIdxName] : [])],
      readGIdx,
      async readGroups() {
        const gIdx = await readGIdx();
        const s = await readF32(store, `${base}.scales`); // [groups, N]
        const qz = await readWords(store, `${base}.qzeros`); // [groups, N / perWord]
        const scales = new Float32Array(N * groups);
        const zeros = new Float32Array(N * groups);
        for (let g = 0; g < groups; g++) {
          for (let n = 0; n < N; n++) {
            const word = qz[g * (N / perWord) + Math.floor(n / perWord)];
            const z = (word >>> (bits * (n % perWord))) & maxq;
            zeros[n * groups + g] = v2 ? z : z + 1;
            scales[n * groups + g] = s[g * N + n];
          }
        }
        return { groups, gIdx, scales, zeros };
      },
      async readCodes() {
        const qw = await readWords(store, qweight); // [K / perWord, N]
        const codes = new Uint8Array(N * K);
        for (let i = 0; i < K / perWord; i++) {
          for (let n = 0; n < N; n++) {
            const word = qw[i * N + n];
            for (let j = 0; j < perWord; j++) codes[n * K + i * perWord + j] = (word >>> (bits * j)) & maxq;
          }
        }
        return codes;
      },
    };
  };

  return {
    method: 'gptq',
    description: `GPTQ ${bits}-bit, ${group === -1 ? 'per channel' : `group ${group}`}, ${sym ? 'symmetric' : 'asymmetric'}${descAct ? ', act-order (desc_act)' : ''}, ${v2 ? 'gptq_v2 (true zero points)' : 'gptq v1 (zero points stored minus 1)'}`,
    dtype: bits === 8 ? 'q8' : 'q4',
    marker: '.qweight',
    linear,
    async shapeOf(store, base) {
      const t = store.get(`${base}.qweight`)!;
      return [t.shape[1] ?? 0, ((t.shape[0] ?? 0) * 32) / bits];
    },
  };
}
