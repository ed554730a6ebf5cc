/**
 * The model_type values webq runs: one line each, read by the config parsers (config.ts dispatches
 * on `forward`; llama-config.ts accepts exactly the decoders' architectures; the encoders' heads
 * come from their architectures), by the messages that list what is supported, and by
 * `webq models`. Adding a family is one line here plus its parser and forward.
 *
 *   forward       which forward runs it: 'encoder' (src/models/bert/bert.ts, BertConfig) or 'decoder'
 *                 (src/models/llama/llama.ts, LlamaConfig); what quantize, calibration and `webq info`
 *                 need of it is that forward's ModelArch (bert/arch.ts, llama/arch.ts; looked up in archs.ts)
 *   architectures config.json "architectures" -> the tasks it is used for. A decoder's config must
 *                 name one of its own (or none); an encoder loads whatever it names, as a bare
 *                 encoder (embed) unless it names one of the heads listed
 *   differs       what differs from the family's first entry, for `webq models`
 */

export type ModelTask = 'embed' | 'classify' | 'rerank' | 'token-classify' | 'generate';

export interface ModelTypeEntry {
  readonly modelType: string;
  readonly forward: 'encoder' | 'decoder';
  readonly architectures: Readonly<Record<string, readonly ModelTask[]>>;
  readonly differs: string;
}

/** An encoder's three task models, by its architecture prefix (Bert -> BertModel, BertForSequenceClassification, BertForTokenClassification). */
const encoder = (prefix: string) => ({ [`${prefix}Model`]: ['embed'], [`${prefix}ForSequenceClassification`]: ['classify', 'rerank'], [`${prefix}ForTokenClassification`]: ['token-classify'] }) as const;

export const MODEL_TYPES = [
  { modelType: 'bert', forward: 'encoder', architectures: encoder('Bert'), differs: 'absolute positions, token types, pooler + classifier head (MiniLM, bge, e5, sentence-transformers)' },
  { modelType: 'roberta', forward: 'encoder', architectures: encoder('Roberta'), differs: 'positions counted after the padding id, classifier.dense + out_proj head, byte-level BPE' },
  { modelType: 'xlm-roberta', forward: 'encoder', architectures: encoder('XLMRoberta'), differs: "RoBERTa's layout with a SentencePiece (Unigram) tokenizer (bge-m3, multilingual-e5)" },
  { modelType: 'distilbert', forward: 'encoder', architectures: encoder('DistilBert'), differs: 'its own tensor and config names, no token types, pre_classifier head' },
  { modelType: 'mpnet', forward: 'encoder', architectures: encoder('MPNet'), differs: 'relative position bias shared by every layer, no token types (all-mpnet-base-v2)' },
  { modelType: 'modernbert', forward: 'encoder', architectures: { ModernBertModel: ['embed'], ModernBertForSequenceClassification: ['classify', 'rerank'] }, differs: 'RoPE with global and local thetas, GeGLU, pre-norm layers, no biases, alternating global / local (sliding window) attention, embedding norm (gte-modernbert, ModernBERT-embed)' },
  { modelType: 'llama', forward: 'decoder', architectures: { LlamaForCausalLM: ['generate'] }, differs: 'optional attention/MLP biases, rope_scaling linear or llama3 (Llama 2/3, SmolLM)' },
  { modelType: 'mistral', forward: 'decoder', architectures: { MistralForCausalLM: ['generate'] }, differs: 'sliding window on every layer' },
  { modelType: 'qwen2', forward: 'decoder', architectures: { Qwen2ForCausalLM: ['generate'] }, differs: 'q/k/v biases, sliding window from max_window_layers' },
  { modelType: 'qwen3', forward: 'decoder', architectures: { Qwen3ForCausalLM: ['generate'] }, differs: 'per-head RMSNorm of q and k, explicit head_dim' },
  { modelType: 'granite', forward: 'decoder', architectures: { GraniteForCausalLM: ['generate'] }, differs: 'embedding, residual, attention and logits multipliers' },
  { modelType: 'olmo2', forward: 'decoder', architectures: { Olmo2ForCausalLM: ['generate'] }, differs: 'norms after each sublayer, q/k RMSNorm over all heads' },
  { modelType: 'smollm3', forward: 'decoder', architectures: { SmolLM3ForCausalLM: ['generate'] }, differs: 'NoPE layers (no RoPE every 4th layer)' },
  { modelType: 'phi3', forward: 'decoder', architectures: { Phi3ForCausalLM: ['generate'] }, differs: 'fused qkv / gate_up projections, longrope, partial rotary (Phi-3, Phi-4-mini)' },
  { modelType: 'gemma2', forward: 'decoder', architectures: { Gemma2ForCausalLM: ['generate'] }, differs: '(1 + w) norms, four per layer, GeGLU (tanh), sqrt(hidden) embeddings, attention and final logit soft-caps, sliding window on alternate layers' },
  { modelType: 'gemma3_text', forward: 'decoder', architectures: { Gemma3ForCausalLM: ['generate'] }, differs: "Gemma 2's layout without soft-caps, q/k norms, layer_types, local RoPE theta on sliding layers, linear rope_scaling on full layers" },
] as const satisfies readonly ModelTypeEntry[];

type Entry = (typeof MODEL_TYPES)[number];
export type SupportedModelType = Entry['modelType'];
export type EncoderFamily = Extract<Entry, { forward: 'encoder' }>['modelType'];
export type DecoderModelType = Extract<Entry, { forward: 'decoder' }>['modelType'];

/** The entry of `modelType`, or undefined when webq does not run it. */
export function modelTypeEntry(modelType: string): ModelTypeEntry | undefined {
  return (MODEL_TYPES as readonly ModelTypeEntry[]).find((e) => e.modelType === modelType);
}

/** Every task `entry`'s architectures are used for, in the order ModelTask lists them. */
export function tasksOf(entry: ModelTypeEntry): ModelTask[] {
  const all = new Set(Object.values(entry.architectures).flat());
  return (['embed', 'classify', 'rerank', 'token-classify', 'generate'] as const).filter((t) => all.has(t));
}

/** The architecture of `entry` used for `task` (e.g. the token-classification class, for messages), if any. */
export function architectureFor(entry: ModelTypeEntry, task: ModelTask): string | undefined {
  return Object.keys(entry.architectures).find((a) => entry.architectures[a].includes(task));
}
