/**
 * What the rest of webq asks of a forward, in one place: each registry entry names its forward
 * ('encoder' or 'decoder', registry.ts) and archOf() (archs.ts) hands back that forward's answers, so the
 * quantizer, calibration, `webq info` and `webq quantize`'s report look them up instead of
 * branching on the model type.
 *
 * Layout (issue #22, section 1): one folder per forward, holding its config, weights, forward
 * and its ModelArch (bert/arch.ts: bert, roberta, xlm-roberta, distilbert, mpnet, modernbert;
 * llama/arch.ts: the llama family, Gemma). What every family shares stays here in src/models/:
 * the registry, this interface and its lookup (archs.ts), weight refs and tensor checks
 * (weight-ref.ts), config-json.ts, upload.ts, prepare-linear.ts, memory-estimate.ts.
 * src/quantize/ and src/cli/ ask archOf(config) instead of branching on the model type; src/delta/
 * reaches the families only through planQuantized; src/worker/ branches on the API class it runs
 * (BertModel or LlmModel), not on a family. Still outside the folders: parseBertConfig and
 * BertConfig (config.ts, beside the dispatch), the Linear units (src/quantize/units.ts) and the
 * calibration runners (src/quantize/encoder-runner.ts, decoder-runner.ts: they use generate/'s KV
 * cache). A family under an existing forward touches its folder, registry.ts and the README table.
 */
import type { TensorStore } from '../io/safetensors/reader.ts';
import type { Activations, LinearDType } from '../ops/linear.ts';
import type { WeightRef } from './weight-ref.ts';
import type { ModelConfig } from './config.ts';
import type { MemoryEstimate } from './memory-estimate.ts';
import type { ModelTypeEntry } from './registry.ts';
import type { EmbeddingDType, TableSpecs } from './upload.ts';

/** Which tensors a checkpoint keeps, which are Linear weights and tables, and the loader's defaults for them. */
export interface TensorRoles {
  all: WeightRef[];
  linears: Set<string>;
  tables: Set<string>;
  tableSpecs: TableSpecs;
  tableDefault: EmbeddingDType;
  defaultGroup?: number | 'channel';
  /** The loader's symmetric default for the Linears (bertQuantDefaults). */
  defaultSymmetric?: boolean;
  /** The loader's range search default for the Linears (llamaQuantDefaults). */
  defaultClipSearch?: boolean;
}

export interface ModelArch<C extends ModelConfig = ModelConfig> {
  readonly forward: ModelTypeEntry['forward'];
  /** The dtype a load uses when neither the caller nor the checkpoint names one. */
  readonly defaultDType: LinearDType;
  /** What a default load of a `dtype` checkpoint does with the quantized Linears' input. */
  defaultActivations(dtype: LinearDType): Activations;
  /** What each tensor is to `webq quantize` (throws for a layout it cannot write). */
  tensorRoles(store: TensorStore, config: C, dtype: LinearDType): TensorRoles;
  /**
   * Mixed precision's base options where the forward's own q4 defaults differ from the plain q4
   * spec its candidates start from (and its table default where the q4 file dtype would change it).
   */
  readonly mixedDefaults: { embeddings?: EmbeddingDType; group?: number; symmetric?: boolean };
  /** The padding id calibration's tokenizer pads batches with (encoders run batches), if any. */
  padTokenId(config: C): number | undefined;
  /**
   * Calibration text without --calib: 'built-in' reads the built-in text (encoders); 'sampled'
   * has the float model write its own (decoders: text its tokenizer can always read).
   */
  readonly calibration: 'built-in' | 'sampled';
  /**
   * webq's GPU memory estimate (memory-estimate.ts) at `dtype`: a decoder at `context` positions
   * with a KV cache as precise as its activations; an encoder for one batch of its longest input.
   */
  estimate(config: C, o: { dtype: LinearDType; f16: boolean; context: number }): MemoryEstimate;
}
