// Other tools' pre-quantized Linears (GPTQ, AWQ, compressed-tensors, bitsandbytes), packed exactly
// as their reference code packs them (test/helpers/quant-formats.ts), read by src/quant/imports:
// the exact dequantization equals the format's reference dequantizer bit for bit in f32, the webq
// layout it maps onto dequantizes (rtn.ts dequantizeWeight) to the same bits, and inputs that
// contradict quantization_config are errors naming the tensor. CPU only.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { writeSafetensorsFile, type TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { commonSpec, exactDequant, importReport, importReportText, parseQuantizationConfig, planLayout, readImported, relayout, toWebq, type ImportFormat } from '../../src/quant/imports/index.ts';
import type { QuantSpec } from '../../src/quant/layout.ts';
import { dequantizeWeight } from '../../src/quant/rtn.ts';
import { rng } from '../kernels/check.ts';
import { LLAMA_LINEARS, makeGIdx, packLinear, quantizationConfig, quantizeInts, packGptq, writeQuantizedCopy, type FormatSpec } from '../helpers/quant-formats.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';

let dir: string;
const opened: SafetensorsFile[] = [];
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-import-'));
});
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

function weights(N: number, K: number, seed: number): Float32Array {
  const r = rng(seed);
  const w = new Float32Array(N * K);
  for (let i = 0; i < w.length; i++) w[i] = (r() - 0.5) * (1 + 3 * r() * r()); // uneven, some large
  return w;
}

let files = 0;
async function store(tensors: TensorToWrite[]): Promise<SafetensorsFile> {
  const path = join(dir, `w${files++}.safetensors`);
  await writeSafetensorsFile(path, tensors);
  const st = await SafetensorsFile.open(path);
  opened.push(st);
  return st;
}

const format = (s: FormatSpec) => parseQuantizationConfig(quantizationConfig(s) as never)!;

/** Bit patterns, so -0 and +0 (and any rounding) differ. */
const bits = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
function firstMismatches(got: Float32Array, want: Float32Array, n = 3): string {
  const out: string[] = [];
  for (let i = 0; i < got.length && out.length < n; i++) if (bits(got)[i] !== bits(want)[i]) out.push(`[${i}] ${got[i]} vs ${want[i]}`);
  return out.join(', ');
}
function expectBitEqual(got: Float32Array, want: Float32Array, what: string): void {
  expect(got.length).toBe(want.length);
  const mism = firstMismatches(got, want);
  expect(mism, `${what}: first mismatches`).toBe('');
}

