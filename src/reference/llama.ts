/**
 * A plain-TypeScript Llama-family decoder (Llama, Mistral, Qwen2, Qwen3, Granite, OLMo 2, SmolLM3,
 * Phi-3, Gemma 2, Gemma 3 text), top to bottom in one file (llama2.c style), as the ground truth the GPU forward is tested
 * against. It follows Hugging Face transformers' *ForCausalLM; what differs between the model types
 * is data in LlamaConfig. Phi-3's fused qkv_proj / gate_up_proj are split here by row ranges.
 * Weights are f32 as read from the checkpoint; every sum and activation is f64, so this side's
 * rounding error is negligible next to the GPU's. Nothing here is fast; it is written to be read.
 *
 * Weights: a record keyed by Hugging Face tensor name. Linear weights are PyTorch's [out, in]:
 * y[o] = b[o] + sum_i x[i] * W[o, i].
 */
import { ShapeError, WebqError } from '../errors.ts';
import { ropeAmplitude, ropeInvFreq, ropeLocalInvFreq, type LlamaConfig } from '../models/llama/llama-config.ts';

export type LlamaWeightsF32 = Readonly<Record<string, Float32Array>>;

function weight(w: LlamaWeightsF32, key: string, size: number): Float32Array {
  const a = w[key];
  if (a === undefined) throw new WebqError('REFERENCE_WEIGHT_MISSING', `Llama reference: no weight "${key}" in the weights record`);
  if (a.length !== size) throw new ShapeError(`Llama reference: weight "${key}" has ${a.length} elements, expected ${size}`);
  return a;
}

/** y [rows, out] = x [rows, inp] W^T (+ b), with W [out, inp] and b [out] or null. */
function linear(x: Float64Array, rows: number, inp: number, W: Float32Array, b: Float32Array | null, out: number): Float64Array {
  const y = new Float64Array(rows * out);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inp; i++) s += x[r * inp + i] * W[o * inp + i];
      y[r * out + o] = s;
    }
  }
  return y;
}

/**
 * Per row of n: x / sqrt(mean(x^2) + eps) * (g + offset), into a new array (or in place with
 * out = x). Gemma stores its norm weights as offsets from 1 (offset 1: transformers' 1 + weight).
 */
function rmsNorm(x: Float64Array, n: number, g: Float32Array, eps: number, out: Float64Array = new Float64Array(x.length), offset = 0): Float64Array {
  for (let r = 0; r < x.length / n; r++) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[r * n + i] ** 2;
    const inv = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[r * n + i] = x[r * n + i] * inv * (g[i] + offset);
  }
  return out;
}

/** Soft-capping (Gemma): cap tanh(x / cap); cap 0 leaves x. */
const softcap = (x: number, cap: number) => (cap > 0 ? cap * Math.tanh(x / cap) : x);

/** GELU's tanh approximation (PyTorch approximate="tanh", Gemma's gelu_pytorch_tanh). */
const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

/**
 * In place on x [T, heads * D]: rotate-half RoPE on the first `rot` dimensions of each head,
 * dimension i paired with i + rot/2, rotated by angle p * invFreq[i] at position p; cos and sin
 * times `amp` (longrope's attention factor). The other dimensions pass through.
 */
function rope(x: Float64Array, T: number, heads: number, D: number, rot: number, invFreq: Float32Array, amp: number): void {
  const half = rot / 2;
  for (let p = 0; p < T; p++) {
    for (let h = 0; h < heads; h++) {
      const o = (p * heads + h) * D;
      for (let i = 0; i < half; i++) {
        const cos = Math.cos(p * invFreq[i]) * amp;
        const sin = Math.sin(p * invFreq[i]) * amp;
        const a = x[o + i];
        const b = x[o + i + half];
        x[o + i] = a * cos - b * sin;
        x[o + i + half] = b * cos + a * sin;
      }
    }
  }
}

/**
 * Causal grouped-query attention over one sequence. q [T, nh * D], k and v [T, nkv * D]; query head
 * h reads KV head floor(h / (nh / nkv)) (transformers' repeat_kv). With window W > 0 a query at t
 * sees keys t-W+1..t only. Scores are q.k x scale, soft-capped when `cap` > 0 (Gemma 2). Returns
 * the context [T, nh * D].
 */
