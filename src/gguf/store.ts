/**
 * A GGUF file seen as the TensorStore webq's loaders read (src/io/safetensors/reader.ts), under Hugging
 * Face tensor names (model.ts) with q/k rows put back in Hugging Face's order. Two views:
 *
 *   packed  a ggml-quantized matrix W is presented as webq's pre-quantized tensors (W.qvalues,
 *           W.qscales: src/quant/prequantized.ts) with its own spec in the metadata, codes and
 *           scales copied where the type maps exactly (pack.ts), re-quantized to int8 where not;
 *           float tensors are presented as stored. Loads with a quantized dtype.
 *   float   every tensor as floats, quantized ones as their exact dequantization (F32).
 *           Loads with dtype f32 or f16.
 *
 * Either way the metadata is webq's (webq.format ...): webq.dtype is the dtype the load runs, so
 * the loader takes the layout as stored. Tensor data is read from the file when asked for, one
 * tensor at a time, and a packed weight's two arrays are made once.
 */
import type { DType, TensorInfo } from '../io/safetensors/dtypes.ts';
import { convert, type ReadAsResult, type ReadTarget } from '../io/safetensors/convert.ts';
import { SafetensorsError } from '../io/errors.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import type { ByteSource } from '../io/source.ts';
import type { LinearDType } from '../ops/linear.ts';
import { relayout } from '../quant/imports/index.ts';
import type { QuantSpec } from '../quant/layout.ts';
import { prequantMetadata, type LinearQuantMeta } from '../quant/prequantized.ts';
import { dequantize } from './dequant.ts';
import { permutedRow, type GgufModel } from './model.ts';
import { packedSpec, packPlan, packWeight, INT8_G32, type PackedWeight } from './pack.ts';
import type { GgufTensor } from './parse.ts';

type Part = 'raw' | 'dequant' | 'qvalues' | 'qscales' | 'qzeros';

interface Presented {
  info: TensorInfo;
  src: GgufTensor;
  part: Part;
  /** HF name of the weight this part belongs to. */
  weight: string;
  permuted: boolean;
  headDim: number;
}

/** The dtype a GGUF file loads with when none is asked for: its quantized layout's kernels, else its float type. */
export function defaultGgufDType(model: GgufModel): LinearDType {
  const matrices = [...model.tensors.values()].filter((t) => t.gguf.shape.length === 2).map((t) => t.gguf.type);
  const quant = matrices.filter((t) => t.mapping !== 'float');
  if (quant.length === 0) return matrices.every((t) => t.name === 'F16') ? 'f16' : 'f32';
  return quant.every((t) => packedSpec(t)!.bits === 8) ? 'q8' : 'q4';
}

const FLOAT_DTYPE: Record<string, DType> = { F32: 'F32', F16: 'F16', BF16: 'BF16' };

/**
 * The loader stacks q|k|v and gate|up into one matmul (src/models/llama/llama.ts), so their parts must
 * share a layout. A file may mix types within them (Q4_K_M keeps v in Q6_K): every part is then
 * rewritten exactly in one spec they all fit (the most bits, asymmetric if any is: relayout), and
 * a unit mixing float and quantized parts is read as floats whole (the exact dequantization).
 * Returns, per weight in a mixed unit, its spec or 'float'.
 */
function unitSpecs(model: GgufModel): Map<string, QuantSpec | 'float'> {
  const units = new Map<string, string[]>();
  for (const hf of model.tensors.keys()) {
    const m = /^(model\.layers\.\d+)\.(?:self_attn\.[qkv]_proj|mlp\.(?:gate|up)_proj)\.weight$/.exec(hf);
    if (!m) continue;
    const key = `${m[1]}.${hf.includes('self_attn') ? 'qkv' : 'gateUp'}`;
    units.set(key, [...(units.get(key) ?? []), hf]);
  }
  const out = new Map<string, QuantSpec | 'float'>();
  for (const parts of units.values()) {
    const plans = parts.map((hf) => packPlan(model.tensors.get(hf)!.gguf.type));
    if (plans.every((p) => p === null)) continue;
    if (plans.some((p) => p === null)) {
      for (const hf of parts) out.set(hf, 'float');
      continue;
    }
    const specs = plans.map((p) => p!.spec);
    const common: QuantSpec = { bits: specs.some((x) => x.bits === 8) ? 8 : 4, group: 32, symmetric: specs.every((x) => x.symmetric) };
    for (const hf of parts) out.set(hf, common);
  }
  return out;
}

/** A packed weight rewritten exactly in `spec` (webq's relayout: more bits, or zero points added). */
function inSpec(p: PackedWeight, N: number, K: number, spec: QuantSpec): PackedWeight {
  if (p.spec.bits === spec.bits && p.spec.symmetric === spec.symmetric) return p;
  const q = relayout({ N, K, Kp: K, groupSize: 32, groups: K / 32, bits: p.spec.bits, symmetric: p.spec.symmetric, values: p.values, scales: p.scales, zeros: p.zeros }, spec);
  return { spec, method: p.method, values: q.values, scales: q.scales, zeros: q.zeros };
}

