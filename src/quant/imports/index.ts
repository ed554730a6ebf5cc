/**
 * Pre-quantized checkpoints of other tools, read as they are (no `webq quantize`): config.json's
 * `quantization_config.quant_method` picks the format, whose reader turns each quantized Linear
 * into the common integer form (int-weight.ts) and from there into webq's layout, one tensor at a
 * time as the model uploads.
 *
 *   gptq                 gptq.ts                 4/8-bit, groups, act-order g_idx, v1/v2 zeros
 *   awq                  awq.ts                  4-bit GEMM packing
 *   compressed-tensors   compressed-tensors.ts   pack-quantized / int-quantized, int4/int8
 *   bitsandbytes         bitsandbytes.ts         LLM.int8() (load_in_8bit)
 */
export { parseQuantizationConfig, readImported } from './formats.ts';
export { ImportError, type ImportDType, type ImportErrorCode, type ImportFormat, type ImportedLinear } from './common.ts';
export { importReport, importReportText, quantizationSection, type ImportReport } from './report.ts';
export { commonSpec, exactDequant, planLayout, relayout, specText, toWebq, REQUANT_SPEC, type IntGroups, type IntWeight, type LayoutPlan } from './int-weight.ts';
