/**
 * compressed-tensors checkpoints (llm-compressor exports; `quant_method: "compressed-tensors"`).
 * quantization_config lists config_groups, each with `targets` (module names, "re:" regexes, or
 * the class "Linear") and `weights` args (num_bits, type, symmetric, strategy, group_size), plus
 * `ignore` and a `format`. A Linear [N, K] in the formats read here:
 *
 *   pack-quantized   weight_packed      I32 [N, ceil(K/p)]   p = 32/bits codes per word, code k of
 *                                                            the row at bits `bits*(k % p)` of word
 *                                                            k/p, stored as value + 2^(bits-1)
 *                                                            (pack_to_int32)
 *                    weight_shape       I32/I64 [2] = [N, K]
 *   int-quantized    weight             I8 [N, K]            the signed values themselves
 *   both             weight_scale       [N, K/G] (group), [N, 1] (channel), [1] (tensor)
 *                    weight_zero_point  asymmetric only: packed along N, I32 [ceil(N/p), groups]
 *                                       (older files: I8 [N, groups]); signed like the values
 *                    weight_g_idx       I32 [K], optional (actorder "group"; -1s: column order)
 *
 * Dequantization (compressed_tensors forward.py _dequantize): W = (value - zero_point) * scale,
 * per group of columns (in g_idx order when given). With code = value + 2^(bits-1) and zero =
 * zero_point + 2^(bits-1), that is the common (code - zero) * scale form.
 * Not supported, and named: float-quantized (FP8), nvfp4, marlin-24, block and tensor_group
 * strategies, sparsity compression.
 */
import type { DType } from '../../io/safetensors/dtypes.ts';
import type { JsonObject, JsonValue } from '../../io/json.ts';
import type { TensorStore } from '../../io/safetensors/reader.ts';
import { checkBits, configFields, contiguousGroups, expectTensor, ImportError, isJsonObject, lookup, named, readF32, readGroupIndex, readWords, shown, type ImportDType, type ImportFormat, type ImportedLinear } from './common.ts';

type Strategy = 'channel' | 'group' | 'tensor';
type Layout = 'pack-quantized' | 'int-quantized';

/** A config group's target: a module name, a Python regex ("re:..."), or the class "Linear". */
interface Target {
  readonly text: string;
  readonly re: RegExp | null;
}

interface Scheme {
  name: string;
  targets: Target[];
  layout: Layout;
  bits: 4 | 8;
  symmetric: boolean;
  strategy: Strategy;
  group: number;
  /** Activations quantized to int8 (W8A8 schemes). */
  int8Activations: boolean;
}

const LAYOUTS: Record<string, Layout> = { 'pack-quantized': 'pack-quantized', 'int-quantized': 'int-quantized', 'naive-quantized': 'int-quantized' };
const UNSUPPORTED: Record<string, string> = {
  'float-quantized': 'float-quantized (FP8 weights)',
  'nvfp4-pack-quantized': 'nvfp4-pack-quantized (FP4 weights)',
  'mxfp4-pack-quantized': 'mxfp4-pack-quantized (FP4 weights)',
  'marlin-24': 'marlin-24 (2:4 sparse Marlin packing)',
  'sparse-24-bitmask': 'sparse-24-bitmask (2:4 sparsity)',
  'sparse-bitmask': 'sparse-bitmask (sparsity)',
};

function unsupported(where: string, what: string): ImportError {
  return new ImportError('QUANT_IMPORT_UNSUPPORTED', `${where}: ${what} is not supported; webq reads compressed-tensors "pack-quantized" and "int-quantized" integer weights`);
}