function attention(q: Float64Array, k: Float64Array, v: Float64Array, T: number, nh: number, nkv: number, D: number, window: number, scale: number, cap: number): Float64Array {
  const group = nh / nkv;
  const ctx = new Float64Array(T * nh * D);
  const p = new Float64Array(T);
  for (let h = 0; h < nh; h++) {
    const qo = h * D;
    const ko = Math.floor(h / group) * D;
    for (let t = 0; t < T; t++) {
      const first = window > 0 ? Math.max(0, t - window + 1) : 0;
      let max = -Infinity;
      for (let j = first; j <= t; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[t * nh * D + qo + d] * k[j * nkv * D + ko + d];
        p[j] = softcap(s * scale, cap);
        if (p[j] > max) max = p[j];
      }
      let sum = 0;
      for (let j = first; j <= t; j++) sum += p[j] = Math.exp(p[j] - max);
      for (let j = first; j <= t; j++) {
        for (let d = 0; d < D; d++) ctx[t * nh * D + qo + d] += (p[j] / sum) * v[j * nkv * D + ko + d];
      }
    }
  }
  return ctx;
}

/** Rows [from, from + n) of a row-major [*, inp] matrix. */
const rows = (m: Float32Array, inp: number, from: number, n: number) => m.subarray(from * inp, (from + n) * inp);

/** One decoder layer, in place on the residual stream x [T, H]. */
function decoderLayer(cfg: LlamaConfig, w: LlamaWeightsF32, l: number, x: Float64Array, T: number, invFreq: Float32Array): void {
  const { hiddenSize: H, numHeads: nh, numKvHeads: nkv, headDim: D, intermediateSize: I, rmsNormEps: eps } = cfg;
  const L = `model.layers.${l}`;
  const W = (name: string, size: number) => weight(w, `${L}.${name}`, size);
  const lin = (name: string, input: Float64Array, inp: number, out: number, bias: boolean) =>
    linear(input, T, inp, W(`${name}.weight`, out * inp), bias ? W(`${name}.bias`, out) : null, out);
  // Phi-3 stores q | k | v as one qkv_proj and gate | up as one gate_up_proj, rows in that order.
  const fused = (name: string, input: Float64Array, parts: number[]) => {
    const all = W(`${name}.weight`, parts.reduce((a, b) => a + b, 0) * H);
    let from = 0;
    return parts.map((n) => linear(input, T, H, rows(all, H, (from += n) - n, n), null, n));
  };
  const pre = cfg.norms === 'pre';
  const sandwich = cfg.norms === 'sandwich';
  const m = cfg.multipliers.residual;
  const norm = (input: Float64Array, n: number, name: string, out?: Float64Array) => rmsNorm(input, n, W(name, n), eps, out ?? new Float64Array(input.length), cfg.normOffset);

  // Attention: RMSNorm [H] (not in OLMo 2); q [nh*D, H], k and v [nkv*D, H]; q/k RMSNorm (Qwen3:
  // per head [D]; OLMo 2: over all of q [nh*D] and of k [nkv*D]) before RoPE; RoPE unless a NoPE
  // layer; attention; o [H, nh*D]; OLMo 2's norm of the output; Granite's multiplier; residual.
  // Gemma: norms before and after each sublayer; q/k norms per head (Gemma 3); local RoPE on
  // Gemma 3's sliding layers; soft-capped scores (Gemma 2).
  const xn = pre || sandwich ? norm(x, H, 'input_layernorm.weight') : x;
  const [q, k, v] = cfg.fusedProjections
    ? fused('self_attn.qkv_proj', xn, [nh * D, nkv * D, nkv * D])
    : [lin('self_attn.q_proj', xn, H, nh * D, cfg.qkvBias), lin('self_attn.k_proj', xn, H, nkv * D, cfg.qkvBias), lin('self_attn.v_proj', xn, H, nkv * D, cfg.qkvBias)];
  if (cfg.qkNorm) {
    const [qn, kn] = cfg.qkNormOver === 'head' ? [D, D] : [nh * D, nkv * D];
    norm(q, qn, 'self_attn.q_norm.weight', q);
    norm(k, kn, 'self_attn.k_norm.weight', k);
  }
  if (cfg.ropeLayers[l]) {
    const f = cfg.localRopeLayers[l] ? ropeLocalInvFreq(cfg)! : invFreq;
    rope(q, T, nh, D, cfg.rotaryDim, f, ropeAmplitude(cfg));
    rope(k, T, nkv, D, cfg.rotaryDim, f, ropeAmplitude(cfg));
  }
  const ctx = attention(q, k, v, T, nh, nkv, D, cfg.slidingWindow[l] ?? 0, cfg.attentionScale, cfg.attnSoftcap);
  const a = lin('self_attn.o_proj', ctx, nh * D, H, cfg.oBias);
  if (!pre) norm(a, H, 'post_attention_layernorm.weight', a);
  for (let i = 0; i < x.length; i++) x[i] += a[i] * m;

  // Gated MLP: RMSNorm [H] (not in OLMo 2; Gemma's pre_feedforward_layernorm); gate and up [I, H];
  // silu(gate) * up (Gemma: gelu_tanh(gate) * up); down [H, I]; OLMo 2's and Gemma's norm of the
  // output; Granite's multiplier; residual.
  const hn = pre ? norm(x, H, 'post_attention_layernorm.weight') : sandwich ? norm(x, H, 'pre_feedforward_layernorm.weight') : x;
  const [g, u] = cfg.fusedProjections ? fused('mlp.gate_up_proj', hn, [I, I]) : [lin('mlp.gate_proj', hn, H, I, cfg.mlpBias), lin('mlp.up_proj', hn, H, I, cfg.mlpBias)];
  const act = cfg.mlpActivation === 'gelu_tanh' ? geluTanh : (y: number) => y / (1 + Math.exp(-y));
  for (let i = 0; i < g.length; i++) g[i] = act(g[i]) * u[i];
  const mo = lin('mlp.down_proj', g, I, H, cfg.mlpBias);
  if (!pre) norm(mo, H, 'post_feedforward_layernorm.weight', mo);
  for (let i = 0; i < x.length; i++) x[i] += mo[i] * m;
}

