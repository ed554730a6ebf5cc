/**
 * The `gptq-q4` row of `npm run bench -- llm`: the synthetic model (fixtures/llm-synthetic.ts) as a GPTQ
 * checkpoint, never written to disk. Every decoder-layer Linear (q/k/v/o, gate/up/down) is served
 * as AutoGPTQ stores it, int4, asymmetric, groups of `group` input columns in column order
 * (desc_act false), v1 zero points; embeddings, norms and biases stay the float tensors of the
 * synthetic store (AutoGPTQ quantizes neither embeddings nor the head). config.json carries
 *
 *   quantization_config: { quant_method: 'gptq', bits: 4, group_size, desc_act: false, sym: false }
 *
 * so webq loads it through its GPTQ importer (src/quant/imports/gptq.ts), as it would a real one.
 *
 * Quantizer: min/max round-to-nearest per (row, group), GPTQ's Quantizer.find_params grid (the
 * range includes 0; zero = round(-min / scale), at least 1 because v1 files store zero - 1), scales
 * rounded to f16 before the codes are computed, as the file stores them. It stands in for GPTQ's
 * Hessian search, which only changes which codes are chosen, not their layout or cost.
 *
 * Packing (AutoGPTQ qlinear_cuda.py QuantLinear.pack; test/helpers/quant-formats.ts packGptq, which
 * test/node/bench-llm.test.ts checks this against bit for bit):
 *   qweight  I32 [K/8, N]            word [i, n] holds the code of column k = 8i + j at bits 4j
 *   qzeros   I32 [ceil(K/G), N/8]    word [g, c] holds zero - 1 of row n = 8c + j at bits 4j
 *   scales   F16 [ceil(K/G), N]
 *   g_idx    I32 [K]                 k / G (AutoGPTQ writes it even without act-order)
 * A group that does not divide K gives AutoGPTQ's ceil(K/G) groups, the last one short.
 */
import type { DType, TensorInfo } from '../../src/io/safetensors/dtypes.ts';
import { convert, type ReadAsResult, type ReadTarget } from '../../src/io/safetensors/convert.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/io/safetensors/half.ts';
import type { JsonObject } from '../../src/io/json.ts';
import type { TensorStore } from '../../src/io/safetensors/reader.ts';
import { parseLlamaConfig, type LlamaConfig } from '../../src/models/llama/llama-config.ts';
import type { SyntheticLlamaStore, SyntheticLlm } from '../../fixtures/index.ts';

export const GPTQ_BITS = 4;
/** The group sizes tried, largest first, when none is asked for. */
export const GPTQ_GROUPS = [128, 64, 32] as const;

export interface GptqLlm {
  /** quantization_config as config.json carries it. */
  quantizationConfig: JsonObject;
  cfg: LlamaConfig;
  store: GptqLlamaStore;
}

/** Every decoder-layer Linear of `cfg`: [name prefix, N, K] (the same list llama-weights.ts resolves). */
export function layerLinears(cfg: LlamaConfig): [string, number, number][] {
  const { hiddenSize: H, intermediateSize: I, headDim: D, numHeads: nh, numKvHeads: nkv } = cfg;
  const out: [string, number, number][] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const b = `model.layers.${l}`;
    out.push(
      [`${b}.self_attn.q_proj`, nh * D, H], [`${b}.self_attn.k_proj`, nkv * D, H], [`${b}.self_attn.v_proj`, nkv * D, H], [`${b}.self_attn.o_proj`, H, nh * D],
      [`${b}.mlp.gate_proj`, I, H], [`${b}.mlp.up_proj`, I, H], [`${b}.mlp.down_proj`, H, I],
    );
  }
  return out;
}

/**
 * The group size: `requested` as given (AutoGPTQ's ceil(K/G) groups where it does not divide a
 * Linear's inputs), else the largest of 128, 64, 32 that divides every Linear's inputs (128 for
 * Qwen2.5-0.5B; 64 for SmolLM2-135M, whose hidden size 576 is 4.5 x 128), else 128.
 */
