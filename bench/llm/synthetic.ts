/**
 * Random-weight LLM checkpoints for `npm run bench -- llm`, never written to disk: a TensorStore
 * that lists every tensor of a Hugging Face Llama-layout checkpoint and generates a tensor's
 * values from a seeded generator when it is read, so a 0.5B model costs no 2 GB file, only the
 * time to generate what is uploaded (about 2 ns a value).
 *
 * Scales (as test/helpers/tiny-llama.ts chooses them, so attention is non-uniform and
 * quantization meets realistic outliers):
 *   linear weights [out, in]  N(0, 1/sqrt(in))
 *   lm_head (untied)          N(0, 2/sqrt(hidden))
 *   embed_tokens [V, H]       N(0, 0.1)
 *   norm weights              N(1, 0.1)
 *   biases                    N(0, 0.1)
 * Outliers: three hidden channels are 20x larger in the embedding table and 5x larger in the
 * down_proj rows that write them (massive activations), and q/k/v/gate/up each get two random
 * input columns 20x larger (a quantization group holding one gets a large scale).
 */
import type { TensorInfo } from '../../src/io/safetensors/dtypes.ts';
import type { ReadAsResult, ReadTarget } from '../../src/io/safetensors/convert.ts';
import { f32ArrayToF16 } from '../../src/io/safetensors/half.ts';
import type { TensorStore } from '../../src/io/safetensors/reader.ts';
import { parseLlamaConfig, type LlamaConfig } from '../../src/models/llama-config.ts';

/** The model shapes the suite knows: config.json fields as the real checkpoints have them. */
export const LLM_SHAPES = {
  // HuggingFaceTB/SmolLM2-135M
  'smollm2-135m': {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 576, intermediate_size: 1536,
    num_hidden_layers: 30, num_attention_heads: 9, num_key_value_heads: 3, vocab_size: 49152,
    max_position_embeddings: 8192, rms_norm_eps: 1e-5, rope_theta: 100000, tie_word_embeddings: true,
    bos_token_id: 0, eos_token_id: 0,
  },
  // Qwen/Qwen2.5-0.5B
  'qwen2.5-0.5b': {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864,
    num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936,
    max_position_embeddings: 32768, rms_norm_eps: 1e-6, rope_theta: 1000000, tie_word_embeddings: true,
    bos_token_id: 151643, eos_token_id: 151643,
  },
  // For tests: a Qwen2-style model (q/k/v biases, GQA, tied) small enough for a software adapter.
  tiny: {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 64, intermediate_size: 160,
    num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 512,
    max_position_embeddings: 4096, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: true,
    bos_token_id: 1, eos_token_id: 2,
  },
} as const;

export type LlmShape = keyof typeof LLM_SHAPES;
export const LLM_SHAPE_NAMES = Object.keys(LLM_SHAPES) as LlmShape[];

export interface SyntheticLlm {
  name: string;
  cfg: LlamaConfig;
  store: SyntheticLlamaStore;
  /** Parameters in the checkpoint (the tied head counted once). */
  params: number;
  /** config.json as the checkpoint would carry it (`layers` applied). */
  json: Record<string, unknown>;
}

/** A synthetic model: `layers` overrides num_hidden_layers. */
export function syntheticLlm(shape: LlmShape, opts: { layers?: number; seed?: number } = {}): SyntheticLlm {
  const json = { ...LLM_SHAPES[shape], ...(opts.layers ? { num_hidden_layers: opts.layers } : {}) };
  const cfg = parseLlamaConfig(json, `${shape} (synthetic)`);
  const store = new SyntheticLlamaStore(`${shape}-${cfg.numLayers}L (random weights)`, cfg, opts.seed ?? 1234);
  const params = store.tensors.reduce((s, t) => s + t.elements, 0);
  return { name: store.name, cfg, store, params, json };
}

type Init =
  | { kind: 'normal'; mean: number; std: number }
  /** Linear weight [out, in]: N(0, 1/sqrt(in)), with `outliers` input columns or massive output rows. */
  | { kind: 'linear'; outlierInputs: boolean; massiveRows: boolean }
  | { kind: 'embed' };

const OUTLIER_SCALE = 20;
const MASSIVE_WRITE_SCALE = 5;

// 65536 samples of N(0, 1) (Box-Muller on a fixed seed), indexed by a fast per-tensor generator:
// cheap enough to make 500M values per upload.
let normals: Float32Array | undefined;
function normalTable(): Float32Array {
  if (normals) return normals;
  const t = new Float32Array(65536);
  let s = 0x9e3779b9;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  for (let i = 0; i < t.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u()));
    const a = 2 * Math.PI * u();
    t[i] = r * Math.cos(a);
    t[i + 1] = r * Math.sin(a);
  }
  return (normals = t);
}

/** FNV-1a of the tensor name, mixed with the seed: each tensor has its own stream. */
function streamSeed(name: string, seed: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return (h >>> 0) || 1;
}

export class SyntheticLlamaStore implements TensorStore {
  readonly name: string;
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>> = {};
  /** Hidden channels made massive (embedding columns, down_proj rows). */
  readonly massiveChannels: readonly number[];
  private readonly byName: Map<string, { info: TensorInfo; init: Init }>;
  private readonly seed: number;

