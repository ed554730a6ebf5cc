/**
 * webq's pre-quantized safetensors: a checkpoint whose Linear weights (and, from webq-quant-2,
 * embedding tables) are already packed, so a load skips quantization and the file is about 4x
 * (q8) to 5x (q4) smaller than f32. A weight named `W` ([N, K] in the source) becomes up to three
 * tensors in the layout of layout.ts:
 *
 *   W.qvalues  U32 [N, Kp * bits / 32]   packed codes
 *   W.qscales  F16 [N, groups]           (the quantizer rounds scales to f16: rtn.ts f16Scale)
 *   W.qzeros   F16 [N, groups]           asymmetric only (small integers, exact in f16)
 *
 * webq-quant-1 files stored both as F32; they still load.
 *
 * `__metadata__` says how:
 *
 *   webq.format      "webq-quant-2" (written) or "webq-quant-1" (read: no per-tensor specs)
 *   webq.dtype       q8, q4, w8a8 or w4a8: the Linear dtype
 *   webq.bits, webq.group (32, 64, 128 or channel), webq.symmetric ("true" | "false"):
 *                    the spec of every packed tensor without its own
 *   webq.spec.<W>    a packed tensor's own spec, JSON {"bits":8,"group":"channel","symmetric":true}
 *                    (embedding tables: they are not Linears and are packed their own way; Linears
 *                    quantized another way than the file's spec: mixed precision, GPTQ, AWQ), with
 *                    optional fields "method" ("rtn", "gptq", "awq": informational) and
 *                    "act_scale" (w8a8-static: the fixed int8 scale of this Linear's input, which
 *                    the loader uses instead of per-token scales). {"bits":16} marks a Linear kept
 *                    as an F16 tensor `W` (mixed precision's most sensitive layers).
 *   webq.method      how the Linears were quantized (informational): rtn, gptq, awq, mixed, ...
 *   webq.smooth      SmoothQuant/AWQ scales were folded into the norms (informational)
 *   webq.embeddings  int8, int4, f16 or f32: how the tables were stored (informational)
 *
 * Other float tensors (norms, biases, position tables) are F16 in webq-quant-2 files, F32 or as
 * in the source in webq-quant-1 ones.
 */
import { WebqError } from '../errors.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import type { TensorToWrite } from '../io/safetensors/writer.ts';
import { f32ArrayToF16 } from '../io/safetensors/half.ts';
import { layoutFor, validateSpec, type QuantizedWeight, type QuantSpec } from './layout.ts';

export const PREQUANT_FORMAT = 'webq-quant-2';
/** Formats this webq reads: webq-quant-1 is webq-quant-2 without per-tensor specs. */
const READABLE = ['webq-quant-1', PREQUANT_FORMAT];
const SPEC_PREFIX = 'webq.spec.';

export interface PrequantInfo {
  dtype: string;
  /** The spec of every packed tensor not listed in `specs` (the Linears'). */
  spec: QuantSpec;
  /** Packed tensors with their own spec (embedding tables), by tensor name. */
  specs: ReadonlyMap<string, QuantSpec>;
  /** Linear weights stored as float tensors on purpose (mixed precision's 16-bit choice). */
  floats?: ReadonlySet<string>;
  /** Static activation scales (w8a8-static), by Linear weight name. */
  actScales?: ReadonlyMap<string, number>;
}

/** What a file records about one Linear (webq.spec.<W>): its layout and how it was made. */
export interface LinearQuantMeta {
  /** 16: kept as an F16 tensor. */
  bits: 4 | 8 | 16;
  group?: number | 'channel';
  symmetric?: boolean;
  method?: string;
  /** The static activation scale of this Linear's input. */
  actScale?: number;
}

export class PrequantError extends WebqError {
  constructor(message: string) {
    super('PREQUANT', message);
  }
}