export function gptqGroupFor(cfg: LlamaConfig, requested?: number): number {
  if (requested !== undefined) return requested;
  const ks = new Set(layerLinears(cfg).map(([, , K]) => K));
  return GPTQ_GROUPS.find((g) => [...ks].every((K) => K % g === 0)) ?? GPTQ_GROUPS[0];
}

/** The synthetic model `m` as a GPTQ int4 checkpoint with groups of `group` (see gptqGroupFor). */
export function gptqLlm(m: SyntheticLlm, group: number): GptqLlm {
  const quantizationConfig: JsonObject = { quant_method: 'gptq', bits: GPTQ_BITS, group_size: group, desc_act: false, sym: false };
  const cfg = parseLlamaConfig({ ...m.json, quantization_config: quantizationConfig }, `${m.name} (GPTQ)`);
  return { quantizationConfig, cfg, store: new GptqLlamaStore(m.store, cfg, group) };
}

/** One Linear, quantized and packed: the four tensors AutoGPTQ stores. */
export interface GptqPacked {
  qweight: Int32Array;
  qzeros: Int32Array;
  /** f16 bits. */
  scales: Uint16Array;
  gIdx: Int32Array;
}

/** Quantizes an [N, K] weight (row-major, HF orientation) to int4 groups of G and packs it as AutoGPTQ does. */
export function packGptqInt4(w: Float32Array, N: number, K: number, G: number): GptqPacked {
  if (K % 8 || N % 8) throw new Error(`GPTQ int4 packs 8 codes per int32: [${N}, ${K}] must be multiples of 8`);
  const maxq = 15;
  const groups = Math.ceil(K / G);
  const qweight = new Uint32Array((K / 8) * N);
  const qzeros = new Uint32Array(groups * (N / 8));
  const scales = new Uint16Array(groups * N); // [groups, N]
  const gIdx = new Int32Array(K);
  for (let k = 0; k < K; k++) gIdx[k] = Math.floor(k / G);
  const raw = new Float32Array(groups); // the row's scales before rounding to f16
  const lows = new Float64Array(groups);
  const zeros = new Int32Array(groups);
  for (let n = 0; n < N; n++) {
    const row = n * K;
    for (let g = 0; g < groups; g++) {
      let lo = 0;
      let hi = 0;
      for (let k = g * G, e = Math.min(K, k + G); k < e; k++) {
        const x = w[row + k];
        if (x < lo) lo = x;
        if (x > hi) hi = x;
      }
      if (lo === 0 && hi === 0) [lo, hi] = [-1, 1];
      raw[g] = (hi - lo) / maxq;
      lows[g] = lo;
    }
    const s16 = f32ArrayToF16(raw);
    const s = f16ArrayToF32(s16);
    for (let g = 0; g < groups; g++) {
      scales[g * N + n] = s16[g];
      zeros[g] = Math.min(maxq, Math.max(1, roundHalfEven(-lows[g] / s[g])));
      qzeros[g * (N / 8) + (n >> 3)] |= (zeros[g] - 1) << (4 * (n & 7)); // v1: zero - 1
    }
    for (let k = 0; k < K; k++) {
      const g = gIdx[k];
      const q = Math.min(maxq, Math.max(0, roundHalfEven(w[row + k] / s[g]) + zeros[g]));
      qweight[(k >> 3) * N + n] |= q << (4 * (k & 7));
    }
  }
  const i32 = (u: Uint32Array) => new Int32Array(u.buffer, u.byteOffset, u.length);
  return { qweight: i32(qweight), qzeros: i32(qzeros), scales, gIdx };
}
/** torch.round: half to even. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

const SUFFIXES = ['qweight', 'qzeros', 'scales', 'g_idx'] as const;

/**
 * The synthetic store with every decoder-layer Linear's `.weight` replaced by GPTQ's four tensors,
 * generated from the float weight when first read and kept until all four have been read.
 */