/** Logits [T, vocab] (row-major Float32Array) for every position of `ids` (one sequence, causal). */
export function llamaReferenceForward(cfg: LlamaConfig, w: LlamaWeightsF32, ids: readonly number[]): Float32Array {
  const { hiddenSize: H, vocabSize: V } = cfg;
  const T = ids.length;
  if (T === 0) throw new ShapeError('Llama reference: ids is empty; give at least one token');

  // Embedding [V, H]: the residual stream starts as the tokens' rows.
  const embed = weight(w, 'model.embed_tokens.weight', V * H);
  const x = new Float64Array(T * H);
  ids.forEach((id, t) => {
    if (!(Number.isInteger(id) && id >= 0 && id < V)) throw new ShapeError(`ids[${t}] = ${id} is outside the vocabulary (vocab_size ${V})`);
    for (let i = 0; i < H; i++) x[t * H + i] = embed[id * H + i] * cfg.multipliers.embedding;
  });

  const invFreq = ropeInvFreq(cfg);
  for (let l = 0; l < cfg.numLayers; l++) decoderLayer(cfg, w, l, x, T, invFreq);

  // Final RMSNorm [H]; LM head [V, H], the embedding table when tied; Granite divides by
  // logits_scaling; Gemma soft-caps (final_logit_softcapping).
  const xn = rmsNorm(x, H, weight(w, 'model.norm.weight', H), cfg.rmsNormEps, undefined, cfg.normOffset);
  const head = cfg.tieWordEmbeddings ? embed : weight(w, 'lm_head.weight', V * H);
  return Float32Array.from(linear(xn, T, H, head, null, V), (y) => softcap(y / cfg.multipliers.logits, cfg.finalSoftcap));
}

/** Greedy decoding by full recompute: appends argmax (lowest index on ties) `steps` times; returns the new ids. */
export function llamaReferenceGreedy(cfg: LlamaConfig, w: LlamaWeightsF32, ids: readonly number[], steps: number): number[] {
  const seq = [...ids];
  const out: number[] = [];
  const V = cfg.vocabSize;
  for (let s = 0; s < steps; s++) {
    const logits = llamaReferenceForward(cfg, w, seq);
    const last = (seq.length - 1) * V;
    let best = 0;
    for (let v = 1; v < V; v++) if (logits[last + v] > logits[last + best]) best = v;
    seq.push(best);
    out.push(best);
  }
  return out;
}
