/**
 * Reading checkpoint tensors onto the GPU, shared by every architecture: each tensor is read once
 * (as f32, whatever the file stores), Linears with the same input are stacked into one weight
 * (rows, and biases, concatenated), pre-quantized tensors are read packed, and everything made is
 * tracked so that a failed load frees what it had uploaded.
 *
 * Another tool's pre-quantized Linears (GPTQ, AWQ, compressed-tensors, bitsandbytes: WeightRef
 * `imported`) keep their own bits and groups (src/quant/imports: copied into webq's layout where
 * their groups allow, else re-quantized to int8); the dtype then only picks the kernels (q8/q4
 * weight-only by default, as the formats compute; w8a8/w4a8 int8 activations), or f32/f16 for
 * their exact dequantization.
 *
 * Every object made is kept under a key naming what it was made from (kind, tensor names, dtype,
 * packing), so a later upload of a new version (applyDelta: src/delta/loaded-update.ts) can take the
 * previous upload's object wherever every tensor it reads is unchanged (UploadOptions.reuse), and
 * read and upload only the groups that touch a changed one.
 *
 * Under a quantized dtype the model is the same whether it comes from a float checkpoint or from
 * its `webq quantize` copy, on every device:
 *   embedding tables   int8, int4, f16 or f32 (EmbeddingDType; the default is the architecture's),
 *                      packed its way (TableSpecs); a pre-quantized file's tables are read as stored
 *   norms, biases,     f16 values (what the file stores; rounded here from a float checkpoint, a
 *   position tables    no-op where activations are f16 anyway)
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Precision } from '../gpu/shaders.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../io/safetensors/half.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import type { Activations, LinearDType, LinearWeight } from '../ops/linear.ts';
import { activationsOf, checkActivations, prepareLinear, prepareQuantizedLinear, withStaticActivations, type PrepareOptions } from './prepare-linear.ts';
import { commonSpec, exactDequant, readImported, relayout, toWebq, REQUANT_SPEC } from '../quant/imports/index.ts';
import { readQuantized, sliceQuantized, specOf, stackQuantized, type PrequantInfo } from '../quant/prequantized.ts';
import type { QuantizedWeight } from '../quant/layout.ts';
import { quantizeWeight } from '../quant/rtn.ts';
import type { WeightRef } from './weight-ref.ts';

/**
 * How embedding tables are stored: int8 or int4 codes with scales (TableSpecs), f16 values, or
 * f32 (not rounded; on the GPU in the activation precision, like every float tensor).
 */
export type EmbeddingDType = 'int8' | 'int4' | 'f16' | 'f32';
export const EMBEDDING_DTYPES: readonly EmbeddingDType[] = ['int8', 'int4', 'f16', 'f32'];

/** An architecture's packing of its tables (a tied one is also the LM head, run with the model's activations). */
export type TableSpecs = Record<'int8' | 'int4', Required<Pick<PrepareOptions, 'group' | 'symmetric'>>>;

/** The Linear dtype whose kernels a packed table uses. */
export const TABLE_LINEAR_DTYPE = { int8: 'q8', int4: 'q4' } as const;

/** Something uploaded: a Tensor or a LinearWeight. */
export interface GpuObject {
  dispose(): void;
  bytes?: number;
  byteLength?: number;
}

/**
 * What a new version's upload may take from the previous one instead of reading it again (the
 * previous upload ran on the same context, dtype and options: only tensors may differ).
 */
export interface UploadReuse {
  /** The previous upload's objects by key (Uploader.objects). */
  objects: ReadonlyMap<string, GpuObject>;
  /** The previous model's name of a tensor whose stored bytes are unchanged; undefined when it changed or is new. */
  previousName(name: string): string | undefined;
}

export interface UploadOptions extends Pick<PrepareOptions, 'group' | 'symmetric' | 'bindingLimit' | 'activations' | 'clipSearch'> {
  onTensor?: (name: string) => void;
  prequant?: PrequantInfo | null;
  /** Tables of a float checkpoint (default: the architecture's under quantized dtypes, else f32). A pre-quantized file's own must agree. */
  embeddings?: EmbeddingDType;
  /** Objects of the previous version to keep where every tensor they were made from is unchanged. */
  reuse?: UploadReuse;
}

