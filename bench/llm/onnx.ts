/**
 * The synthetic LLM as an ONNX decoder graph, built in memory for onnxruntime (`--ort`), shaped as
 * transformers.js' exported LLMs are (the onnxruntime-genai builder / optimum + ORT fusions):
 *
 *   inputs   input_ids int64 [1, S], attention_mask int64 [1, past + S],
 *            past_key_values.i.key / .value float [1, nkv, past, D]
 *   outputs  logits float [1, 1, V] (last position only, as webq computes them),
 *            present.i.key / .value float [1, nkv, past + S, D]
 *
 *   h = Gather(embed, input_ids)
 *   per layer:  x = SimplifiedLayerNormalization(h)            (layer 0)
 *               x, h = SkipSimplifiedLayerNormalization(mlp, h) (later layers: residual add + norm)
 *               q, k, v = Linear(x) (+ bias: Qwen2)
 *               a, present_k, present_v = GroupQueryAttention(q, k, v, past_k, past_v, seqlens_k,
 *                   total_sequence_length, cos_cache, sin_cache; do_rotary = 1)
 *               x, h = SkipSimplifiedLayerNormalization(Linear_o(a), h)
 *               mlp = Linear_down(Silu(Linear_gate(x)) * Linear_up(x))    (Silu = x * Sigmoid(x))
 *   x = SkipSimplifiedLayerNormalization(mlp, h); logits = LMHead(x[:, -1])
 *
 * seqlens_k = ReduceSum(attention_mask) - 1 and total_sequence_length = attention_mask.shape[1],
 * both int32, as the genai builder computes them. Linear layers, as transformers.js quantizes:
 *   fp32  MatMul with the weight transposed to [K, N]; the tied LM head is Gemm(x, embed, transB)
 *   q4    com.microsoft MatMulNBits, 4 bits, blocks of 32, symmetric (zero point 8), every Linear
 *         including the LM head (MatMul4BitsQuantizer quantizes every MatMul with a constant weight)
 * The embedding Gather stays fp32 in both, as in transformers.js' q4 files.
 */
import type { LlamaConfig } from '../../src/models/llama/llama-config.ts';
import { encodeModel, GraphBuilder, OnnxType } from '../ort/onnx.ts';

export type OrtLlmDType = 'fp32' | 'q4';

/** ONNX TensorProto.DataType INT32 (not in onnx.ts' table). */
const INT32 = 6;

export interface LlmOnnxOptions {
  /** cos/sin cache rows: the most positions a session will see. */
  maxPositions: number;
  /** MatMulNBits accuracy_level (0: unset, float math; 4: int8 activations where the EP has it). */
  accuracyLevel?: number;
}

/** Weights by Hugging Face name (f32), e.g. SyntheticLlamaStore.values. */
export type WeightSource = (name: string) => Float32Array;

/** 4-bit symmetric blocks of 32 along K, MatMulNBits' layout: B uint8 [N, K/32, 16] (even k in the low nibble), scales f32 [N, K/32]. */
export function packQ4(w: Float32Array, N: number, K: number): { packed: Uint8Array; scales: Float32Array } {
  const blocks = Math.ceil(K / 32);
  const packed = new Uint8Array(N * blocks * 16);
  const scales = new Float32Array(N * blocks);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      const k0 = 32 * b;
      const k1 = Math.min(K, k0 + 32);
      let amax = 0;
      for (let k = k0; k < k1; k++) amax = Math.max(amax, Math.abs(w[n * K + k]));
      const s = amax / 7 || 1;
      scales[n * blocks + b] = s;
      for (let k = k0; k < k1; k++) {
        const q = Math.min(7, Math.max(-8, Math.round(w[n * K + k] / s))) + 8;
        packed[(n * blocks + b) * 16 + ((k - k0) >> 1)] |= q << (4 * ((k - k0) & 1));
      }
      // K not a multiple of 32: the padding codes are 8, i.e. zero.
      for (let k = k1; k < k0 + 32; k++) packed[(n * blocks + b) * 16 + ((k - k0) >> 1)] |= 8 << (4 * ((k - k0) & 1));
    }
  }
  return { packed, scales };
}