// [label, spec, N, K, expected webq spec (null: re-quantized to int8 symmetric group 32)]
const VARIANTS: [string, FormatSpec, number, number, QuantSpec | null][] = [
  ['GPTQ int4 g128 asym v1', { format: 'gptq', bits: 4, group: 128, sym: false }, 40, 256, { bits: 4, group: 128, symmetric: false }],
  ['GPTQ int4 g64 asym v2', { format: 'gptq', bits: 4, group: 64, sym: false, v2: true }, 24, 192, { bits: 4, group: 64, symmetric: false }],
  ['GPTQ int4 g32 sym', { format: 'gptq', bits: 4, group: 32, sym: true }, 16, 96, { bits: 4, group: 32, symmetric: true }],
  ['GPTQ int4 per channel (group -1), K=80 padded', { format: 'gptq', bits: 4, group: -1, sym: false }, 16, 80, { bits: 4, group: 'channel', symmetric: false }],
  ['GPTQ int8 g128 asym', { format: 'gptq', bits: 8, group: 128, sym: false }, 20, 256, { bits: 8, group: 128, symmetric: false }],
  ['GPTQ int8 g64 sym', { format: 'gptq', bits: 8, group: 64, sym: true, v2: true }, 12, 128, { bits: 8, group: 64, symmetric: true }],
  ['GPTQ int4 g256 (split into webq groups of 128)', { format: 'gptq', bits: 4, group: 256, sym: false }, 8, 512, { bits: 4, group: 128, symmetric: false }],
  ['GPTQ int4 act-order, groups out of order', { format: 'gptq', bits: 4, group: 64, sym: false, actOrder: 'shuffled-groups' }, 16, 256, { bits: 4, group: 64, symmetric: false }],
  ['GPTQ int4 act-order, columns permuted (desc_act)', { format: 'gptq', bits: 4, group: 128, sym: true, actOrder: 'permuted' }, 16, 256, null],
  ['GPTQ int8 act-order, columns permuted', { format: 'gptq', bits: 8, group: 32, sym: false, actOrder: 'permuted', v2: true }, 8, 128, null],
  ['AWQ GEMM int4 g128', { format: 'awq', group: 128 }, 40, 256, { bits: 4, group: 128, symmetric: false }],
  ['AWQ GEMM int4 g32', { format: 'awq', group: 32 }, 16, 64, { bits: 4, group: 32, symmetric: false }],
  ['AWQ GEMM int4 per channel, K=96', { format: 'awq', group: -1 }, 16, 96, { bits: 4, group: 'channel', symmetric: false }],
  ['compressed-tensors pack int4 g128 sym', { format: 'compressed-tensors', bits: 4, strategy: 'group', group: 128, sym: true }, 20, 256, { bits: 4, group: 128, symmetric: true }],
  ['compressed-tensors pack int4 g32 asym (packed zero points), N=20', { format: 'compressed-tensors', bits: 4, strategy: 'group', group: 32, sym: false }, 20, 64, { bits: 4, group: 32, symmetric: false }],
  ['compressed-tensors pack int4 channel sym, K=100 (padded words), bf16 scales', { format: 'compressed-tensors', bits: 4, strategy: 'channel', group: 0, sym: true, scaleDtype: 'BF16' }, 12, 100, { bits: 4, group: 'channel', symmetric: true }],
  ['compressed-tensors pack int8 channel asym', { format: 'compressed-tensors', bits: 8, strategy: 'channel', group: 0, sym: false }, 10, 96, { bits: 8, group: 'channel', symmetric: false }],
  ['compressed-tensors pack int4 actorder group (weight_g_idx)', { format: 'compressed-tensors', bits: 4, strategy: 'group', group: 32, sym: true, actOrder: 'permuted' }, 8, 128, null],
  ['compressed-tensors int-quantized int8 channel sym (W8A8), f32 scales', { format: 'compressed-tensors', bits: 8, strategy: 'channel', group: 0, sym: true, unpacked: true, int8Activations: true, scaleDtype: 'F32' }, 12, 64, { bits: 8, group: 64, symmetric: true }],
  ['bitsandbytes LLM.int8()', { format: 'bitsandbytes' }, 16, 100, { bits: 8, group: 'channel', symmetric: true }],
];

describe.each(VARIANTS)('%s', (label, spec, N, K, want) => {
  it('reads back the reference dequantization bit for bit; maps onto webq as expected', async () => {
    const w = weights(N, K, N * 1000 + K);
    const { tensors, ref } = packLinear('m.proj', w, N, K, spec, 3);
    const st = await store(tensors);
    try {
      const fmt = format(spec);
      const lin = fmt.linear(st, 'm.proj', N, K)!;
      expect(lin).not.toBeNull();
      const iw = await readImported(lin);
      const exact = exactDequant(iw);
      const plan = planLayout(K, lin.bits, iw);
      const q = toWebq(iw, plan);
      const deq = dequantizeWeight(q);
      if (spec.format === 'bitsandbytes') {
        // The reference rounds twice (CB*SCB, then *1/127); one code*scale product can differ in the last bit.
        let same = 0;
        for (let i = 0; i < ref.length; i++) {
          const d = Math.abs(exact[i] - ref[i]);
          expect(d).toBeLessThanOrEqual(Math.abs(ref[i]) * 2 ** -23);
          if (exact[i] === ref[i]) same++;
        }
        console.log(`${label}: ${same} of ${ref.length} values bit-equal to int8_vectorwise_dequant, the rest 1 ulp off`);
        expectBitEqual(deq, exact, 'webq layout vs exact');
      } else {
        expectBitEqual(exact, ref, 'exact dequantization vs the reference');
      }
      if (want) {
        expect(plan).toEqual({ exact: true, spec: want });
        expectBitEqual(deq, exact, 'webq layout vs the reference');
      } else {
        // Act-order: re-quantized to int8 symmetric group 32; error at most half an int8 step of each group.
        expect(plan.exact).toBe(false);
        expect(q).toMatchObject({ bits: 8, groupSize: 32, symmetric: true });
        let worst = 0;
        for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) {
          const step = q.scales[n * q.groups + Math.floor(k / 32)];
          worst = Math.max(worst, Math.abs(deq[n * K + k] - exact[n * K + k]) / step);
        }
        expect(worst).toBeLessThanOrEqual(0.5 + 1e-6);
      }
    } finally {
      await st.close();
    }
  });
});

