/**
 * webq's pre-quantized safetensors: a checkpoint whose Linear weights are already packed, so a
 * load skips quantization and the file is 2-7x smaller. A weight named `W` ([N, K] in the source)
 * becomes three tensors in the layout of layout.ts:
 *
 *   W.qvalues  U32 [N, Kp * bits / 32]   packed codes
 *   W.qscales  F32 [N, groups]           (F32 so the result equals quantizing at load time)
 *   W.qzeros   F32 [N, groups]           asymmetric only
 *
 * and `__metadata__` says how: webq.format = "webq-quant-1", webq.dtype (q8, q4, w8a8, w4a8),
 * webq.bits, webq.group (32, 64, 128 or channel), webq.symmetric ("true" | "false").
 * Everything else (embeddings, norms, biases) is stored as in the source.
 */
import { WebqError } from '../errors.ts';
import type { TensorStore } from '../io/safetensors.ts';
import type { TensorToWrite } from '../io/writer.ts';
import { layoutFor, validateSpec, type QuantizedWeight, type QuantSpec } from './layout.ts';

export const PREQUANT_FORMAT = 'webq-quant-1';

export interface PrequantInfo {
  dtype: string;
  spec: QuantSpec;
}

export class PrequantError extends WebqError {
  constructor(message: string) {
    super('PREQUANT', message);
  }
}

export function prequantMetadata(dtype: string, spec: QuantSpec): Record<string, string> {
  return {
    'webq.format': PREQUANT_FORMAT,
    'webq.dtype': dtype,
    'webq.bits': String(spec.bits),
    'webq.group': String(spec.group),
    'webq.symmetric': String(spec.symmetric),
  };
}

/** The quantization a checkpoint was written with, or null for an ordinary float checkpoint. */
export function readPrequantInfo(store: TensorStore): PrequantInfo | null {
  const m = store.metadata;
  if (m['webq.format'] === undefined) return null;
  if (m['webq.format'] !== PREQUANT_FORMAT) throw new PrequantError(`${store.name}: webq.format is "${m['webq.format']}"; this webq reads "${PREQUANT_FORMAT}"`);
  const group = m['webq.group'] === 'channel' ? 'channel' : Number(m['webq.group']);
  const spec: QuantSpec = { bits: Number(m['webq.bits']) as 4 | 8, group, symmetric: m['webq.symmetric'] === 'true' };
  try {
    validateSpec(spec);
  } catch (e) {
    throw new PrequantError(`${store.name}: bad webq quantization metadata: ${(e as Error).message}`);
  }
  if (!m['webq.dtype']) throw new PrequantError(`${store.name}: metadata has no webq.dtype`);
  return { dtype: m['webq.dtype'], spec };
}

export function quantizedTensors(name: string, q: QuantizedWeight): TensorToWrite[] {
  const out: TensorToWrite[] = [
    { name: `${name}.qvalues`, dtype: 'U32', shape: [q.N, (q.Kp * q.bits) / 32], data: q.values },
    { name: `${name}.qscales`, dtype: 'F32', shape: [q.N, q.groups], data: q.scales },
  ];
  if (q.zeros) out.push({ name: `${name}.qzeros`, dtype: 'F32', shape: [q.N, q.groups], data: q.zeros });
  return out;
}

export function hasQuantized(store: TensorStore, name: string): boolean {
  return store.has(`${name}.qvalues`);
}

/** Reads W's packed tensors back, checking every shape against [N, K] and the spec. */
export async function readQuantized(store: TensorStore, name: string, N: number, K: number, spec: QuantSpec): Promise<QuantizedWeight> {
  const { Kp, groupSize, groups, wordsPerRow } = layoutFor(K, spec);
  const expect = (suffix: string, dtype: string, shape: number[]) => {
    const t = store.get(`${name}${suffix}`);
    if (!t) throw new PrequantError(`${store.name}: missing tensor "${name}${suffix}" of the pre-quantized weight "${name}"`);
    if (t.dtype !== dtype || t.shape.length !== 2 || t.shape[0] !== shape[0] || t.shape[1] !== shape[1]) {
      throw new PrequantError(`${store.name}: tensor "${name}${suffix}" is ${t.dtype} [${t.shape.join(', ')}], expected ${dtype} [${shape.join(', ')}] for a [${N}, ${K}] weight at ${spec.bits} bits, group ${spec.group}`);
    }
  };
  expect('.qvalues', 'U32', [N, wordsPerRow]);
  expect('.qscales', 'F32', [N, groups]);
  if (!spec.symmetric) expect('.qzeros', 'F32', [N, groups]);
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