/** The decoder graph (one ModelProto) for `mode`. */
export function llmOnnx(cfg: LlamaConfig, get: WeightSource, mode: OrtLlmDType, opts: LlmOnnxOptions): Uint8Array {
  const g = new GraphBuilder();
  const { hiddenSize: H, intermediateSize: I, headDim: D, numHeads: nh, numKvHeads: nkv, vocabSize: V, rmsNormEps: eps } = cfg;
  if (cfg.qkNorm || cfg.oBias || cfg.mlpBias || cfg.slidingWindow.some((w) => w > 0)) {
    throw new Error(`bench llm --ort: the ONNX graph covers Llama and Qwen2 without sliding windows, o/MLP biases or q/k norms`);
  }
  const linear = (x: string, name: string, N: number, K: number): string => {
    const w = get(name); // [N, K]
    if (mode === 'q4') {
      const { packed, scales } = packQ4(w, N, K);
      const blocks = Math.ceil(K / 32);
      const attrs: Record<string, number> = { K, N, bits: 4, block_size: 32 };
      if (opts.accuracyLevel) attrs.accuracy_level = opts.accuracyLevel;
      return g.op1('MatMulNBits', [x, g.init(OnnxType.UINT8, [N, blocks, 16], packed), g.f32([N, blocks], scales)], attrs, 'com.microsoft');
    }
    const t = new Float32Array(K * N);
    for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) t[k * N + n] = w[n * K + k];
    return g.op1('MatMul', [x, g.f32([K, N], t)]);
  };
  const withBias = (y: string, name: string, on: boolean, N: number) => (on ? g.op1('Add', [y, g.f32([N], get(name))]) : y);
  const vec = (name: string, n: number) => g.f32([n], get(name));
  // SkipSimplifiedLayerNormalization: outputs (normed, mean, inv_std_var, input + skip).
  const skipNorm = (x: string, skip: string, gamma: string): { y: string; sum: string } => {
    const y = g.fresh('skipnorm');
    const sum = g.fresh('residual');
    g.nodes.push({ op: 'SkipSimplifiedLayerNormalization', inputs: [x, skip, gamma], outputs: [y, '', '', sum], attrs: { epsilon: { float: eps } }, domain: 'com.microsoft' });
    return { y, sum };
  };

  const embed = get('model.embed_tokens.weight'); // [V, H]
  const embedName = g.f32([V, H], embed);
  let h = g.op1('Gather', [embedName, 'input_ids']); // [1, S, H]
  const scalar64 = (v: bigint) => g.init(OnnxType.INT64, [], BigInt64Array.of(v), 'c');
  const seqlensK = g.op1('Cast', [g.op1('Sub', [g.op1('ReduceSum', ['attention_mask', g.i64([1])], { keepdims: 0 }), scalar64(1n)])], { to: INT32 }); // [1]
  const totalLen = g.op1('Cast', [g.op1('Gather', [g.op1('Shape', ['attention_mask']), scalar64(1n)])], { to: INT32 }); // scalar
  // cos|sin caches [maxPositions, D/2], Hugging Face's rotate-half pairing (rotary_interleaved 0).
  const half = D / 2;
  const cos = new Float32Array(opts.maxPositions * half);
  const sin = new Float32Array(opts.maxPositions * half);
  const invFreq = ropeFrequencies(cfg);
  for (let p = 0; p < opts.maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      cos[p * half + i] = Math.cos(p * invFreq[i]);
      sin[p * half + i] = Math.sin(p * invFreq[i]);
    }
  }
  const cosCache = g.f32([opts.maxPositions, half], cos);
  const sinCache = g.f32([opts.maxPositions, half], sin);

  let mlp: string | null = null;
  for (let l = 0; l < cfg.numLayers; l++) {
    const b = `model.layers.${l}`;
    let x: string;
    if (mlp === null) x = g.op1('SimplifiedLayerNormalization', [h, vec(`${b}.input_layernorm.weight`, H)], { axis: -1, epsilon: { float: eps }, stash_type: 1 });
    else ({ y: x, sum: h } = skipNorm(mlp, h, vec(`${b}.input_layernorm.weight`, H)));
    const q = withBias(linear(x, `${b}.self_attn.q_proj.weight`, nh * D, H), `${b}.self_attn.q_proj.bias`, cfg.qkvBias, nh * D);
    const k = withBias(linear(x, `${b}.self_attn.k_proj.weight`, nkv * D, H), `${b}.self_attn.k_proj.bias`, cfg.qkvBias, nkv * D);
    const v = withBias(linear(x, `${b}.self_attn.v_proj.weight`, nkv * D, H), `${b}.self_attn.v_proj.bias`, cfg.qkvBias, nkv * D);
    const att = g.fresh('attn');
    g.nodes.push({
      op: 'GroupQueryAttention',
      inputs: [q, k, v, `past_key_values.${l}.key`, `past_key_values.${l}.value`, seqlensK, totalLen, cosCache, sinCache],
      outputs: [att, `present.${l}.key`, `present.${l}.value`],
      attrs: { num_heads: nh, kv_num_heads: nkv, do_rotary: 1, scale: { float: 1 / Math.sqrt(D) } },
      domain: 'com.microsoft',
    });
    const o = linear(att, `${b}.self_attn.o_proj.weight`, H, nh * D);
    let x2: string;
    ({ y: x2, sum: h } = skipNorm(o, h, vec(`${b}.post_attention_layernorm.weight`, H)));
    const gate = linear(x2, `${b}.mlp.gate_proj.weight`, I, H);
    const up = linear(x2, `${b}.mlp.up_proj.weight`, I, H);
    const act = g.op1('Mul', [g.op1('Mul', [gate, g.op1('Sigmoid', [gate])]), up]);
    mlp = linear(act, `${b}.mlp.down_proj.weight`, H, I);
  }
  const final = skipNorm(mlp!, h, vec('model.norm.weight', H)).y; // [1, S, H]
  // Last position only: [1, 1, H].
  const last = g.op1('Slice', [final, g.i64([-1]), g.i64([2 ** 31 - 1]), g.i64([1])]);
  let logits: string;
  if (mode === 'q4') logits = linear(last, cfg.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight', V, H);
  else if (cfg.tieWordEmbeddings) {
    // Gemm with transB reads the embedding table as it is: no transposed copy of the largest tensor.
    const flat = g.op1('Reshape', [last, g.i64([1, H])]);
    logits = g.op1('Reshape', [g.op1('Gemm', [flat, embedName], { transB: 1 }), g.i64([1, 1, V])]);
  } else logits = linear(last, 'lm_head.weight', V, H);
  g.nodes.push({ op: 'Identity', inputs: [logits], outputs: ['logits'] });

  const kvDims = (name: string) => ({ name, type: OnnxType.FLOAT, dims: [1, nkv, name.startsWith('past') ? 'past_sequence_length' : 'total_sequence_length', D] });
  const kvNames = (prefix: string) => Array.from({ length: cfg.numLayers }, (_, l) => [`${prefix}.${l}.key`, `${prefix}.${l}.value`]).flat();
  return encodeModel({
    name: `llm-${mode}`,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [
      { name: 'input_ids', type: OnnxType.INT64, dims: [1, 'sequence_length'] },
      { name: 'attention_mask', type: OnnxType.INT64, dims: [1, 'total_sequence_length'] },
      ...kvNames('past_key_values').map(kvDims),
    ],
    outputs: [{ name: 'logits', type: OnnxType.FLOAT, dims: [1, 1, V] }, ...kvNames('present').map(kvDims)],
  });
}

/** RoPE inverse frequencies as transformers computes them (no rope_scaling in these shapes). */
function ropeFrequencies(cfg: LlamaConfig): Float32Array {
  if (cfg.ropeScaling) throw new Error('bench llm --ort: rope_scaling is not in the ONNX graph');
  const half = cfg.headDim / 2;
  return Float32Array.from({ length: half }, (_, i) => 1 / Math.pow(cfg.ropeTheta, (2 * i) / cfg.headDim));
}