describe('stacking imported weights', () => {
  it('relayout to a common spec (more bits, smaller groups, asymmetric) keeps every value', async () => {
    const fmt = format({ format: 'gptq', bits: 4, group: 128, sym: true });
    const a = packLinear('a', weights(16, 256, 1), 16, 256, { format: 'gptq', bits: 4, group: 128, sym: true }, 1);
    const b = packLinear('b', weights(8, 256, 2), 8, 256, { format: 'gptq', bits: 8, group: 32, sym: false, actOrder: 'permuted' }, 2);
    const sa = await store(a.tensors);
    const sb = await store(b.tensors);
    const qa = toWebq(await readImported(fmt.linear(sa, 'a', 16, 256)!));
    const qb = toWebq(await readImported(format({ format: 'gptq', bits: 8, group: 32, sym: false }).linear(sb, 'b', 8, 256)!));
    const spec = commonSpec([qa, qb]);
    expect(spec).toEqual({ bits: 8, group: 32, symmetric: true });
    expectBitEqual(dequantizeWeight(relayout(qa, spec)), dequantizeWeight(qa), 'int4 sym g128 -> int8 sym g32');
    expectBitEqual(dequantizeWeight(relayout(qa, { bits: 8, group: 64, symmetric: false })), dequantizeWeight(qa), 'int4 sym -> int8 asym');
    const asym = toWebq(await readImported(format({ format: 'awq', group: 128 }).linear(await store(packLinear('c', weights(16, 256, 3), 16, 256, { format: 'awq', group: 128 }, 3).tensors), 'c', 16, 256)!));
    expectBitEqual(dequantizeWeight(relayout(asym, { bits: 8, group: 32, symmetric: false })), dequantizeWeight(asym), 'int4 asym -> int8 asym g32');
    await sa.close();
    await sb.close();
  });
});