/**
 * The metadata of a file whose Linears use `spec`, whose tensors in `specs` their own (tables),
 * and whose Linears in `linears` are described one by one (method, bits, static scales).
 */
export function prequantMetadata(dtype: string, spec: QuantSpec, specs: ReadonlyMap<string, QuantSpec> = new Map(), linears: ReadonlyMap<string, LinearQuantMeta> = new Map()): Record<string, string> {
  const own = [...specs].map(([name, s]) => [SPEC_PREFIX + name, JSON.stringify({ bits: s.bits, group: s.group, symmetric: s.symmetric })]);
  for (const [name, m] of linears) {
    const layout = m.bits === 16 ? { bits: 16 } : { bits: m.bits, group: m.group, symmetric: m.symmetric };
    own.push([SPEC_PREFIX + name, JSON.stringify({ ...layout, ...(m.method && { method: m.method }), ...(m.actScale !== undefined && { act_scale: m.actScale }) })]);
  }
  return {
    'webq.format': PREQUANT_FORMAT,
    'webq.dtype': dtype,
    'webq.bits': String(spec.bits),
    'webq.group': String(spec.group),
    'webq.symmetric': String(spec.symmetric),
    ...Object.fromEntries(own),
  };
}

/** The spec a packed tensor was written with: its own, else the file's. */
export function specOf(info: PrequantInfo, name: string): QuantSpec {
  return info.specs.get(name) ?? info.spec;
}

/** The quantization a checkpoint was written with, or null for an ordinary float checkpoint. */
export function readPrequantInfo(store: TensorStore): PrequantInfo | null {
  const m = store.metadata;
  if (m['webq.format'] === undefined) return null;
  if (!READABLE.includes(m['webq.format'])) throw new PrequantError(`${store.name}: webq.format is "${m['webq.format'].slice(0, 100)}"; this webq reads ${READABLE.map((f) => `"${f}"`).join(' and ')}`);
  const group = m['webq.group'] === 'channel' ? 'channel' : Number(m['webq.group']);
  const spec = checked(store, 'webq.bits/group/symmetric', { bits: Number(m['webq.bits']) as 4 | 8, group, symmetric: m['webq.symmetric'] === 'true' });
  if (!m['webq.dtype']) throw new PrequantError(`${store.name}: metadata has no webq.dtype`);
  const specs = new Map<string, QuantSpec>();
  const floats = new Set<string>();
  const actScales = new Map<string, number>();
  for (const [key, text] of Object.entries(m)) {
    if (!key.startsWith(SPEC_PREFIX)) continue;
    let s: Partial<QuantSpec> & { act_scale?: unknown };
    try {
      s = JSON.parse(text);
    } catch {
      throw new PrequantError(`${store.name}: metadata ${key.slice(0, 200)} is not JSON`);
    }
    const name = key.slice(SPEC_PREFIX.length);
    if ((s?.bits as number) === 16) floats.add(name);
    else specs.set(name, checked(store, key, { bits: s?.bits as 4 | 8, group: s?.group as number | 'channel', symmetric: s?.symmetric as boolean }));
    if (s?.act_scale !== undefined) {
      const a = s.act_scale;
      if (typeof a !== 'number' || !(Number.isFinite(a) && a > 0)) throw new PrequantError(`${store.name}: metadata ${key.slice(0, 200)}: act_scale must be a positive number, got ${JSON.stringify(a).slice(0, 40)}`);
      actScales.set(name, a);
    }
  }
  return { dtype: m['webq.dtype'], spec, specs, floats, actScales };
}

function checked(store: TensorStore, what: string, spec: QuantSpec): QuantSpec {
  try {
    validateSpec(spec);
  } catch (e) {
    throw new PrequantError(`${store.name}: bad webq quantization metadata (${what.slice(0, 200)}): ${(e as Error).message}`);
  }
  return spec;
}