  constructor(name: string, cfg: LlamaConfig, seed: number) {
    this.name = name;
    this.seed = seed;
    const { hiddenSize: H, intermediateSize: I, headDim: D, numHeads: nh, numKvHeads: nkv, vocabSize: V } = cfg;
    this.massiveChannels = [Math.floor(H / 5), Math.floor(H / 2) + 1, H - 2];
    const list: { name: string; shape: number[]; init: Init }[] = [];
    const norm = (n: string, size: number) => list.push({ name: n, shape: [size], init: { kind: 'normal', mean: 1, std: 0.1 } });
    const lin = (base: string, out: number, inp: number, bias: boolean, outlierInputs: boolean, massiveRows = false) => {
      list.push({ name: `${base}.weight`, shape: [out, inp], init: { kind: 'linear', outlierInputs, massiveRows } });
      if (bias) list.push({ name: `${base}.bias`, shape: [out], init: { kind: 'normal', mean: 0, std: 0.1 } });
    };
    list.push({ name: 'model.embed_tokens.weight', shape: [V, H], init: { kind: 'embed' } });
    for (let l = 0; l < cfg.numLayers; l++) {
      const b = `model.layers.${l}`;
      norm(`${b}.input_layernorm.weight`, H);
      lin(`${b}.self_attn.q_proj`, nh * D, H, cfg.qkvBias, true);
      lin(`${b}.self_attn.k_proj`, nkv * D, H, cfg.qkvBias, true);
      lin(`${b}.self_attn.v_proj`, nkv * D, H, cfg.qkvBias, true);
      lin(`${b}.self_attn.o_proj`, H, nh * D, cfg.oBias, false);
      if (cfg.qkNorm) {
        norm(`${b}.self_attn.q_norm.weight`, D);
        norm(`${b}.self_attn.k_norm.weight`, D);
      }
      norm(`${b}.post_attention_layernorm.weight`, H);
      lin(`${b}.mlp.gate_proj`, I, H, cfg.mlpBias, true);
      lin(`${b}.mlp.up_proj`, I, H, cfg.mlpBias, true);
      lin(`${b}.mlp.down_proj`, H, I, cfg.mlpBias, false, true);
    }
    norm('model.norm.weight', H);
    if (!cfg.tieWordEmbeddings) list.push({ name: 'lm_head.weight', shape: [V, H], init: { kind: 'normal', mean: 0, std: 2 / Math.sqrt(H) } });
    let offset = 0;
    this.byName = new Map();
    const infos: TensorInfo[] = [];
    for (const t of list) {
      const elements = t.shape.reduce((a, b) => a * b, 1);
      const info: TensorInfo = { name: t.name, dtype: 'F32', shape: t.shape, elements, byteLength: 4 * elements, dataOffsets: [offset, offset + 4 * elements] };
      offset += 4 * elements;
      infos.push(info);
      this.byName.set(t.name, { info, init: t.init });
    }
    this.tensors = infos;
  }

  get(name: string): TensorInfo | undefined {
    return this.byName.get(name)?.info;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The tensor's values (generated afresh on every call; the same every time). */
  values(name: string): Float32Array {
    const t = this.byName.get(name);
    if (!t) throw new Error(`${this.name}: no tensor named "${name}"`);
    const { shape, elements } = t.info;
    const table = normalTable();
    let s = streamSeed(name, this.seed);
    // xorshift32: the top 16 bits pick a normal sample.
    const next = () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return s >>> 0;
    };
    const out = new Float32Array(elements);
    const fill = (mean: number, std: number) => {
      for (let i = 0; i < elements; i++) out[i] = mean + std * table[next() >>> 16];
    };
    const init = t.init;
    if (init.kind === 'normal') fill(init.mean, init.std);
    else if (init.kind === 'embed') {
      fill(0, 0.1);
      const H = shape[1];
      for (let r = 0; r < shape[0]; r++) for (const c of this.massiveChannels) out[r * H + c] *= OUTLIER_SCALE;
    } else {
      const [rows, cols] = shape;
      fill(0, 1 / Math.sqrt(cols));
      if (init.outlierInputs) {
        const picked: number[] = [];
        while (picked.length < 2) {
          const c = next() % cols;
          if (!picked.includes(c) && !this.massiveChannels.includes(c)) picked.push(c);
        }
        for (let r = 0; r < rows; r++) for (const c of picked) out[r * cols + c] *= OUTLIER_SCALE;
      }
      if (init.massiveRows) for (const c of this.massiveChannels) for (let i = 0; i < cols; i++) out[c * cols + i] *= MASSIVE_WRITE_SCALE;
    }
    return out;
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const v = this.values(name);
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }

  async readAs<T extends ReadTarget>(name: string, target: T): Promise<ReadAsResult[T]> {
    const v = this.values(name);
    if (target === 'f32') return v as ReadAsResult[T];
    if (target === 'f16') return f32ArrayToF16(v) as ReadAsResult[T];
    throw new Error(`${this.name}: tensor "${name}" is F32; it reads as f32 or f16, not ${target}`);
  }

  async close(): Promise<void> {}
}
