/**
 * A GGUF decoder as webq's LLaMA family sees it: general.architecture -> model_type, the
 * `{arch}.*` hyperparameters -> a config.json, and llama.cpp's tensor names -> Hugging Face's
 * (src/models/llama/llama-weights.ts):
 *
 *   token_embd.weight            model.embed_tokens.weight
 *   output_norm.weight           model.norm.weight
 *   output.weight                lm_head.weight                  (absent: tied)
 *   blk.i.attn_norm.weight       model.layers.i.input_layernorm.weight
 *   blk.i.attn_q|k|v.weight/bias model.layers.i.self_attn.q_proj|k_proj|v_proj.weight/bias
 *   blk.i.attn_output.weight     model.layers.i.self_attn.o_proj.weight
 *   blk.i.attn_q_norm|k_norm     model.layers.i.self_attn.q_norm|k_norm.weight   (qwen3)
 *   blk.i.ffn_norm.weight        model.layers.i.post_attention_layernorm.weight
 *   blk.i.ffn_gate|up|down       model.layers.i.mlp.gate_proj|up_proj|down_proj
 *   rope_freqs.weight            (Llama 3.1 rope scaling factors: turned back into rope_scaling)
 *
 * Q/K rows. llama.cpp runs `llama` with GPT-J style RoPE (rotating adjacent pairs), so its
 * converter (convert_hf_to_gguf.py, LlamaModel.permute) reorders the rows of q_proj and k_proj
 * (and their biases) within each head: HF row h*D + i*D/2 + j (i = 0, 1) is stored at
 * h*D + 2j + i. webq rotates halves as Hugging Face does, so those rows are put back. Qwen2 and
 * Qwen3 use NeoX style RoPE in llama.cpp, which is Hugging Face's: nothing is permuted there.
 */
import { LLAMA_ARCHITECTURES, type LlamaModelType } from '../models/llama/llama-config.ts';
import { GgufError } from './errors.ts';
import { GgufMeta, type GgufHeader, type GgufTensor } from './parse.ts';

/** general.architecture -> the model_type webq runs it as, and whether its Q/K rows are permuted. */
const ARCHS: Record<string, { type: LlamaModelType; permuted: boolean }> = {
  llama: { type: 'llama', permuted: true },
  mistral: { type: 'mistral', permuted: true },
  qwen2: { type: 'qwen2', permuted: false },
  qwen3: { type: 'qwen3', permuted: false },
};

export interface GgufModel {
  arch: string;
  modelType: LlamaModelType;
  /** config.json as a transformers export of that model_type would write it. */
  config: Record<string, unknown>;
  /** HF name -> GGUF tensor, with how its rows are permuted (heads of size D) if they are. */
  tensors: Map<string, { gguf: GgufTensor; permuteHeads: number | null; headDim: number }>;
}

const LAYER_NAMES: Record<string, string> = {
  'attn_norm.weight': 'input_layernorm.weight',
  'attn_q.weight': 'self_attn.q_proj.weight',
  'attn_q.bias': 'self_attn.q_proj.bias',
  'attn_k.weight': 'self_attn.k_proj.weight',
  'attn_k.bias': 'self_attn.k_proj.bias',
  'attn_v.weight': 'self_attn.v_proj.weight',
  'attn_v.bias': 'self_attn.v_proj.bias',
  'attn_output.weight': 'self_attn.o_proj.weight',
  'attn_output.bias': 'self_attn.o_proj.bias',
  'attn_q_norm.weight': 'self_attn.q_norm.weight',
  'attn_k_norm.weight': 'self_attn.k_norm.weight',
  'ffn_norm.weight': 'post_attention_layernorm.weight',
  'ffn_gate.weight': 'mlp.gate_proj.weight',
  'ffn_gate.bias': 'mlp.gate_proj.bias',
  'ffn_up.weight': 'mlp.up_proj.weight',
  'ffn_up.bias': 'mlp.up_proj.bias',
  'ffn_down.weight': 'mlp.down_proj.weight',
  'ffn_down.bias': 'mlp.down_proj.bias',
};

const TOP_NAMES: Record<string, string> = {
  'token_embd.weight': 'model.embed_tokens.weight',
  'output_norm.weight': 'model.norm.weight',
  'output.weight': 'lm_head.weight',
};

