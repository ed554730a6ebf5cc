// Other tools' pre-quantized Linears are read from files strangers publish (issue 26): seeded
// mutations of a GPTQ (v1, v2, act-order), AWQ, compressed-tensors (packed and int-quantized) and
// bitsandbytes Linear -- tensors reshaped, retyped, dropped or renamed, codes, zero points and
// g_idx out of range, scales NaN / Inf / negative, quantization_config fields set to hostile values
// -- must each read into a valid integer weight (codes within their bits, group indices within the
// groups, finite scales, a finite dequantization) that maps onto webq's layout, or end in one typed
// error, in bounded time. Every 50th case is also a whole BERT checkpoint loaded on a shared device:
// a refusal leaves the device's buffers and the folder as they were. FUZZ_SEED / FUZZ_CASES rerun.
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { WebqError } from '../../src/errors.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { DTYPE_SIZE, type DType } from '../../src/io/safetensors/dtypes.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { encodeSafetensors, writeSafetensorsFile, type TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { commonSpec, exactDequant, parseQuantizationConfig, readImported, relayout, toWebq } from '../../src/quant/imports/index.ts';
import { snapshot } from '../helpers/delta-fixtures.ts';
import { BERT_LINEARS, packLinear, quantizationConfig, writeQuantizedCopy, type FormatSpec } from '../helpers/quant-formats.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { rng } from '../kernels/check.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const FIRST_SEED = Number(process.env.FUZZ_SEED ?? 1);
const CASES = Number(process.env.FUZZ_CASES ?? 2400);
const CASE_MS = 3000;
const tmp = useTempDir('webq-qfuzz-');
const N = 16;
const K = 64;
const BASE = 'encoder.layer.0.attention.self.query';

const SPECS: [string, FormatSpec][] = [
  ['gptq4-g32-asym', { format: 'gptq', bits: 4, group: 32, sym: false }],
  ['gptq8-v2-actorder', { format: 'gptq', bits: 8, group: 16, sym: true, v2: true, actOrder: 'permuted' }],
  ['gptq4-channel', { format: 'gptq', bits: 4, group: -1, sym: false }],
  ['awq-g32', { format: 'awq', group: 32 }],
  ['ct-pack4-g32-asym', { format: 'compressed-tensors', bits: 4, strategy: 'group', group: 32, sym: false }],
  ['ct-int8-channel', { format: 'compressed-tensors', bits: 8, strategy: 'channel', group: 0, sym: true, unpacked: true }],
  ['ct-pack4-actorder', { format: 'compressed-tensors', bits: 4, strategy: 'group', group: 16, sym: true, actOrder: 'permuted' }],
  ['bnb-int8', { format: 'bitsandbytes' }],
];

const HOSTILE: unknown[] = [null, true, 'x', '', -1, 0, 1, 2, 3, 5, 7, 16, 33, 1e9, 2 ** 53, 1.5, Number.NaN, [], {}, [4], 'group', 'channel', 'token', 'tensor', 'int', 'float', '__proto__', 'gptq_v2', 'gemv', 'pack-quantized', 'int-quantized'];
const CONFIG_FIELDS = ['bits', 'group_size', 'sym', 'desc_act', 'checkpoint_format', 'version', 'zero_point', 'quant_method', 'format', 'load_in_8bit', 'llm_int8_has_fp16_weight', 'num_bits', 'strategy', 'symmetric', 'type', 'actorder', 'targets', 'ignore'];
const DTYPES: DType[] = ['I32', 'F16', 'F32', 'BF16', 'I8', 'U8', 'I64', 'F64', 'BOOL'];

function weights(seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: N * K }, () => (r() - 0.5) * (1 + 3 * r() * r()));
}

/** Data of `bytes` random bytes (a reshaped or retyped tensor keeps a consistent file). */
function randomBytes(n: number, r: () => number): Uint8Array {
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
}

const elements = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** Writes `value` into elements of `t` (its own dtype), at random places. */
function poke(t: TensorToWrite, r: () => number, values: number[]): void {
  const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength).slice();
  const dv = new DataView(bytes.buffer);
  const n = elements(t.shape);
  for (let j = 0; j < 1 + Math.floor(r() * 4) && n > 0; j++) {
    const i = Math.floor(r() * n);
    const v = values[Math.floor(r() * values.length)];
    if (t.dtype === 'I32') dv.setInt32(i * 4, v, true);
    else if (t.dtype === 'F32') dv.setFloat32(i * 4, v, true);
    else if (t.dtype === 'F16') dv.setUint16(i * 2, Number.isNaN(v) ? 0x7e00 : v === Infinity ? 0x7c00 : v === -Infinity ? 0xfc00 : v < 0 ? 0xbc00 : 0x3c00, true);
    else if (t.dtype === 'I8') dv.setInt8(i, Math.max(-128, Math.min(127, v)) | 0);
    else if (t.dtype === 'U8') dv.setUint8(i, Math.max(0, Math.min(255, v)) | 0);
  }
  (t as { data: Uint8Array }).data = bytes;
}