export function quantizedTensors(name: string, q: QuantizedWeight): TensorToWrite[] {
  const out: TensorToWrite[] = [
    { name: `${name}.qvalues`, dtype: 'U32', shape: [q.N, (q.Kp * q.bits) / 32], data: q.values },
    { name: `${name}.qscales`, dtype: 'F16', shape: [q.N, q.groups], data: f32ArrayToF16(q.scales) },
  ];
  if (q.zeros) out.push({ name: `${name}.qzeros`, dtype: 'F16', shape: [q.N, q.groups], data: f32ArrayToF16(q.zeros) });
  return out;
}

export function hasQuantized(store: TensorStore, name: string): boolean {
  return store.has(`${name}.qvalues`);
}

/** Reads W's packed tensors back, checking every shape against [N, K] and the spec. */
export async function readQuantized(store: TensorStore, name: string, N: number, K: number, spec: QuantSpec): Promise<QuantizedWeight> {
  const { Kp, groupSize, groups, wordsPerRow } = layoutFor(K, spec);
  const expect = (suffix: string, dtypes: string[], shape: number[]) => {
    const t = store.get(`${name}${suffix}`);
    if (!t) throw new PrequantError(`${store.name}: missing tensor "${name}${suffix}" of the pre-quantized weight "${name}"`);
    if (!dtypes.includes(t.dtype) || t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
      throw new PrequantError(`${store.name}: tensor "${name}${suffix}" is ${t.dtype} [${t.shape.join(', ')}], expected ${dtypes.join(' or ')} [${shape.join(', ')}] for a [${N}, ${K}] weight at ${spec.bits} bits, group ${spec.group}`);
    }
  };
  expect('.qvalues', ['U32'], [N, wordsPerRow]);
  // F16 from webq-quant-2 on, F32 in webq-quant-1 files.
  expect('.qscales', ['F16', 'F32'], [N, groups]);
  if (!spec.symmetric) expect('.qzeros', ['F16', 'F32'], [N, groups]);
  const values = (await store.readAs(`${name}.qvalues`, 'u32')) as Uint32Array;
  const scales = (await store.readAs(`${name}.qscales`, 'f32')) as Float32Array;
  const zeros = spec.symmetric ? null : ((await store.readAs(`${name}.qzeros`, 'f32')) as Float32Array);
  return { N, K, Kp, groupSize, groups, bits: spec.bits, symmetric: spec.symmetric, values, scales, zeros };
}

/** Rows of several weights with the same K and spec, stacked (e.g. Q, K, V into one QKV). */
export function stackQuantized(parts: QuantizedWeight[]): QuantizedWeight {
  if (parts.length === 1) return parts[0];
  const [p0] = parts;
  const N = parts.reduce((s, p) => s + p.N, 0);
  const cat = <A extends Uint32Array | Float32Array>(pick: (p: QuantizedWeight) => A, make: (n: number) => A): A => {
    const out = make(parts.reduce((s, p) => s + pick(p).length, 0));
    let off = 0;
    for (const p of parts) {
      out.set(pick(p), off);
      off += pick(p).length;
    }
    return out;
  };
  return {
    ...p0,
    N,
    values: cat((p) => p.values, (n) => new Uint32Array(n)),
    scales: cat((p) => p.scales, (n) => new Float32Array(n)),
    zeros: p0.zeros ? cat((p) => p.zeros!, (n) => new Float32Array(n)) : null,
  };
}

/** Rows [n0, n0 + n) of a quantized weight (the inverse of stackQuantized). */
export function sliceQuantized(q: QuantizedWeight, n0: number, n: number): QuantizedWeight {
  const words = (q.Kp * q.bits) / 32;
  return {
    ...q,
    N: n,
    values: q.values.slice(n0 * words, (n0 + n) * words),
    scales: q.scales.slice(n0 * q.groups, (n0 + n) * q.groups),
    zeros: q.zeros ? q.zeros.slice(n0 * q.groups, (n0 + n) * q.groups) : null,
  };
}