export class GptqLlamaStore implements TensorStore {
  readonly name: string;
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>> = {};
  private readonly byName = new Map<string, TensorInfo>();
  /** GPTQ tensor name -> its Linear [base, N, K]. */
  private readonly linearOf = new Map<string, [string, number, number]>();
  private readonly packed = new Map<string, { p: GptqPacked; unread: Set<string> }>();

  constructor(
    private readonly base: SyntheticLlamaStore,
    cfg: LlamaConfig,
    readonly group: number,
  ) {
    this.name = `${base.name.replace(' (random weights)', '')} GPTQ int4 g${group} (random weights)`;
    const replaced = new Map<string, TensorInfo[]>();
    for (const lin of layerLinears(cfg)) {
      const [b, N, K] = lin;
      const groups = Math.ceil(K / group);
      const shapes: Record<(typeof SUFFIXES)[number], [DType, number[]]> = {
        qweight: ['I32', [K / 8, N]],
        qzeros: ['I32', [groups, N / 8]],
        scales: ['F16', [groups, N]],
        g_idx: ['I32', [K]],
      };
      replaced.set(
        `${b}.weight`,
        SUFFIXES.map((sfx) => {
          const [dtype, shape] = shapes[sfx];
          const elements = shape.reduce((a, x) => a * x, 1);
          const name = `${b}.${sfx}`;
          this.linearOf.set(name, lin);
          return { name, dtype, shape, elements, byteLength: elements * (dtype === 'F16' ? 2 : 4), dataOffsets: [0, 0] };
        }),
      );
    }
    let offset = 0;
    const infos: TensorInfo[] = [];
    for (const t of base.tensors) {
      for (const info of replaced.get(t.name) ?? [t]) {
        const placed = { ...info, dataOffsets: [offset, offset + info.byteLength] as [number, number] };
        offset += info.byteLength;
        infos.push(placed);
        this.byName.set(placed.name, placed);
      }
    }
    this.tensors = infos;
  }

  get(name: string): TensorInfo | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** The packed tensors of the Linear `base` ([N, K]), quantized from the float store's weight. */
  packedLinear(base: string, N: number, K: number): GptqPacked {
    return packGptqInt4(this.base.values(`${base}.weight`), N, K, this.group);
  }

  private gptqTensor(name: string): ArrayBufferView {
    const [b, N, K] = this.linearOf.get(name)!;
    let e = this.packed.get(b);
    if (!e) {
      e = { p: this.packedLinear(b, N, K), unread: new Set(SUFFIXES.map((s) => `${b}.${s}`)) };
      this.packed.set(b, e);
    }
    e.unread.delete(name);
    if (!e.unread.size) this.packed.delete(b);
    const sfx = name.slice(b.length + 1) as (typeof SUFFIXES)[number];
    return { qweight: e.p.qweight, qzeros: e.p.qzeros, scales: e.p.scales, g_idx: e.p.gIdx }[sfx];
  }

  async readBytes(name: string): Promise<Uint8Array> {
    if (!this.linearOf.has(name)) {
      if (!this.byName.has(name)) throw new Error(`${this.name}: no tensor named "${name}"`);
      return this.base.readBytes(name);
    }
    const v = this.gptqTensor(name);
    return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  }

  async readAs<T extends ReadTarget>(name: string, target: T): Promise<ReadAsResult[T]> {
    if (!this.linearOf.has(name)) {
      if (!this.byName.has(name)) throw new Error(`${this.name}: no tensor named "${name}"`);
      return this.base.readAs(name, target);
    }
    return convert(await this.readBytes(name), this.byName.get(name)!.dtype, target, `${this.name}: "${name}"`);
  }

  async close(): Promise<void> {}
}