/** Llama 3.1's rope scaling factors per frequency, as transformers (and ropeInvFreq) compute them. */
function llama3Factors(D: number, theta: number, s: { factor: number; low: number; high: number; orig: number }): Float64Array {
  const out = new Float64Array(D / 2);
  for (let i = 0; i < D / 2; i++) {
    const f = 1 / Math.pow(theta, (2 * i) / D);
    const wavelen = (2 * Math.PI) / f;
    const lowWavelen = s.orig / s.low;
    const highWavelen = s.orig / s.high;
    if (wavelen > lowWavelen) out[i] = s.factor;
    else if (wavelen < highWavelen) out[i] = 1;
    else {
      const smooth = (s.orig / wavelen - s.low) / (s.high - s.low);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/**
 * rope_freqs.weight (the converter's Llama 3.1 factors) -> the rope_scaling that makes them. The
 * converter writes them from factor, low/high_freq_factor and original_max_position_embeddings;
 * those are found again here (Llama 3's low 1 and high 4, the original context from metadata or
 * 8192) and checked to reproduce every factor.
 */
export function ropeScalingFromFactors(factors: Float32Array, D: number, theta: number, origMeta: number | undefined, where: string): Record<string, unknown> {
  const factor = Math.max(...factors);
  const candidates = [origMeta, 8192, 4096, 2048, 16384, 32768].filter((x): x is number => x !== undefined);
  for (const orig of candidates) {
    for (const [low, high] of [[1, 4], [1, 2], [1, 8], [2, 4]]) {
      const want = llama3Factors(D, theta, { factor, low, high, orig });
      if (want.every((w, i) => Math.abs(w - factors[i]) <= 1e-5 * Math.max(1, w))) {
        return { rope_type: 'llama3', factor, low_freq_factor: low, high_freq_factor: high, original_max_position_embeddings: orig };
      }
    }
  }
  throw new GgufError('GGUF_TENSOR', `${where}: rope_freqs.weight holds RoPE frequency factors that are not Llama 3.1's rope scaling (factor ${factor}); webq cannot run them`);
}

/** The architecture, config and tensor map of a GGUF decoder; anything webq cannot run is a GgufError. */
export function ggufModel(h: GgufHeader, ropeFactors: Float32Array | null): GgufModel {
  const m = new GgufMeta(h);
  const arch = m.str('general.architecture');
  if (arch === undefined) throw new GgufError('GGUF_METADATA', `${h.name}: metadata has no "general.architecture"; is this a model file?`);
  const known = ARCHS[arch];
  if (!known) throw new GgufError('GGUF_UNSUPPORTED_ARCH', `${h.name}: general.architecture "${arch}" is not supported; webq runs GGUF files of ${Object.keys(ARCHS).join(', ')}`);
  const k = (key: string) => `${arch}.${key}`;
  if (m.has('split.count') && m.int('split.count') > 1) {
    throw new GgufError('GGUF_BAD_FILE', `${h.name}: is shard ${m.int('split.no', 0) + 1} of ${m.int('split.count')} of a split GGUF model; webq reads single-file GGUF models (merge the shards with llama.cpp's llama-gguf-split --merge)`);
  }
  const byName = new Map(h.tensors.map((t) => [t.name, t]));
  const embd = byName.get('token_embd.weight');
  if (!embd || embd.shape.length !== 2) throw new GgufError('GGUF_TENSOR', `${h.name}: missing tensor "token_embd.weight" (the embedding table, [vocab, hidden])`);
  const H = m.int(k('embedding_length'));
  const L = m.int(k('block_count'));
  const nh = m.int(k('attention.head_count'));
  const kvEntry = h.metadata.get(k('attention.head_count_kv'));
  let nkv = nh;
  if (kvEntry && Array.isArray(kvEntry.value)) {
    const list = (kvEntry.value as unknown[]).map(Number);
    if (!list.every((x) => x === list[0])) throw new GgufError('GGUF_METADATA', `${h.name}: metadata "${k('attention.head_count_kv')}" differs between layers (${list.join(', ')}); webq needs one KV head count`);
    nkv = list[0];
  } else if (kvEntry) nkv = m.int(k('attention.head_count_kv'));
  const D = m.int(k('attention.key_length'), Math.floor(H / nh));
  const Dv = m.int(k('attention.value_length'), D);
  if (Dv !== D) throw new GgufError('GGUF_METADATA', `${h.name}: key_length ${D} and value_length ${Dv} differ; webq needs them equal`);
  const rot = m.int(k('rope.dimension_count'), D);
  if (rot !== D) throw new GgufError('GGUF_METADATA', `${h.name}: rope.dimension_count ${rot} is not the head dimension ${D}; webq rotates whole heads`);
  const theta = m.num(k('rope.freq_base'), 10000);
  const ctxLen = m.int(k('context_length'));
  let ropeScaling: Record<string, unknown> | null = null;
  const scalingType = m.str(k('rope.scaling.type'));
  if (scalingType === 'linear') ropeScaling = { rope_type: 'linear', factor: m.num(k('rope.scaling.factor')) };
  else if (scalingType !== undefined && scalingType !== 'none') throw new GgufError('GGUF_METADATA', `${h.name}: ${k('rope.scaling.type')} "${scalingType}" is not supported; webq implements linear and Llama 3.1 rope scaling`);
  if (ropeFactors) ropeScaling = ropeScalingFromFactors(ropeFactors, D, theta, m.has(k('rope.scaling.original_context_length')) ? m.int(k('rope.scaling.original_context_length')) : undefined, h.name);
  const has = (n: string) => byName.has(n);
  const window = arch === 'mistral' && m.has(k('attention.sliding_window')) ? m.int(k('attention.sliding_window')) : null;
  const type = known.type;
  const tok = (key: string) => (m.has(`tokenizer.ggml.${key}`) ? m.int(`tokenizer.ggml.${key}`) : undefined);
  const config: Record<string, unknown> = {
    architectures: [LLAMA_ARCHITECTURES[type]],
    model_type: type,
    hidden_size: H,
    intermediate_size: m.int(k('feed_forward_length')),
    num_hidden_layers: L,
    num_attention_heads: nh,
    num_key_value_heads: nkv,
    ...(type !== 'qwen2' && { head_dim: D }),
    max_position_embeddings: ctxLen,
    rms_norm_eps: m.num(k('attention.layer_norm_rms_epsilon'), 1e-6),
    rope_theta: theta,
    rope_scaling: ropeScaling,
    vocab_size: embd.shape[0],
    hidden_act: 'silu',
    tie_word_embeddings: !has('output.weight'),
    ...(type === 'llama' && { attention_bias: has('blk.0.attn_q.bias'), mlp_bias: has('blk.0.ffn_gate.bias') }),
    ...(type === 'qwen3' && { attention_bias: has('blk.0.attn_q.bias') }),
    ...(type === 'mistral' && { sliding_window: window }),
    ...((type === 'qwen2' || type === 'qwen3') && { use_sliding_window: false }),
    ...(tok('bos_token_id') !== undefined && { bos_token_id: tok('bos_token_id') }),
    ...(tok('eos_token_id') !== undefined && { eos_token_id: tok('eos_token_id') }),
    torch_dtype: 'float32',
  };
  if (H !== embd.shape[1]) throw new GgufError('GGUF_TENSOR', `${h.name}: token_embd.weight is [${embd.shape.join(', ')}], but ${k('embedding_length')} is ${H}`);

  const tensors: GgufModel['tensors'] = new Map();
  for (const t of h.tensors) {
    if (t.name === 'rope_freqs.weight') continue;
    let hf = TOP_NAMES[t.name];
    let permuteHeads: number | null = null;
    const blk = /^blk\.(\d+)\.(.+)$/.exec(t.name);
    if (blk && Number(blk[1]) < L && LAYER_NAMES[blk[2]]) {
      hf = `model.layers.${blk[1]}.${LAYER_NAMES[blk[2]]}`;
      if (known.permuted && /^attn_[qk]\./.test(blk[2])) permuteHeads = blk[2].startsWith('attn_q') ? nh : nkv;
    }
    if (!hf) {
      const moe = /_exps\.|ffn_gate_inp/.test(t.name) ? ' (a mixture-of-experts layer; webq runs dense models)' : '';
      throw new GgufError('GGUF_TENSOR', `${h.name}: unexpected tensor "${t.name}"${moe} in a ${arch} model with ${L} blocks`);
    }
    tensors.set(hf, { gguf: t, permuteHeads, headDim: D });
  }
  return { arch, modelType: type, config, tensors };
}

/** HF row r of a permuted q/k weight (heads of D rows) is stored at this GGUF row. */
export function permutedRow(r: number, D: number): number {
  const h = Math.floor(r / D);
  const w = r % D;
  const i = Math.floor(w / (D / 2));
  const j = w % (D / 2);
  return h * D + 2 * j + i;
}