function parseScheme(name: string, g: JsonObject, globalFormat: string | undefined, where: string): Scheme | null {
  const w = g.weights;
  const at = `${where}.config_groups.${named(name)}`;
  if (w === null || w === undefined) return null; // activations only: no weight to read
  if (!isJsonObject(w)) throw new ImportError('QUANT_IMPORT_CONFIG', `${at}.weights must be an object`);
  const format = typeof g.format === 'string' ? g.format : globalFormat;
  const unsupportedFormat = format === undefined ? undefined : lookup(UNSUPPORTED, format);
  if (unsupportedFormat) throw unsupported(at, unsupportedFormat);
  const type = (typeof w.type === 'string' ? w.type : 'int').toLowerCase();
  if (type !== 'int') throw unsupported(at, `weights of type ${shown(type)}${type === 'float' ? ' (FP8/FP4)' : ''}`);
  const layout = format === undefined ? undefined : lookup(LAYOUTS, format);
  if (!layout) throw unsupported(at, `format ${shown(format ?? null)}`);
  const strategy = (typeof w.strategy === 'string' ? w.strategy : 'tensor').toLowerCase();
  if (strategy !== 'channel' && strategy !== 'group' && strategy !== 'tensor') throw unsupported(at, `the ${shown(strategy)} weight strategy`);
  const bits = checkBits(typeof w.num_bits === 'number' ? w.num_bits : 8, at, 'compressed-tensors');
  const group = strategy === 'group' ? (typeof w.group_size === 'number' && Number.isSafeInteger(w.group_size) && w.group_size > 0 && w.group_size < 2 ** 31 ? w.group_size : NaN) : 0;
  if (Number.isNaN(group)) throw new ImportError('QUANT_IMPORT_CONFIG', `${at}.weights.group_size must be a positive integer for the "group" strategy, got ${shown(w.group_size ?? null)}`);
  const targets = Array.isArray(g.targets) ? (g.targets as JsonValue[]) : [];
  if (!targets.every((t): t is string => typeof t === 'string')) throw new ImportError('QUANT_IMPORT_CONFIG', `${at}.targets must be a list of strings`);
  const act = g.input_activations;
  const int8Activations = isJsonObject(act) && (act.type ?? 'int') === 'int' && act.num_bits === 8;
  return { name, targets: targets.map((t) => target(t, at)), layout, bits, symmetric: w.symmetric !== false, strategy, group, int8Activations };
}

/**
 * Why matching a regex could take very long (V8 backtracks: "(.*)*x" against a 40-character name
 * is 2^40 steps), or null. A "re:" target comes from config.json, so only patterns that match in
 * polynomial time and few steps are run: at most 3 repeated items (*, +, {n,m}), none of them a
 * group holding a repeat or an alternative, no back-references, at most 500 characters. Every
 * target llm-compressor writes ("re:.*q_proj$", "re:model.layers.\d+.mlp.(gate|up)_proj") fits.
 */
export function slowRegexReason(src: string): string | null {
  if (src.length > 500) return `it is ${src.length} characters long (at most 500)`;
  if (/\\[1-9]|\\k</.test(src)) return 'it has a back-reference';
  let repeats = 0;
  // Per open group (the first is the whole pattern): does it hold a repeat or an alternative?
  const risky: boolean[] = [false];
  let closedRiskyGroup = false; // the item just before is a group that holds one
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    let afterGroup = false;
    if (c === '\\') i++;
    else if (c === '[') {
      for (i++; i < src.length && src[i] !== ']'; i++) if (src[i] === '\\') i++;
    } else if (c === '(') {
      risky.push(false);
      if (src[i + 1] === '?') i += 2; // (?: (?= (?! (?<
    } else if (c === ')') {
      const inner = risky.length > 1 ? risky.pop()! : false;
      risky[risky.length - 1] ||= inner;
      closedRiskyGroup = inner;
      afterGroup = true;
    } else if (c === '|') risky[risky.length - 1] = true;
    else if (c === '*' || c === '+' || c === '{') {
      let most = Infinity;
      if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i, i + 24));
        most = !m ? 1 : m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]); // no match: a literal brace
        if (m && (Number(m[1]) > 1000 || (most !== Infinity && most > 1000))) return `it repeats something ${m[0]} times (at most 1000)`;
        if (m) i += m[0].length - 1;
      }
      if (most > 1) {
        if (++repeats > 3) return 'it repeats more than 3 items';
        if (closedRiskyGroup) return 'it repeats a group that holds a repeat or an alternative';
        risky[risky.length - 1] = true;
      }
    }
    if (!afterGroup && c !== '?') closedRiskyGroup = false;
  }
  return null;
}

function target(text: string, where: string): Target {
  if (!text.startsWith('re:')) return { text, re: null };
  const slow = slowRegexReason(text.slice(3));
  if (slow) throw new ImportError('QUANT_IMPORT_UNSUPPORTED', `${where}: target ${shown(text)} is not run: ${slow}, which could make matching slow`);
  try {
    return { text, re: new RegExp(`^(?:${text.slice(3)})`) };
  } catch {
    throw new ImportError('QUANT_IMPORT_CONFIG', `${where}: target ${shown(text)} is not a regular expression webq can read`);
  }
}