/** A Linear to stack: its weight [out, in] and optional bias [out]. */
export interface LinearPart {
  readonly weight: WeightRef;
  readonly bias?: WeightRef | null;
}

export interface Uploader {
  precision: Precision;
  /** A float tensor (norm weights, biases, position tables) in the activation precision. */
  vec(r: WeightRef): Promise<Tensor>;
  /**
   * An embedding table [V, H] (a tied one is also the LM head), stored as UploadOptions.embeddings
   * says, else as `byDefault` under a quantized dtype.
   */
  table(r: WeightRef, specs: TableSpecs, byDefault: EmbeddingDType): Promise<LinearWeight>;
  /** Stacked Linears as one weight in `dtype` (default: the model's), with the stacked bias if any. */
  lin(parts: readonly LinearPart[], dtype?: LinearDType, over?: Pick<PrepareOptions, 'group' | 'symmetric' | 'activations' | 'clipSearch'>): Promise<{ w: LinearWeight; b: Tensor | null }>;
  /** Every object the weights hold so far by key, reused ones included (UploadReuse.objects of a later upload). */
  readonly objects: ReadonlyMap<string, GpuObject>;
  /** Bytes of every object the weights hold. */
  bytes(): number;
  /** Bytes this uploader made (reused objects not counted). */
  uploadedBytes(): number;
  /** Frees what this uploader made, not what it reused (on failure). */
  dispose(): void;
}

/** Activation precision for a dtype: f32 and f16 are their own; quantized dtypes use f16 where the device has it. */
export function precisionFor(ctx: GpuContext, dtype: LinearDType): Precision {
  return dtype === 'f32' ? 'f32' : dtype === 'f16' ? 'f16' : ctx.caps.f16 ? 'f16' : 'f32';
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  parts.reduce((off, p) => (out.set(p, off), off + p.length), 0);
  return out;
}

/** The values as f16 would hold them (round to nearest even), as f32. */
export function roundToF16(a: Float32Array): Float32Array {
  return f16ArrayToF32(f32ArrayToF16(a));
}

/**
 * The activations a model runs its quantized Linears with (every one, a packed LM head included):
 * the caller's choice, else float for another tool's checkpoint (GPTQ, AWQ, compressed-tensors and
 * bitsandbytes define a weight-only product), else the architecture's default for the dtype.
 * w8a8/w4a8 are int8 and f32/f16 float whatever the default (a contrary choice is an error).
 */
export function modelActivations(dtype: LinearDType, asked: Activations | undefined, byDefault: Activations, imported: boolean, where?: string): Activations {
  checkActivations(dtype, asked, where);
  return activationsOf(dtype, asked ?? (imported ? 'float' : byDefault));
}

/** The kernels for an imported weight of `bits` under the requested dtype: int8 activations or not. */
function importedDType(as: LinearDType, bits: 4 | 8): LinearDType {
  if (as === 'w8a8' || as === 'w4a8') return bits === 8 ? 'w8a8' : 'w4a8';
  return bits === 8 ? 'q8' : 'q4';
}

/** How a pre-quantized file stores a table: packed (its spec's bits), F16, or anything else unrounded. */
export function storedEmbeddingDType(r: WeightRef, prequant: PrequantInfo): EmbeddingDType {
  if (r.quantized) return specOf(prequant, r.name).bits === 8 ? 'int8' : 'int4';
  return r.dtype === 'F16' ? 'f16' : 'f32';
}

const sizeOf = (x: GpuObject) => x.bytes ?? x.byteLength ?? 0;