describe('bad input names the tensor', () => {
  const N = 16;
  const K = 256;
  const gptq4: FormatSpec = { format: 'gptq', bits: 4, group: 128, sym: false };
  const open = async (tensors: TensorToWrite[]) => store(tensors);
  const linearOf = (fmt: ImportFormat, st: SafetensorsFile) => fmt.linear(st, 'm.proj', N, K);

  it('bits that contradict the packed width', async () => {
    const st = await open(packLinear('m.proj', weights(N, K, 1), N, K, gptq4).tensors);
    expect(() => linearOf(format({ ...gptq4, bits: 8 }), st)).toThrow(/"m\.proj\.qweight" is \[32, 16\], expected \[64, 16\] for a \[16, 256\] Linear at 8 bits, group 128 .*; \[32, 16\] is 4-bit packing: does quantization_config's bits \(8\) match the checkpoint\?/);
    const ct = await open(packLinear('m.proj', weights(N, K, 1), N, K, { format: 'compressed-tensors', bits: 8, strategy: 'channel', group: 0, sym: true }).tensors);
    expect(() => linearOf(format({ format: 'compressed-tensors', bits: 4, strategy: 'channel', group: 0, sym: true }), ct)).toThrow(/"m\.proj\.weight_packed" is \[16, 64\], expected \[16, 32\] .*; \[16, 64\] is 8-bit packing: does num_bits \(4\) match the checkpoint\?/);
  });

  it('a group size that does not divide the inputs', async () => {
    const st = await open(packLinear('m.proj', weights(N, K, 1), N, K, gptq4).tensors);
    expect(() => linearOf(format({ ...gptq4, group: 96 }), st)).toThrow(/"m\.proj\.qweight": group_size 96 does not divide the Linear's 256 inputs/);
    expect(() => linearOf(format({ format: 'awq', group: 96 }), st)).toThrow(/group_size 96 does not divide/);
  });

  it('shapes that disagree with config.json', async () => {
    const st = await open(packLinear('m.proj', weights(N, K, 1), N, K, gptq4).tensors);
    expect(() => format(gptq4).linear(st, 'm.proj', N, 128)).toThrow(/"m\.proj\.qweight" is \[32, 16\], expected \[16, 16\] for a \[16, 128\] Linear at 4 bits, per channel .*is 8-bit packing/);
    expect(() => format(gptq4).linear(st, 'm.proj', 24, K)).toThrow(/"m\.proj\.qweight" is I32 \[32, 16\], expected I32 or U32 \[32, 24\] \(a \[24, 256\] Linear at 4 bits, group 128/);
  });

  it('g_idx out of range', async () => {
    const iq = quantizeInts(weights(N, K, 1), N, K, { bits: 4, group: 128, sym: false, gIdx: makeGIdx(K, 128, 'none') });
    const tensors = packGptq('m.proj', iq);
    (tensors.find((t) => t.name === 'm.proj.g_idx')!.data as Int32Array)[77] = 2;
    const lin = linearOf(format(gptq4), await open(tensors))!;
    await expect(lin.readGroups()).rejects.toThrow(/tensor "m\.proj\.g_idx" has g_idx\[77\] = 2; expected a group index from 0 to 1 \(2 groups\)/);
  });

  it('missing qzeros, zero points or g_idx', async () => {
    const drop = (ts: TensorToWrite[], name: string) => ts.filter((t) => t.name !== name);
    const gptq = packLinear('m.proj', weights(N, K, 1), N, K, gptq4).tensors;
    await expect((async () => linearOf(format(gptq4), await open(drop(gptq, 'm.proj.qzeros'))))()).rejects.toThrow(/missing tensor "m\.proj\.qzeros"; expected I32 or U32 \[2, 2\]/);
    await expect((async () => linearOf(format({ ...gptq4, actOrder: 'permuted' }), await open(drop(gptq, 'm.proj.g_idx'))))()).rejects.toThrow(/missing tensor "m\.proj\.g_idx"; desc_act/);
    const awq = packLinear('m.proj', weights(N, K, 1), N, K, { format: 'awq', group: 128 }).tensors;
    await expect((async () => linearOf(format({ format: 'awq', group: 128 }), await open(drop(awq, 'm.proj.qzeros'))))()).rejects.toThrow(/missing tensor "m\.proj\.qzeros"/);
    const ctSpec: FormatSpec = { format: 'compressed-tensors', bits: 4, strategy: 'group', group: 32, sym: false };
    const ct = packLinear('m.proj', weights(N, K, 1), N, K, ctSpec).tensors;
    await expect((async () => linearOf(format(ctSpec), await open(drop(ct, 'm.proj.weight_zero_point'))))()).rejects.toThrow(/missing tensor "m\.proj\.weight_zero_point"; config group "group_0" is asymmetric/);
  });

  it('variants webq does not run are named', () => {
    const err = (qc: Record<string, unknown>) => {
      try {
        parseQuantizationConfig(qc as never, 'x/config.json');
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(err({ quant_method: 'exl2', bits: 4.5 })).toMatch(/ExLlamaV2 \(EXL2\) \(quant_method "exl2"\) is not supported/);
    expect(err({ quant_method: 'gptq', bits: 3, group_size: 128 })).toMatch(/GPTQ 3-bit weights are not supported/);
    expect(err({ quant_method: 'gptq', bits: 4, group_size: 128, checkpoint_format: 'marlin' })).toMatch(/Marlin-repacked GPTQ/);
    expect(err({ quant_method: 'gptq', bits: 4, group_size: 128, is_marlin_format: true })).toMatch(/Marlin-repacked GPTQ/);
    expect(err({ quant_method: 'awq', bits: 4, group_size: 128, version: 'gemv' })).toMatch(/AWQ version "gemv" is not supported/);
    expect(err({ quant_method: 'awq', bits: 4, group_size: 128, version: 'exllama' })).toMatch(/AWQ version "exllama"/);
    expect(err({ quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4' })).toMatch(/bitsandbytes 4-bit \(nf4, load_in_4bit\) is not supported/);
    const ct = quantizationConfig({ format: 'compressed-tensors', bits: 8, strategy: 'channel', group: 0, sym: true }) as { config_groups: { group_0: { weights: Record<string, unknown> } } };
    expect(err({ ...ct, format: 'float-quantized' })).toMatch(/float-quantized \(FP8 weights\) is not supported/);
    expect(err({ ...ct, format: 'nvfp4-pack-quantized' })).toMatch(/nvfp4-pack-quantized \(FP4 weights\)/);
    ct.config_groups.group_0.weights.type = 'float';
    expect(err(ct)).toMatch(/weights of type "float" \(FP8\/FP4\) is not supported/);
    ct.config_groups.group_0.weights = { ...ct.config_groups.group_0.weights, type: 'int', strategy: 'block' };
    expect(err(ct)).toMatch(/the "block" weight strategy is not supported/);
    expect(err({ quant_method: 'hqq' })).toMatch(/HQQ \(quant_method "hqq"\) is not supported; webq reads gptq, awq/);
    expect(err({ bits: 4 })).toMatch(/quantization_config has no quant_method/);
    expect(parseQuantizationConfig(undefined)).toBeNull();
  });
});

it('importReport: what loading does to each Linear, from headers and small tensors only', async () => {
  const spec: FormatSpec = { format: 'gptq', bits: 4, group: 64, sym: false, actOrder: 'permuted' };
  const a = packLinear('l.0.q', weights(16, 128, 1), 16, 128, spec, 1);
  const b = packLinear('l.0.k', weights(16, 128, 2), 16, 128, { ...spec, actOrder: 'shuffled-groups' }, 2);
  const st = await store([...a.tensors, ...b.tensors, { name: 'norm.weight', dtype: 'F32', shape: [4], data: new Float32Array(4) }]);
  const text = importReportText(await importReport(st, format(spec)));
  await st.close();
  expect(text[0]).toBe('quantization (config.json quantization_config): GPTQ 4-bit, group 64, asymmetric, act-order (desc_act), gptq v1 (zero points stored minus 1)');
  expect(text.slice(1).sort()).toEqual([
    '  1 Linear, 1.6 KiB in the file: loaded as webq int4 asymmetric, group 64, codes and scales as stored (no re-quantization); 1.1 KiB on the GPU',
    '  1 Linear, 1.6 KiB in the file: re-quantized at load to webq int8 symmetric, group 32 (their groups are not contiguous runs of columns, as with act-order g_idx, which no webq layout holds exactly); 2.1 KiB on the GPU',
    '  runs by default as q4 with float activations (weight-only, as the format computes; --activations int8 for int8 activation blocks)',
  ].sort());
});

describe('webq info on an imported folder', () => {
  async function cli(...argv: string[]) {
    let out = '', err = '';
    const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
    return { code, out, err };
  }

  it('shows the format, bits, group, how each Linear loads, and the sizes', async () => {
    const float = await writeTinyLlama(join(dir, 'info-float'), { hidden: 128, heads: 4, kvHeads: 2, intermediate: 256, seed: 3 });
    const out = join(dir, 'info-gptq');
    await writeQuantizedCopy(float.dir, out, { format: 'gptq', bits: 4, group: 128, sym: false }, LLAMA_LINEARS, {
      // Layer 1's down_proj (K = 256, two groups) as act-order: its columns permuted, as desc_act does.
      edit: (ts) => ts.map((t) => (t.name === 'model.layers.1.mlp.down_proj.g_idx' ? { ...t, data: makeGIdx(256, 128, 'permuted') } : t)),
    });
    const r = await cli('info', out);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const lines = r.out.trimEnd().split('\n');
    const at = lines.findIndex((l) => l.startsWith('quantization'));
    expect(lines.slice(at)).toEqual([
      'quantization (config.json quantization_config): GPTQ 4-bit, group 128, asymmetric, gptq v1 (zero points stored minus 1)',
      '  13 Linears, 140.0 KiB in the file: loaded as webq int4 asymmetric, group 128, codes and scales as stored (no re-quantization); 136.0 KiB on the GPU',
      '  1 Linear, 17.6 KiB in the file: re-quantized at load to webq int8 symmetric, group 32 (their groups are not contiguous runs of columns, as with act-order g_idx, which no webq layout holds exactly); 34.0 KiB on the GPU',
      '  runs by default as q4 with float activations (weight-only, as the format computes; --activations int8 for int8 activation blocks)',
    ]);
    const j = JSON.parse((await cli('info', '--json', join(out, 'model.safetensors'))).out);
    expect(j.quantization.description).toMatch(/^GPTQ 4-bit, group 128/);
    expect(j.quantization.loads).toEqual({ dtype: 'q4', activations: 'float' });
    expect(j.quantization.layouts.map((l: { linears: number; converted: boolean }) => [l.linears, l.converted])).toEqual([[13, false], [1, true]]);
    // `webq quantize` is not for them: a clear refusal, nothing written.
    const q = await cli('quantize', out, '--dtype', 'q4', '--out', join(dir, 'info-requant'));
    expect(q.code).toBe(1);
    expect(q.err).toMatch(/is already pre-quantized; quantize the float checkpoint instead/);
    // A float folder has no quantization section; an unsupported format says why it cannot load.
    expect((await cli('info', float.dir)).out).not.toContain('quantization');
    const exl2 = join(dir, 'info-exl2');
    await writeQuantizedCopy(float.dir, exl2, { format: 'gptq', bits: 4, group: 128, sym: false }, LLAMA_LINEARS, { config: (c) => (c.quantization_config = { quant_method: 'exl2', bits: 4.65 }) });
    expect((await cli('info', exl2)).out).toContain('quantization (config.json quantization_config): webq cannot load it: config.json: ExLlamaV2 (EXL2) (quant_method "exl2") is not supported');
  });
});