export class GgufStore implements TensorStore {
  readonly name: string;
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
  private readonly byName = new Map<string, Presented>();
  /** Packed weights made and not yet read in full (values and scales are asked for separately). */
  private readonly packed = new Map<string, Promise<PackedWeight>>();
  /** The spec each packed weight is presented in (its stacking unit's). */
  private readonly specs = new Map<string, QuantSpec>();

  constructor(private readonly source: ByteSource, model: GgufModel, readonly dtype: LinearDType) {
    this.name = source.name;
    const float = dtype === 'f32' || dtype === 'f16';
    const specs = new Map<string, LinearQuantMeta>();
    const infos: TensorInfo[] = [];
    const present = (name: string, src: GgufTensor, part: Part, dt: DType, shape: number[], bytesPer: number, weight: string, t: { permuteHeads: number | null; headDim: number }) => {
      const elements = shape.reduce((a, b) => a * b, 1);
      const info: TensorInfo = { name, dtype: dt, shape, elements, byteLength: elements * bytesPer, dataOffsets: [src.offset, src.offset + src.byteLength] };
      infos.push(info);
      this.byName.set(name, { info, src, part, weight, permuted: t.permuteHeads !== null, headDim: t.headDim });
    };
    const units = unitSpecs(model);
    for (const [hf, t] of model.tensors) {
      const g = t.gguf;
      const shape = [...g.shape];
      const unit = units.get(hf);
      if (g.type.mapping === 'float') {
        present(hf, g, 'raw', FLOAT_DTYPE[g.type.name], shape, g.type.blockBytes, hf, t);
        // A float matrix in a quantized file stays float (mixed precision's 16-bit Linears).
        if (!float && shape.length === 2 && hf !== 'model.embed_tokens.weight') specs.set(hf, { bits: 16 });
      } else if (float || shape.length !== 2 || unit === 'float') {
        present(hf, g, 'dequant', 'F32', shape, 4, hf, t);
        if (!float && unit === 'float') specs.set(hf, { bits: 16 });
      } else {
        const { method } = packPlan(g.type)!;
        const spec = unit ?? packPlan(g.type)!.spec;
        this.specs.set(hf, spec);
        const [N, K] = shape;
        present(`${hf}.qvalues`, g, 'qvalues', 'U32', [N, (K * spec.bits) / 32], 4, hf, t);
        // Scales as f32: a scale D/k of a re-laid K-quant group needs more bits than an f16 has.
        present(`${hf}.qscales`, g, 'qscales', 'F32', [N, K / 32], 4, hf, t);
        if (!spec.symmetric) present(`${hf}.qzeros`, g, 'qzeros', 'F32', [N, K / 32], 4, hf, t);
        specs.set(hf, { bits: spec.bits, group: 32, symmetric: spec.symmetric, method: `gguf ${g.type.name} ${method}` });
      }
    }
    this.tensors = Object.freeze(infos);
    this.metadata = Object.freeze({ ...prequantMetadata(dtype, INT8_G32, new Map(), specs), 'webq.source': 'gguf' });
  }

  get(name: string): TensorInfo | undefined {
    return this.byName.get(name)?.info;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private require(name: string): Presented {
    const p = this.byName.get(name);
    if (!p) throw new SafetensorsError('SAFETENSORS_TENSOR_NOT_FOUND', `${this.name}: no tensor named "${name}"`);
    return p;
  }

  /** The tensor's stored bytes, its rows in Hugging Face's order. */
  private async rawRows(p: Presented): Promise<Uint8Array> {
    const bytes = await this.source.read(p.src.offset, p.src.byteLength);
    if (!p.permuted) return bytes;
    const rows = p.src.shape[0];
    const rowLen = p.src.byteLength / rows;
    const out = new Uint8Array(bytes.length);
    // A bias ([rows]) is permuted like the rows of its weight: one element per row.
    for (let r = 0; r < rows; r++) {
      const from = permutedRow(r, p.headDim) * rowLen;
      out.set(bytes.subarray(from, from + rowLen), r * rowLen);
    }
    return out;
  }

  private pack(p: Presented): Promise<PackedWeight> {
    let w = this.packed.get(p.weight);
    if (!w) {
      const [N, K] = p.src.shape;
      w = this.rawRows(p).then((b) => inSpec(packWeight(p.src.type, b, N, K), N, K, this.specs.get(p.weight)!));
      this.packed.set(p.weight, w);
      w.catch(() => this.packed.delete(p.weight));
    }
    return w;
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const p = this.require(name);
    if (p.part === 'raw') return this.rawRows(p);
    if (p.part === 'dequant') {
      const f = dequantize(p.src.type, await this.rawRows(p), p.src.elements);
      return new Uint8Array(f.buffer);
    }
    const w = await this.pack(p);
    const out = p.part === 'qvalues' ? w.values : p.part === 'qscales' ? w.scales : w.zeros!;
    // readQuantized reads values, scales, then zeros: drop the weight once its last part is out.
    if (p.part === (w.zeros ? 'qzeros' : 'qscales')) this.packed.delete(p.weight);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }

  async readAs<T extends ReadTarget>(name: string, target: T): Promise<ReadAsResult[T]> {
    const p = this.require(name);
    return convert(await this.readBytes(name), p.info.dtype, target, `${this.name}: tensor "${name}"`);
  }

  async close(): Promise<void> {
    this.packed.clear();
    await this.source.close?.();
  }
}