/** Python re.match semantics: anchored at the start only. */
function targetMatch(t: Target, base: string): 'name' | 'regex' | 'class' | null {
  if (t.re) return t.re.test(base) ? 'regex' : null;
  if (t.text === base) return 'name';
  return t.text === 'Linear' ? 'class' : null;
}

export function parseCompressedTensors(qc: JsonObject, source: string): ImportFormat {
  const f = configFields(qc, source);
  const sparsity = qc.sparsity_config;
  if (isJsonObject(sparsity) && typeof sparsity.format === 'string' && sparsity.format !== 'dense') throw unsupported(f.where, `sparsity_config format "${sparsity.format}"`);
  const globalFormat = f.str('format');
  const groups = qc.config_groups;
  if (!isJsonObject(groups)) throw f.bad('config_groups', 'an object of quantization schemes');
  const schemes = Object.keys(groups).map((name) => {
    const g = groups[name];
    if (!isJsonObject(g)) throw new ImportError('QUANT_IMPORT_CONFIG', `${f.where}.config_groups.${named(name)} must be an object`);
    return parseScheme(name, g, globalFormat, f.where);
  }).filter((s): s is Scheme => s !== null);
  if (schemes.length === 0) throw new ImportError('QUANT_IMPORT_UNSUPPORTED', `${f.where}: no config group quantizes weights; nothing for webq to read`);

  const schemeFor = (store: TensorStore, base: string): Scheme => {
    for (const kind of ['name', 'regex', 'class'] as const) {
      const s = schemes.find((sc) => sc.targets.some((t) => targetMatch(t, base) === kind));
      if (s) return s;
    }
    throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: "${base}.weight_scale" is stored quantized, but no config_groups target matches "${base}" (targets: ${shown(schemes.flatMap((s) => s.targets.map((t) => t.text)), 300)})`);
  };

  const linear = (store: TensorStore, base: string, N: number, K: number): ImportedLinear | null => {
    const packed = `${base}.weight_packed`;
    const plain = `${base}.weight`;
    const isPacked = store.has(packed);
    const isInt = !isPacked && store.has(`${base}.weight_scale`) && ['I8', 'U8', 'I32'].includes(store.get(plain)?.dtype ?? '');
    if (!isPacked && !isInt) return null;
    const s = schemeFor(store, base);
    const { bits } = s;
    const p = 32 / bits;
    const offset = 1 << (bits - 1);
    const G = s.strategy === 'group' ? s.group : K;
    const why = `a [${N}, ${K}] Linear at ${bits} bits, ${s.strategy === 'group' ? `group ${G}` : s.strategy} (config group "${s.name}")`;
    if (isPacked !== (s.layout === 'pack-quantized')) throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: "${isPacked ? packed : plain}" is stored ${isPacked ? 'packed' : 'unpacked'}, but config group "${s.name}" says ${s.layout}`);
    if (s.strategy === 'group' && K % G !== 0) throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: "${isPacked ? packed : plain}": group_size ${G} does not divide the Linear's ${K} inputs`);
    const groups = s.strategy === 'group' ? K / G : 1;
    const rowScales = s.strategy !== 'tensor';
    if (isPacked) {
      const t = store.get(packed)!;
      const other = 12 - bits; // 4 <-> 8
      if (t.shape.length === 2 && t.shape[0] === N && t.shape[1] !== Math.ceil(K / p) && t.shape[1] === Math.ceil((K * other) / 32)) {
        throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: tensor "${packed}" is [${t.shape.join(', ')}], expected [${N}, ${Math.ceil(K / p)}] for ${why}; [${t.shape.join(', ')}] is ${other}-bit packing: does num_bits (${bits}) match the checkpoint?`);
      }
      expectTensor(store, packed, ['I32'], [N, Math.ceil(K / p)], why);
      expectTensor(store, `${base}.weight_shape`, ['I32', 'I64'], [2], why);
    } else {
      expectTensor(store, plain, ['I8'], [N, K], why);
    }
    const scaleName = `${base}.weight_scale`;
    const scaleShape = store.get(scaleName)?.shape ?? [];
    const scaleDtypes: DType[] = ['F16', 'BF16', 'F32'];
    if (rowScales) expectTensor(store, scaleName, scaleDtypes, [N, groups], why);
    else if (scaleShape.reduce((a, b) => a * b, 1) !== 1) expectTensor(store, scaleName, scaleDtypes, [1], why);
    const zpName = `${base}.weight_zero_point`;
    const zp = store.get(zpName);
    if (!s.symmetric && !zp) throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: missing tensor "${zpName}"; config group "${s.name}" is asymmetric, so each ${rowScales ? '(row, group)' : 'tensor'} needs a zero point`);
    const zpPacked = zp !== undefined && zp.dtype === 'I32' && rowScales;
    if (zp && rowScales) expectTensor(store, zpName, zpPacked ? ['I32'] : ['I8'], zpPacked ? [Math.ceil(N / p), groups] : [N, groups], why);
    const gName = `${base}.weight_g_idx`;
    const hasG = store.has(gName);
    if (hasG) expectTensor(store, gName, ['I32', 'I64'], [K], why);
    const name = isPacked ? packed : plain;
    const readGIdx = async () => {
      if (hasG) {
        const raw = (await store.readAs(gName, 'i32')) as Int32Array;
        if (!raw.includes(-1)) return readGroupIndex(store, gName, K, groups); // -1s: never set, column order
      }
      return contiguousGroups(K, G);
    };
    return {
      base, N, K, bits, symmetric: s.symmetric,
      readGIdx,
      tensors: [name, scaleName, ...(isPacked ? [`${base}.weight_shape`] : []), ...(zp ? [zpName] : []), ...(hasG ? [gName] : [])],
      async readGroups() {
        if (isPacked) {
          const shape = (await store.readAs(`${base}.weight_shape`, 'i32')) as Int32Array;
          if (shape[0] !== N || shape[1] !== K) throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: tensor "${base}.weight_shape" says [${shape[0]}, ${shape[1]}], expected [${N}, ${K}] (config.json)`);
        }
        const gIdx = await readGIdx();
        const sc = await readF32(store, scaleName);
        const scales = rowScales ? sc : new Float32Array(N).fill(sc[0]);
        const zeros = new Float32Array(N * groups).fill(offset);
        if (zp && rowScales && zpPacked) {
          const words = await readWords(store, zpName); // [ceil(N/p), groups], packed along N
          for (let n = 0; n < N; n++) {
            for (let g = 0; g < groups; g++) zeros[n * groups + g] = (words[Math.floor(n / p) * groups + g] >>> (bits * (n % p))) & ((1 << bits) - 1);
          }
        } else if (zp) {
          const z = (await store.readAs(zpName, 'i8')) as Int8Array;
          for (let i = 0; i < zeros.length; i++) zeros[i] = (rowScales ? z[i] : z[0]) + offset;
        }
        return { groups, gIdx, scales, zeros };
      },
      async readCodes() {
        const codes = new Uint8Array(N * K);
        if (isPacked) {
          const words = await readWords(store, packed);
          const wpr = Math.ceil(K / p);
          const mask = (1 << bits) - 1;
          for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) codes[n * K + k] = (words[n * wpr + Math.floor(k / p)] >>> (bits * (k % p))) & mask;
          return codes;
        }
        const v = (await store.readAs(plain, 'i8')) as Int8Array;
        for (let i = 0; i < v.length; i++) {
          const c = v[i] + offset;
          if (c < 0 || c >= 1 << bits) throw new ImportError('QUANT_IMPORT_TENSOR', `${store.name}: tensor "${plain}" holds ${v[i]} at element ${i}, outside the ${bits}-bit range ${-offset}..${offset - 1}`);
          codes[i] = c;
        }
        return codes;
      },
    };
  };

  const s0 = schemes[0];
  const dtype: ImportDType = s0.int8Activations && s0.bits === 8 ? 'w8a8' : s0.bits === 8 ? 'q8' : 'q4';
  const describeScheme = (s: Scheme) =>
    `${s.layout} int${s.bits}, ${s.strategy === 'group' ? `group ${s.group}` : s.strategy === 'channel' ? 'per channel' : 'per tensor'}, ${s.symmetric ? 'symmetric' : 'asymmetric'}${s.int8Activations ? ', int8 activations' : ''}`;
  return {
    method: 'compressed-tensors',
    description: `compressed-tensors ${schemes.map(describeScheme).join('; ')}`,
    dtype,
    marker: '.weight_scale',
    linear,
    async shapeOf(store, base) {
      if (store.has(`${base}.weight_shape`)) {
        const s = (await store.readAs(`${base}.weight_shape`, 'i32')) as Int32Array;
        return [s[0], s[1]];
      }
      const t = store.get(`${base}.weight`);
      return [t?.shape[0] ?? 0, t?.shape[1] ?? 0];
    },
  };
}
