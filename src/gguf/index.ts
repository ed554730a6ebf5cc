/**
 * GGUF files (llama.cpp's format) as webq models: header by @huggingface/gguf, llama.cpp's names
 * and Q/K row order -> Hugging Face's, ggml blocks -> webq's layouts, tokenizer from metadata.
 */
export { GgufError, type GgufErrorCode } from './errors.ts';
export { GGML_TYPES, ggmlTypeName, type GgmlType } from './ggml-types.ts';
export { dequantize } from './dequant.ts';
export { packWeight, packedSpec, type PackedWeight } from './pack.ts';
export { readGgufHeader, type GgufHeader, type GgufTensor } from './parse.ts';
export { ggufModel, type GgufModel } from './model.ts';
export { ggufTokenizer, type GgufTokenizer } from './tokenizer.ts';
export { GgufStore, defaultGgufDType } from './store.ts';
export { GgufFiles, isGgufLocation, openGgufFiles, openLlmFiles, type GgufOpenOptions } from './files.ts';
export { ggufReport, ggufReportText, type GgufReport } from './report.ts';