function mutate(tensors: TensorToWrite[], config: Record<string, unknown>, r: () => number): void {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  for (let m = 1 + Math.floor(r() * 2); m > 0; m--) {
    const i = Math.floor(r() * tensors.length);
    const t = tensors[i];
    const what = Math.floor(r() * 8);
    if (what === 0) {
      // Reshaped: one dimension off by one, doubled, halved, zero, or an extra dimension.
      const shape = [...t.shape];
      const d = Math.floor(r() * shape.length);
      const change = pick(['+1', '-1', '*2', '/2', '0', 'extra', 'swap']);
      if (change === 'extra') shape.push(pick([1, 2]));
      else if (change === 'swap') shape.reverse();
      else shape[d] = Math.max(0, change === '+1' ? shape[d] + 1 : change === '-1' ? shape[d] - 1 : change === '*2' ? shape[d] * 2 : change === '/2' ? shape[d] >> 1 : 0);
      tensors[i] = { ...t, shape, data: randomBytes(elements(shape) * DTYPE_SIZE[t.dtype], r) };
    } else if (what === 1) {
      const dtype = pick(DTYPES);
      tensors[i] = { ...t, dtype, data: randomBytes(elements(t.shape) * DTYPE_SIZE[dtype], r) };
    } else if (what === 2) tensors.splice(i, 1);
    else if (what === 3) {
      const to = t.name.replace(/\.(\w+)$/, pick(['.$1x', '.weight', '.qweight', '.scales', '.g_idx', '.SCB']));
      if (tensors.some((x) => x.name === to)) tensors.splice(i, 1);
      else tensors[i] = { ...t, name: to };
    }
    else if (what <= 5) {
      // Codes, zero points, group indices and scales out of range.
      poke(t, r, [-1, -100, 2 ** 31 - 1, -(2 ** 31), 15, 16, 255, 256, 1e6, Number.NaN, Infinity, -Infinity, 0, -0.5]);
    } else {
      const qc = r() < 0.5 || !config.config_groups ? config : ((config.config_groups as Record<string, { weights: Record<string, unknown> }>).group_0?.weights ?? config);
      const k = pick(CONFIG_FIELDS);
      if (r() < 0.15) delete qc[k];
      else qc[k] = pick(HOSTILE);
    }
  }
}

type Outcome<T> = { value?: T; error?: WebqError; untyped?: string };
async function outcome<T>(f: () => T | Promise<T>): Promise<Outcome<T>> {
  try {
    return { value: await f() };
  } catch (e) {
    if (e instanceof WebqError && typeof e.code === 'string') return { error: e };
    return { untyped: e instanceof Error ? `${e.name}: ${e.message.slice(0, 200)}` : String(e) };
  }
}

let ctx: GpuContext;
let bertQuant: Record<string, string> = {};

beforeAll(async () => {
  ctx = await GpuContext.create();
  const float = (await writeTinyBert(join(tmp.dir, 'float'), { hidden: 64, heads: 2, intermediate: 128, layers: 1 })).dir;
  for (const [name, spec] of SPECS) {
    const dir = join(tmp.dir, `bert-${name}`);
    await writeQuantizedCopy(float, dir, spec, BERT_LINEARS);
    bertQuant[name] = dir;
    // The context makes its placeholder tensors on first use: made here, they are not counted as a load's.
    const m = await BertModel.load(dir, { context: ctx });
    await m.embed(['warm up']);
    m.dispose();
  }
}, 300_000);
afterAll(() => ctx?.dispose());