export function makeUploader(ctx: GpuContext, store: TensorStore, dtype: LinearDType, opts: UploadOptions = {}): Uploader {
  const precision = precisionFor(ctx, dtype);
  const quantized = dtype !== 'f32' && dtype !== 'f16';
  const made: GpuObject[] = [];
  const objects = new Map<string, GpuObject>();
  // A tensor in a key: its name (mapped to the previous model's for a lookup) and, packed, its spec.
  const part = (r: WeightRef, name: string) =>
    (r.quantized && opts.prequant ? `${name}@${JSON.stringify(specOf(opts.prequant, r.name))}` : name) + (r.rows ? `[${r.rows.start}+${r.rows.count}]` : '');
  const keyOf = (kind: string, refs: readonly WeightRef[], names: readonly string[]) => `${kind}:${refs.map((r, i) => part(r, names[i])).join('+')}`;
  /** The object made from `refs` as `kind` says: this upload's, the previous version's when they are unchanged, else make(). */
  const once = async <T extends GpuObject>(kind: string, refs: readonly WeightRef[], make: () => Promise<T>): Promise<T> => {
    const key = keyOf(kind, refs, refs.map((r) => r.name));
    const have = objects.get(key);
    if (have) return have as T;
    const prev = opts.reuse && refs.map((r) => opts.reuse!.previousName(r.name));
    const old = prev?.every((n) => n !== undefined) ? opts.reuse!.objects.get(keyOf(kind, refs, prev as string[])) : undefined;
    const x = (old as T | undefined) ?? (await make());
    if (!old) made.push(x);
    objects.set(key, x);
    return x;
  };
  const read = async (r: WeightRef) => {
    const a = (await store.readAs(r.name, 'f32')) as Float32Array;
    opts.onTensor?.(r.name);
    // A fused Linear's part: its rows (shape[1] values each) of the whole tensor.
    return r.rows ? a.slice(r.rows.start * r.shape[1], (r.rows.start + r.rows.count) * r.shape[1]) : a;
  };
  // Norms, biases, position tables: f16 values under a quantized dtype (see the top of this file).
  const readSide = async (r: WeightRef) => {
    const a = r.offset ? (await read(r)).map((x) => x + r.offset!) : await read(r);
    return quantized ? roundToF16(a) : a;
  };
  const vec = (r: WeightRef) => once(r.offset ? `vec+${r.offset}` : 'vec', [r], async () => ctx.uploadFloat(await readSide(r), r.shape, precision, r.name));
  const lin = async (parts: readonly LinearPart[], as: LinearDType = dtype, over: Pick<PrepareOptions, 'group' | 'symmetric' | 'activations' | 'clipSearch'> = {}) => {
    const N = parts.reduce((s, r) => s + r.weight.shape[0], 0);
    const K = parts[0].weight.shape[1];
    const label = parts.map((r) => r.weight.name).join('+');
    // A float Linear kept in a quantized model (mixed precision) has no activations to choose.
    const activations = as === 'f32' || as === 'f16' ? undefined : opts.activations;
    const popts = { precision, label, group: opts.group, symmetric: opts.symmetric, bindingLimit: opts.bindingLimit, activations, clipSearch: opts.clipSearch, ...over };
    const w = await once(`lin(${as},${JSON.stringify(over)})`, parts.map((r) => r.weight), async (): Promise<LinearWeight> => {
      if (parts.some((r) => r.weight.imported)) {
        // Each part in webq's layout, then all in one spec they fit without rounding (the most bits,
        // the smallest group), so the rows stack. A float part among them (a tool's ignore list)
        // is quantized to int8; f32/f16 take the exact dequantization instead.
        const ints = await Promise.all(parts.map(async (r) => (r.weight.imported ? readImported(r.weight.imported) : null)));
        parts.forEach((r) => r.weight.imported && opts.onTensor?.(r.weight.name));
        const floats = await Promise.all(parts.map((r, i) => (ints[i] ? null : read(r.weight))));
        if (as === 'f32' || as === 'f16') return prepareLinear(ctx, concat(ints.map((iw, i) => (iw ? exactDequant(iw) : floats[i]!))), N, K, as, popts);
        const qs = ints.map((iw, i) => (iw ? toWebq(iw) : quantizeWeight(floats[i]!, parts[i].weight.shape[0], K, REQUANT_SPEC)));
        const spec = commonSpec(qs);
        const q = stackQuantized(qs.map((p) => relayout(p, spec)));
        return prepareQuantizedLinear(ctx, q, importedDType(as, q.bits), popts);
      }
      if (parts[0].weight.quantized) {
        if (!opts.prequant) throw new WebqError('PREQUANT', `${store.name}: ${label} is stored pre-quantized, but the file has no webq quantization metadata (webq.format)`);
        // A fused Linear's parts (WeightRef.rows) are row ranges of one packed tensor, read once:
        // codes, scales and zero points are per row, so each range is a slice.
        const whole = new Map<string, Promise<QuantizedWeight>>();
        const readWhole = (r: WeightRef, N: number) => {
          if (!whole.has(r.name)) whole.set(r.name, readQuantized(store, r.name, N, K, specOf(opts.prequant!, r.name)));
          return whole.get(r.name)!;
        };
        const q = await Promise.all(parts.map(async ({ weight: r }) =>
          r.rows ? sliceQuantized(await readWhole(r, store.get(`${r.name}.qvalues`)!.shape[0]), r.rows.start, r.rows.count) : readWhole(r, r.shape[0])));
        parts.forEach((r) => opts.onTensor?.(r.weight.name));
        return prepareQuantizedLinear(ctx, stackQuantized(q), as, popts);
      }
      return prepareLinear(ctx, concat(await Promise.all(parts.map((r) => read(r.weight)))), N, K, as, popts);
    });
    const biases = parts.map((r) => r.bias ?? null);
    if (biases.every((b) => b === null)) return { w, b: null };
    if (biases.some((b) => b === null)) throw new WebqError('WEIGHTS_MISSING', `${store.name}: ${label}: some of the stacked Linears have a bias and some do not`);
    const b = await once('bias', biases as WeightRef[], async () => ctx.uploadFloat(concat(await Promise.all(biases.map((r) => readSide(r!)))), [N], precision, `${label}.bias`));
    return { w, b };
  };
  const table = async (r: WeightRef, specs: TableSpecs, byDefault: EmbeddingDType) => {
    let as = opts.embeddings ?? (quantized ? byDefault : 'f32');
    if (r.imported) return (await lin([{ weight: r }], quantized ? importedDType(dtype, r.imported.bits) : dtype, specs[r.imported.bits === 8 ? 'int8' : 'int4'])).w;
    if (opts.prequant) {
      const stored = storedEmbeddingDType(r, opts.prequant);
      if (opts.embeddings && opts.embeddings !== stored) {
        throw new WebqError('DTYPE_MISMATCH', `${store.name}: stores its table ${r.name} as ${stored}; load it with embeddings '${stored}' (or quantize the float checkpoint with --embeddings ${opts.embeddings})`);
      }
      as = stored;
    }
    // Tables keep their min-max ranges (as webq quantize packs them: planQuantized).
    if (as === 'int8' || as === 'int4') return (await lin([{ weight: r }], TABLE_LINEAR_DTYPE[as], { ...specs[as], clipSearch: false })).w;
    return once(`table(${as})`, [r], async () => {
      const a = await read(r);
      return prepareLinear(ctx, as === 'f16' ? roundToF16(a) : a, r.shape[0], r.shape[1], precision, { label: r.name, bindingLimit: opts.bindingLimit });
    });
  };
  const total = (xs: Iterable<GpuObject>) => [...new Set(xs)].reduce((s, x) => s + sizeOf(x), 0);
  return {
    precision, vec, table, lin, objects,
    bytes: () => total(objects.values()),
    uploadedBytes: () => total(made),
    dispose: () => made.forEach((x) => x.dispose()),
  };
}

