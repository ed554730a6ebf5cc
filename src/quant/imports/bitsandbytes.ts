/**
 * bitsandbytes LLM.int8() checkpoints (`quant_method: "bitsandbytes"`, `load_in_8bit: true`).
 * A Linear [N, K] is stored as
 *
 *   weight  I8  [N, K]   CB = round(127 * W / absmax(row))
 *   SCB     F32 [N]      absmax of each row
 *
 * and dequantizes (bitsandbytes int8_vectorwise_dequant) as W = CB * SCB[n] * (1/127), in f32.
 * webq maps it onto int8 symmetric per channel with scale SCB / 127: the same codes. The reference
 * rounds twice (CB * SCB, then * 1/127), webq's layout once (code * scale), so the two can differ
 * in the last bit of f32; and on GPUs with shader-f16 the scale is held in f16 (layout.ts), as
 * for every webq weight. The outlier threshold (llm_int8_threshold) concerns activations; webq
 * keeps them in f16/f32 under q8, which is what the threshold approximates.
 * 4-bit bitsandbytes (nf4, fp4: load_in_4bit) is a lookup-table format and is named as unsupported.
 */
import type { JsonObject } from '../../io/json.ts';
import type { TensorStore } from '../../io/safetensors/reader.ts';
import { configFields, expectTensor, ImportError, named, readF32, type ImportFormat, type ImportedLinear } from './common.ts';

export function parseBitsandbytes(qc: JsonObject, source: string): ImportFormat {
  const f = configFields(qc, source);
  if (f.bool('load_in_4bit', false)) {
    const type = f.str('bnb_4bit_quant_type') ?? 'fp4';
    throw new ImportError('QUANT_IMPORT_UNSUPPORTED', `${f.where}: bitsandbytes 4-bit (${named(type)}, load_in_4bit) is not supported; webq reads bitsandbytes int8 (load_in_8bit) checkpoints`);
  }
  if (!f.bool('load_in_8bit', false)) throw new ImportError('QUANT_IMPORT_CONFIG', `${f.where}: bitsandbytes config sets neither load_in_8bit nor load_in_4bit`);

  const linear = (store: TensorStore, base: string, N: number, K: number): ImportedLinear | null => {
    const scb = `${base}.SCB`;
    if (!store.has(scb)) return null;
    const why = `a [${N}, ${K}] Linear in bitsandbytes int8 (config.json quantization_config)`;
    expectTensor(store, `${base}.weight`, ['I8'], [N, K], why);
    expectTensor(store, scb, ['F32', 'F16', 'BF16'], [N], why);
    return {
      base, N, K, bits: 8, symmetric: true,
      tensors: [`${base}.weight`, scb],
      readGIdx: async () => new Int32Array(K),
      async readGroups() {
        const absmax = await readF32(store, scb);
        const scales = new Float32Array(N);
        for (let n = 0; n < N; n++) scales[n] = absmax[n] / 127;
        return { groups: 1, gIdx: new Int32Array(K), scales, zeros: new Float32Array(N).fill(128) };
      },
      async readCodes() {
        const cb = (await store.readAs(`${base}.weight`, 'i8')) as Int8Array;
        const codes = new Uint8Array(N * K);
        for (let i = 0; i < cb.length; i++) codes[i] = cb[i] + 128;
        return codes;
      },
    };
  };

  return {
    method: 'bitsandbytes',
    description: 'bitsandbytes LLM.int8(): int8 symmetric per channel, scale SCB/127',
    dtype: 'q8',
    marker: '.SCB',
    linear,
    async shapeOf(store, base) {
      const t = store.get(`${base}.weight`);
      return [t?.shape[0] ?? 0, t?.shape[1] ?? 0];
    },
  };
}