describe('quantization import fuzz', () => {
  it(`${CASES} mutated Linears from seed ${FIRST_SEED} over ${SPECS.length} formats: a valid integer weight or a typed error`, async () => {
    const failures: string[] = [];
    const counts = { cases: 0, read: 0, refused: 0, float: 0, modelLoads: 0, modelRefusals: 0 };
    let slowest = 0;
    const t0 = performance.now();
    for (let seed = FIRST_SEED; seed < FIRST_SEED + CASES; seed++) {
      const [name, spec] = SPECS[seed % SPECS.length];
      const r = rng(seed * 31 + 7);
      const tensors = packLinear(BASE, weights(seed), N, K, spec, seed).tensors;
      const config = structuredClone(quantizationConfig(spec));
      mutate(tensors, config, r);
      const fail = (why: string) => failures.push(`${name} seed ${seed}: ${why}\n  config: ${JSON.stringify(config).slice(0, 300)}\n  tensors: ${tensors.map((t) => `${t.name} ${t.dtype}[${t.shape}]`).join(', ')}`);
      const start = performance.now();
      counts.cases++;
      const store = await SafetensorsFile.open(new Blob(encodeSafetensors(tensors)));
      try {
        const res = await outcome(async () => {
          const format = parseQuantizationConfig(config as never, 'fuzz/config.json');
          const lin = format?.linear(store, BASE, N, K) ?? null;
          if (!lin) return null;
          const iw = await readImported(lin);
          const bad = invalid(iw);
          if (bad) return `read into an invalid weight: ${bad}`;
          relayout(toWebq(iw), commonSpec([toWebq(iw)]));
          return 'ok';
        });
        if (res.untyped) fail(`untyped ${res.untyped}`);
        else if (res.error) counts.refused++;
        else if (res.value === null) counts.float++;
        else if (res.value !== 'ok') fail(res.value!);
        else counts.read++;
      } finally {
        await store.close();
      }
      const ms = performance.now() - start;
      slowest = Math.max(slowest, ms);
      if (ms > CASE_MS) fail(`took ${ms.toFixed(0)} ms`);
      if (seed % 50 === 0) await modelLoad(name, seed, fail, counts);
    }
    console.log(`quantization import fuzz: ${counts.cases} cases in ${((performance.now() - t0) / 1000).toFixed(1)} s (slowest ${slowest.toFixed(0)} ms): ${counts.read} read and mapped, ${counts.float} read as float, ${counts.refused} refused with a typed error; ${counts.modelLoads} model loads, ${counts.modelRefusals} refused; ${failures.length} failures`);
    if (failures.length) console.log(`first failures (rerun with FUZZ_SEED / FUZZ_CASES):\n${failures.slice(0, 10).join('\n')}`);
    expect(failures).toEqual([]);
  }, 600_000);
});

/** Why `w` is not a weight the kernels can run, or null. */
function invalid(w: Awaited<ReturnType<typeof readImported>>): string | null {
  const max = 2 ** w.bits;
  if (w.codes.length !== w.N * w.K) return `${w.codes.length} codes for [${w.N}, ${w.K}]`;
  if (w.gIdx.length !== w.K || w.gIdx.some((g) => !(g >= 0 && g < w.groups))) return `g_idx outside 0..${w.groups - 1}`;
  if (w.codes.some((c) => c >= max)) return `a code >= ${max}`;
  if (w.scales.length !== w.N * w.groups || w.zeros.length !== w.N * w.groups) return 'scales / zeros of the wrong length';
  if (!w.scales.every(Number.isFinite)) return 'a scale that is not finite';
  if (!w.zeros.every((z) => Number.isFinite(z) && z >= 0 && z <= max)) return 'a zero point outside the code range';
  if (!exactDequant(w).every(Number.isFinite)) return 'a dequantized value that is not finite';
  return null;
}

/** The mutation applied to one Linear of a whole quantized BERT, loaded on the shared device. */
async function modelLoad(name: string, seed: number, fail: (why: string) => void, counts: { modelLoads: number; modelRefusals: number }): Promise<void> {
  const dir = join(tmp.dir, `case-${seed}`);
  await mkdir(dir);
  await cp(bertQuant[name], dir, { recursive: true });
  const store = await SafetensorsFile.open(join(dir, 'model.safetensors'));
  const tensors: TensorToWrite[] = [];
  for (const t of store.tensors) tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await store.readBytes(t.name) });
  await store.close();
  const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
  const r = rng(seed * 31 + 7);
  const mine = tensors.filter((t) => t.name.startsWith(`${BASE}.`));
  const rest = tensors.filter((t) => !t.name.startsWith(`${BASE}.`));
  mutate(mine, config.quantization_config, r);
  await writeSafetensorsFile(join(dir, 'model.safetensors'), [...rest, ...mine.filter((t) => !rest.some((x) => x.name === t.name))]);
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  const files = await snapshot(dir);
  const before = ctx.stats();
  counts.modelLoads++;
  try {
    const m = await BertModel.load(dir, { context: ctx });
    await m.embed(['a quick test']);
    m.dispose();
  } catch (e) {
    counts.modelRefusals++;
    if (!(e instanceof WebqError)) fail(`model load: untyped ${e instanceof Error ? `${e.name}: ${e.message}` : e}`);
  }
  const after = ctx.stats();
  if (after.ownedBytes !== before.ownedBytes || after.ownedBuffers !== before.ownedBuffers) fail(`model load left ${after.ownedBytes - before.ownedBytes} bytes in ${after.ownedBuffers - before.ownedBuffers} buffers on the GPU`);
  if (ctx.dev.error) fail(`the device failed: ${ctx.dev.error.message}`);
  expect(await snapshot(dir)).toEqual(files);
}
