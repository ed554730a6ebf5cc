/**
 * LLaMA-family checkpoints (Hugging Face layout) -> a typed weight table, every tensor resolved and
 * shape-checked against config.json up front, so a wrong checkpoint fails here naming the tensor.
 * Names (layer i; nh heads, nkv KV heads, head dim D, hidden H, intermediate I, vocab V):
 *
 *   model.embed_tokens.weight                     [V, H]      (a pre-quantized file may pack it)
 *   model.layers.i.input_layernorm.weight         [H]
 *   model.layers.i.self_attn.q_proj.weight        [nh D, H]   (.bias: Qwen2, attention_bias)
 *   model.layers.i.self_attn.k_proj / v_proj      [nkv D, H]
 *   model.layers.i.self_attn.o_proj.weight        [H, nh D]
 *   model.layers.i.self_attn.q_norm / k_norm      [D]         (Qwen3; OLMo 2: [nh D] / [nkv D])
 *   model.layers.i.post_attention_layernorm       [H]
 *   model.layers.i.post_feedforward_layernorm     [H]         (OLMo 2, which has no input_layernorm)
 *   model.layers.i.pre_feedforward_layernorm      [H]         (Gemma: all four norms; stored as w for a scale 1 + w)
 *   model.layers.i.mlp.gate_proj / up_proj        [I, H]
 *   model.layers.i.mlp.down_proj                  [H, I]
 *   Phi-3 instead: self_attn.qkv_proj [(nh + 2 nkv) D, H] and mlp.gate_up_proj [2I, H], each
 *   resolved as its row ranges (WeightRef.rows), so q, k, v, gate and up stay Linears of their own.
 *   model.norm.weight                             [H]
 *   lm_head.weight                                [V, H]      (absent when tie_word_embeddings)
 */
import { WebqError } from '../../errors.ts';
import type { DType } from '../../io/safetensors/dtypes.ts';
import type { TensorStore } from '../../io/safetensors/reader.ts';
import { parseQuantizationConfig } from '../../quant/imports/index.ts';
import { hasQuantized } from '../../quant/prequantized.ts';
import { FLOAT_DTYPES, importedRef, shapeText, type WeightRef } from '../weight-ref.ts';
import type { LlamaConfig } from './llama-config.ts';
import type { LinearPart } from '../upload.ts';

export class LlamaWeightsError extends WebqError {}

export interface LlamaLayerRefs {
  /** Before attention (input_layernorm); null where the norms follow the sublayers (OLMo 2). */
  readonly inputNorm: WeightRef | null;
  readonly q: LinearPart;
  readonly k: LinearPart;
  readonly v: LinearPart;
  readonly o: LinearPart;
  readonly qNorm: WeightRef | null;
  readonly kNorm: WeightRef | null;
  /** On the attention output, before the residual add (OLMo 2's post_attention_layernorm). */
  readonly attnOutNorm: WeightRef | null;
  /** Before the MLP (post_attention_layernorm); null where the norms follow the sublayers (OLMo 2). */
  readonly postNorm: WeightRef | null;
  /** On the MLP output, before the residual add (OLMo 2's post_feedforward_layernorm). */
  readonly mlpOutNorm: WeightRef | null;
  readonly gate: LinearPart;
  readonly up: LinearPart;
  readonly down: LinearPart;
}

export interface LlamaWeights {
  readonly embed: WeightRef;
  readonly layers: readonly LlamaLayerRefs[];
  readonly norm: WeightRef;
  /** null when the head is the embedding table (tie_word_embeddings). */
  readonly lmHead: WeightRef | null;
}


