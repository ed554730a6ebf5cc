/** quantization_config -> the format reader that will read each quantized Linear. */
import type { JsonObject, JsonValue } from '../../io/json.ts';
import { parseAwq } from './awq.ts';
import { parseBitsandbytes } from './bitsandbytes.ts';
import { ImportError, isJsonObject, lookup, shown, type ImportedLinear, type ImportFormat } from './common.ts';
import { parseCompressedTensors } from './compressed-tensors.ts';
import { parseGptq } from './gptq.ts';
import type { IntWeight } from './int-weight.ts';

/** Reads an imported Linear whole: groups, then codes. */
export async function readImported(lin: ImportedLinear): Promise<IntWeight> {
  const groups = await lin.readGroups();
  checkScales(lin, groups.scales);
  return { N: lin.N, K: lin.K, bits: lin.bits, ...groups, codes: await lin.readCodes() };
}

/**
 * Scales come from the file: NaN, an infinity, or one so large that a code times it overflows f32
 * would make the layer's outputs NaN or infinite, for every text. Refused, naming the Linear.
 */
function checkScales(lin: ImportedLinear, scales: Float32Array): void {
  const max = 3.4e38 / 2 ** (lin.bits + 1);
  for (let i = 0; i < scales.length; i++) {
    const s = scales[i];
    if (!(Math.abs(s) <= max)) {
      throw new ImportError('QUANT_IMPORT_VALUES', `${lin.base}: scale ${i} (row ${Math.floor(i / (scales.length / lin.N))}) is ${s}; a ${lin.bits}-bit weight's scales must be finite and at most ${max.toExponential(2)} in size`);
    }
  }
}

const READERS: Record<string, (qc: JsonObject, source: string) => ImportFormat> = {
  gptq: parseGptq,
  awq: parseAwq,
  'compressed-tensors': parseCompressedTensors,
  bitsandbytes: parseBitsandbytes,
};

const KNOWN_UNSUPPORTED: Record<string, string> = {
  exl2: 'ExLlamaV2 (EXL2)',
  exllamav2: 'ExLlamaV2 (EXL2)',
  gguf: 'GGUF',
  hqq: 'HQQ',
  aqlm: 'AQLM',
  quanto: 'optimum-quanto',
  eetq: 'EETQ',
  fp8: 'FP8',
  fbgemm_fp8: 'FBGEMM FP8',
  torchao: 'torchao',
  bitnet: 'BitNet',
  vptq: 'VPTQ',
  higgs: 'HIGGS',
  spqr: 'SpQR',
  mxfp4: 'MXFP4',
};

/**
 * The import format config.json's `quantization_config` declares, or null when there is none (or
 * it stores float weights: compressed-tensors "dense"). Unsupported methods and variants are
 * ImportErrors naming them.
 */
export function parseQuantizationConfig(qc: JsonValue | undefined, source = 'config.json'): ImportFormat | null {
  if (qc === undefined || qc === null) return null;
  if (!isJsonObject(qc)) throw new ImportError('QUANT_IMPORT_CONFIG', `${source}: quantization_config must be an object, got ${shown(qc)}`);
  const supported = 'webq reads gptq, awq (gemm), compressed-tensors (pack-quantized, int-quantized) and bitsandbytes (int8) checkpoints';
  if (qc.quant_method !== undefined && typeof qc.quant_method !== 'string') {
    throw new ImportError('QUANT_IMPORT_CONFIG', `${source}: quantization_config.quant_method must be a string, got ${shown(qc.quant_method)}; ${supported}`);
  }
  const method = qc.quant_method?.toLowerCase();
  if (method === undefined) throw new ImportError('QUANT_IMPORT_CONFIG', `${source}: quantization_config has no quant_method; ${supported}`);
  if (method === 'compressed-tensors' && qc.format === 'dense' && !qc.config_groups) return null;
  // "__proto__", "constructor" and the like are names like any other here.
  const read = lookup(READERS, method);
  if (!read) {
    const known = lookup(KNOWN_UNSUPPORTED, method);
    const name = known ? `${known} (quant_method "${method}")` : `quant_method ${shown(qc.quant_method)}`;
    throw new ImportError('QUANT_IMPORT_UNSUPPORTED', `${source}: ${name} is not supported; ${supported}`);
  }
  return read(qc, source);
}
