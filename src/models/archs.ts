/** Each forward's ModelArch (arch.ts), looked up through the registry entry's `forward`. */
import type { ModelArch } from './arch.ts';
import type { BertConfig, ModelConfig } from './config.ts';
import { decoderArch } from './llama/arch.ts';
import { encoderArch } from './bert/arch.ts';
import type { LlamaConfig } from './llama/llama-config.ts';
import { modelTypeEntry, type ModelTypeEntry } from './registry.ts';

const ARCHS: { readonly [F in ModelTypeEntry['forward']]: ModelArch<F extends 'encoder' ? BertConfig : LlamaConfig> } = { encoder: encoderArch, decoder: decoderArch };

/** The forward of a registry model_type (the encoders' configs all say 'bert'), or undefined when webq does not run it. */
export function archFor(modelType: string): ModelArch | undefined {
  const entry = modelTypeEntry(modelType);
  return entry && (ARCHS[entry.forward] as ModelArch);
}

/** The forward that runs a parsed config. */
export function archOf(config: ModelConfig): ModelArch {
  return archFor(config.modelType)!; // a parsed config's model type is always in the registry
}