/** The uploader's objects and the wrappers made over them (static activation scales: prequantLinears), by key. */
export function heldObjects(up: Uploader, wrappers: readonly GpuObject[]): ReadonlyMap<string, GpuObject> {
  return new Map([...up.objects, ...wrappers.map((w, i): [string, GpuObject] => [`wrapper:${i}`, w])]);
}

/**
 * Stacked Linears as the uploader makes them, plus what a pre-quantized file says per Linear: a
 * float weight kept on purpose (mixed precision's 16 bits) stays float, and a static activation
 * scale (w8a8-static) replaces per-token scales. dispose() frees what this added.
 */
export function prequantLinears(ctx: GpuContext, up: Uploader, prequant: PrequantInfo | null | undefined) {
  const made: LinearWeight[] = [];
  const lin = async (parts: readonly LinearPart[]): Promise<{ w: LinearWeight; b: Tensor | null }> => {
    const name = parts[0].weight.name;
    const r = await up.lin(parts, prequant?.floats?.has(name) ? up.precision : undefined);
    const scale = prequant?.actScales?.get(name);
    if (scale === undefined) return r;
    const w = withStaticActivations(ctx, r.w, scale);
    made.push(w);
    return { w, b: r.b };
  };
  return { lin, made: made as readonly LinearWeight[], dispose: () => made.forEach((w) => w.dispose()) };
}