export function resolveLlamaWeights(store: TensorStore, cfg: LlamaConfig): LlamaWeights {
  const { hiddenSize: H, intermediateSize: I, headDim: D, numHeads: nh, numKvHeads: nkv, vocabSize: V } = cfg;
  const check = (name: string, shape: readonly number[], why: string): WeightRef => {
    const t = store.get(name);
    if (!t) throw new LlamaWeightsError('WEIGHTS_MISSING', `${store.name}: missing tensor "${name}"; expected ${shapeText(shape)} (${why})`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new LlamaWeightsError('WEIGHTS_SHAPE', `${store.name}: tensor "${name}" has shape ${shapeText(t.shape)}, expected ${shapeText(shape)} (${why})`);
    }
    if (!FLOAT_DTYPES.has(t.dtype)) throw new LlamaWeightsError('WEIGHTS_DTYPE', `${store.name}: tensor "${name}" is ${t.dtype}; expected a float dtype (F32, F16, BF16 or F64)`);
    return { key: name, name, shape, dtype: t.dtype };
  };
  // RMSNorm weights: Gemma's are offsets from 1, added on upload.
  const normW = (name: string, shape: readonly number[], why: string): WeightRef => {
    const r = check(name, shape, why);
    return cfg.normOffset ? { ...r, offset: cfg.normOffset } : r;
  };
  // GPTQ, AWQ, compressed-tensors or bitsandbytes, from config.json (an unsupported one throws here).
  const format = parseQuantizationConfig(cfg.quantizationConfig ?? undefined, 'config.json');
  // A Linear weight (or the embedding table) may be stored pre-quantized by webq, its packed
  // tensors checked on read, or by another tool (GPTQ, AWQ, ...), its headers checked here.
  const weight = (name: string, shape: readonly number[], why: string): WeightRef =>
    importedRef(store, format, name, name, shape) ??
    (!store.has(name) && hasQuantized(store, name) ? { key: name, name, shape, dtype: 'F32', quantized: true } : check(name, shape, why));
  const linear = (base: string, out: number, inp: number, why: string, bias: boolean): LinearPart => ({
    weight: weight(`${base}.weight`, [out, inp], why),
    bias: bias ? check(`${base}.bias`, [out], why) : null,
  });

  if (!store.has('model.embed_tokens.weight') && !hasQuantized(store, 'model.embed_tokens.weight')) {
    const bert = store.has('embeddings.word_embeddings.weight') || store.has('bert.embeddings.word_embeddings.weight');
    throw new LlamaWeightsError('WEIGHTS_MISSING', `${store.name}: missing tensor "model.embed_tokens.weight"; ${bert ? 'this looks like a BERT checkpoint' : `is this a ${cfg.architecture} checkpoint?`}`);
  }
  // Phi-3's fused Linears: the tensor checked whole, then one ref per row range. webq quantize packs
  // the fused tensor whole (rows are quantized independently, so a row range of the packed tensor
  // is that part's packing: upload.ts slices it); another tool's packing is not split.
  const fused = (base: string, out: readonly number[], why: string): LinearPart[] => {
    const name = `${base}.weight`;
    const total = out.reduce((a, b) => a + b, 0);
    let whole: WeightRef;
    if (!store.has(name) && importedRef(store, format, name, name, [total, H])) {
      throw new LlamaWeightsError('WEIGHTS_UNSUPPORTED', `${store.name}: tensor "${name}" is stored pre-quantized by another tool; webq splits ${cfg.modelType}'s fused Linears from float or webq-quantized weights only`);
    } else if (!store.has(name) && hasQuantized(store, name)) {
      const qv = store.get(`${name}.qvalues`)!;
      if (qv.shape.length !== 2 || qv.shape[0] !== total) {
        throw new LlamaWeightsError('WEIGHTS_SHAPE', `${store.name}: tensor "${name}.qvalues" has shape ${shapeText(qv.shape)}, expected ${total} rows (${why})`);
      }
      whole = { key: name, name, shape: [total, H], dtype: 'F32', quantized: true };
    } else {
      whole = check(name, [total, H], why);
    }
    let start = 0;
    return out.map((count) => ({ weight: { ...whole, shape: [count, H], rows: { start: (start += count) - count, count } }, bias: null }));
  };
  const hv = 'config.json hidden_size';
  const pre = cfg.norms === 'pre';
  const sandwich = cfg.norms === 'sandwich';
  const qkw = cfg.qkNormOver === 'head' ? ([[D], [D], 'head_dim'] as const) : ([[nh * D], [nkv * D], 'num_attention_heads (num_key_value_heads) x head_dim'] as const);
  const layers: LlamaLayerRefs[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const L = `model.layers.${i}`;
    const qw = `num_attention_heads x head_dim, hidden_size`;
    const kvw = `num_key_value_heads x head_dim, hidden_size`;
    const [q, k, v] = cfg.fusedProjections
      ? fused(`${L}.self_attn.qkv_proj`, [nh * D, nkv * D, nkv * D], '(num_attention_heads + 2 num_key_value_heads) x head_dim, hidden_size')
      : [linear(`${L}.self_attn.q_proj`, nh * D, H, qw, cfg.qkvBias), linear(`${L}.self_attn.k_proj`, nkv * D, H, kvw, cfg.qkvBias), linear(`${L}.self_attn.v_proj`, nkv * D, H, kvw, cfg.qkvBias)];
    const [gate, up] = cfg.fusedProjections
      ? fused(`${L}.mlp.gate_up_proj`, [I, I], '2 x intermediate_size, hidden_size')
      : [linear(`${L}.mlp.gate_proj`, I, H, 'intermediate_size, hidden_size', cfg.mlpBias), linear(`${L}.mlp.up_proj`, I, H, 'intermediate_size, hidden_size', cfg.mlpBias)];
    layers.push({
      inputNorm: pre || sandwich ? normW(`${L}.input_layernorm.weight`, [H], hv) : null,
      q,
      k,
      v,
      o: linear(`${L}.self_attn.o_proj`, H, nh * D, 'hidden_size, num_attention_heads x head_dim', cfg.oBias),
      qNorm: cfg.qkNorm ? normW(`${L}.self_attn.q_norm.weight`, qkw[0], qkw[2]) : null,
      kNorm: cfg.qkNorm ? normW(`${L}.self_attn.k_norm.weight`, qkw[1], qkw[2]) : null,
      attnOutNorm: pre ? null : normW(`${L}.post_attention_layernorm.weight`, [H], hv),
      postNorm: pre ? normW(`${L}.post_attention_layernorm.weight`, [H], hv) : sandwich ? normW(`${L}.pre_feedforward_layernorm.weight`, [H], hv) : null,
      mlpOutNorm: pre ? null : normW(`${L}.post_feedforward_layernorm.weight`, [H], hv),
      gate,
      up,
      down: linear(`${L}.mlp.down_proj`, H, I, 'hidden_size, intermediate_size', cfg.mlpBias),
    });
  }
  const extra = store.tensors.find((t) => t.name.startsWith(`model.layers.${cfg.numLayers}.`));
  if (extra) throw new LlamaWeightsError('WEIGHTS_EXTRA_LAYER', `${store.name}: has tensors for layer ${cfg.numLayers} (e.g. "${extra.name}"), but config.json num_hidden_layers is ${cfg.numLayers}`);
  let lmHead: WeightRef | null = null;
  if (!cfg.tieWordEmbeddings) lmHead = weight('lm_head.weight', [V, H], 'vocab_size, hidden_size; or set tie_word_embeddings');
  return {
    embed: weight('model.embed_tokens.weight', [V, H], 'config.json vocab_size, hidden_size'), // packed in webq-quant-2 files
    layers,
    norm: normW('model.norm.weight', [H], hv),
    lmHead,
  };
}
