// GGUF files read by webq (src/gguf/) against an independent packer of ggml's blocks
// (test/helpers/gguf-quant.ts) and writer (test/helpers/gguf-writer.ts): every block type
// dequantizes bit for bit as ggml does, the exact types are copied into webq's layout with no
// value changed, the others are re-quantized within int8 rounding, and bad files are clear errors.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dequantize } from '../../src/gguf/dequant.ts';
import { GgufError } from '../../src/gguf/errors.ts';
import { openGgufFiles } from '../../src/gguf/files.ts';
import { GGML_TYPES } from '../../src/gguf/ggml-types.ts';
import { packWeight } from '../../src/gguf/pack.ts';
import { readGgufHeader } from '../../src/gguf/parse.ts';
import { bytesSource } from '../../src/io/source.ts';
import { dequantizeWeight, quantizeWeight } from '../../src/quant/rtn.ts';
import { quantizeGgml, GGML_TYPE_ID, type GgmlTypeName } from '../helpers/gguf-quant.ts';
import { ggufBytes, str, u32, f32 } from '../helpers/gguf-writer.ts';
import { rng } from '../kernels/check.ts';
import { normal } from '../../fixtures/tiny-bert.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-gguf-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const TYPES: GgmlTypeName[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'];
const N = 6;
const K = 512;

/** Weights with a few large values, so scales differ between blocks and sub-blocks. */
function weights(seed: number): Float32Array {
  const rand = rng(seed);
  const w = normal(rand, N * K, 0, 0.05);
  for (let i = 0; i < 40; i++) w[Math.floor(rand() * w.length)] *= 8;
  return w;
}

/** A packed weight as the QuantizedWeight webq's reference dequantizer reads. */
function asWeight(p: ReturnType<typeof packWeight>) {
  return { N, K, Kp: K, groupSize: 32, groups: K / 32, bits: p.spec.bits, symmetric: p.spec.symmetric, values: p.values, scales: p.scales, zeros: p.zeros };
}

function sameBits(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) diff++;
  return diff;
}

describe('ggml block types', () => {
  it.each(TYPES)('%s dequantizes bit for bit as the independent packer computes it', (type) => {
    const w = weights(GGML_TYPE_ID[type] + 1);
    const q = quantizeGgml(type, w);
    const t = GGML_TYPES.get(GGML_TYPE_ID[type])!;
    expect(q.bytes.length).toBe((N * K * t.blockBytes) / t.blockElems);
    expect(sameBits(dequantize(t, q.bytes, N * K), q.values)).toBe(0);
    // And the packer is a real quantizer of w, so a layout bug cannot hide behind all-zero blocks.
    let err = 0;
    let norm = 0;
    for (let i = 0; i < w.length; i++) (err += (w[i] - q.values[i]) ** 2), (norm += w[i] ** 2);
    expect(Math.sqrt(err / norm)).toBeLessThan(type === 'Q2_K' ? 0.6 : type === 'Q3_K' ? 0.3 : 0.15);
  });

  it.each(['Q8_0', 'Q4_0', 'Q5_0'] as GgmlTypeName[])('%s is copied into webq int8/int4 group 32: same f16 scales, dequantization unchanged', (type) => {
    const q = quantizeGgml(type, weights(40 + GGML_TYPE_ID[type]));
    const p = packWeight(GGML_TYPES.get(GGML_TYPE_ID[type])!, q.bytes, N, K);
    expect(p.method).toBe('copy');
    expect(p.spec).toEqual({ bits: type === 'Q4_0' ? 4 : 8, group: 32, symmetric: true });
    expect(sameBits(dequantizeWeight(asWeight(p)), q.values)).toBe(0);
  });

  // Against webq's plain round-to-nearest int8 (group 32) of the same exact values: the relaid
  // grids must do clearly better, and never err by more than half a step of their own scale.
  it.each([
    ['Q4_1', 'affine'], ['Q5_1', 'affine'], ['Q4_K', 'affine'], ['Q5_K', 'affine'], ['Q6_K', 'scaled'], ['Q3_K', 'scaled'], ['Q2_K', 'rtn'],
  ] as [GgmlTypeName, string][])('%s is re-laid into int8 group 32 (%s) within half a step (or for scaled, below round-to-nearest) of its exact dequantization', (type, method) => {
    const q = quantizeGgml(type, weights(60 + GGML_TYPE_ID[type]));
    const p = packWeight(GGML_TYPES.get(GGML_TYPE_ID[type])!, q.bytes, N, K);
    expect(p.method).toBe(method);
    expect(p.spec).toEqual({ bits: 8, group: 32, symmetric: method !== 'affine' });
    const back = dequantizeWeight(asWeight(p));
    const rtn = dequantizeWeight(quantizeWeight(q.values, N, K, { bits: 8, group: 32, symmetric: true }));
    if (method === 'scaled') {
      // A scale chosen per group for the least squared error, round-to-nearest's among the candidates.
      for (let g = 0; g < (N * K) / 32; g++) {
        let mine = 0, theirs = 0;
        for (let i = 32 * g; i < 32 * g + 32; i++) (mine += (back[i] - q.values[i]) ** 2), (theirs += (rtn[i] - q.values[i]) ** 2);
        expect(mine).toBeLessThanOrEqual(theirs * (1 + 1e-6) + 1e-30);
      }
    } else {
      let worst = 0;
      for (let i = 0; i < back.length; i++) {
        const s = Math.abs(p.scales[Math.floor(i / 32)]);
        worst = Math.max(worst, s === 0 ? Math.abs(back[i] - q.values[i]) : Math.abs(back[i] - q.values[i]) / s);
      }
      expect(worst).toBeLessThanOrEqual(0.5 + 1e-3);
    }
    const rms = (a: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - q.values[i]) ** 2, 0) / a.length);
    const ratio = rms(back) / rms(rtn);
    const exact = back.filter((v, i) => v === q.values[i]).length / back.length;
    console.log(`${type} ${method}: RMS error ${rms(back).toExponential(2)} = ${ratio.toFixed(3)} x round-to-nearest int8's; ${(100 * exact).toFixed(1)}% of values exact`);
    if (method === 'rtn') expect(ratio).toBe(1);
    else expect(ratio).toBeLessThan(method === 'affine' ? 0.5 : 0.9);
    if (type === 'Q3_K') expect(exact).toBe(1); // scale d, code (sc - 32) * q: exact unless (-32) * (-4) = 128 occurs
  });
});

function llamaMeta(): Record<string, ReturnType<typeof u32>> {
  return {
    'general.architecture': str('llama'),
    'llama.context_length': u32(64),
    'llama.embedding_length': u32(32),
    'llama.block_count': u32(1),
    'llama.feed_forward_length': u32(64),
    'llama.attention.head_count': u32(2),
    'llama.attention.layer_norm_rms_epsilon': f32(1e-5),
  };
}

describe('the header', () => {
  it('reads types, shapes (row-major) and data offsets through @huggingface/gguf', async () => {
    const a = quantizeGgml('Q4_K', weights(1).subarray(0, 3 * 256));
    const b = quantizeGgml('F16', new Float32Array([1, 2, 3]));
    const bytes = ggufBytes({ 'general.architecture': str('llama') }, [
      { name: 'a', type: 'Q4_K', shape: [3, 256], data: a.bytes },
      { name: 'b', type: 'F16', shape: [3], data: b.bytes },
    ]);
    const h = await readGgufHeader(bytesSource(bytes, 'x.gguf'));
    expect(h.version).toBe(3);
    expect(h.tensors.map((t) => [t.name, t.type.name, t.shape, t.byteLength])).toEqual([
      ['a', 'Q4_K', [3, 256], 3 * 144],
      ['b', 'F16', [3], 6],
    ]);
    expect([...bytes.subarray(h.tensors[0].offset, h.tensors[0].offset + a.bytes.length)]).toEqual([...a.bytes]);
    expect([...bytes.subarray(h.tensors[1].offset, h.tensors[1].offset + 6)]).toEqual([...b.bytes]);
    expect(h.metadata.get('general.architecture')?.value).toBe('llama');
  });

  it('names i-quant types, bad files, truncation and unsupported architectures in typed errors; reads a file without a vocabulary', async () => {
    const one = (type: number, data: Uint8Array, meta = {}) => ggufBytes({ 'general.architecture': str('llama'), ...meta }, [{ name: 'blk.0.attn_q.weight', type, shape: [1, 256], data }]);
    const open = (bytes: Uint8Array, name = 'm.gguf') => readGgufHeader(bytesSource(bytes, name));
    await expect(open(one(16, new Uint8Array(66)))).rejects.toMatchObject({ code: 'GGUF_UNSUPPORTED_TYPE', message: expect.stringMatching(/"blk\.0\.attn_q\.weight" is IQ2_XXS.*i-quants/) });
    await expect(open(one(23, new Uint8Array(136)))).rejects.toMatchObject({ code: 'GGUF_UNSUPPORTED_TYPE', message: expect.stringContaining('IQ4_XS') });
    await expect(open(new TextEncoder().encode('{"not": "gguf"}'))).rejects.toMatchObject({ code: 'GGUF_BAD_FILE', message: expect.stringContaining('m.gguf: not a GGUF file') });
    const ok = one(12, new Uint8Array(144));
    await expect(open(ok.subarray(0, ok.length - 20))).rejects.toMatchObject({ code: 'GGUF_TENSOR', message: expect.stringMatching(/goes past the end of the file.*truncated/) });
    await expect(open(ok.subarray(0, 30))).rejects.toBeInstanceOf(GgufError);
    const path = join(dir, 'gemma.gguf');
    await writeFile(path, ggufBytes({ 'general.architecture': str('gemma') }, []));
    await expect(openGgufFiles(path)).rejects.toMatchObject({ code: 'GGUF_UNSUPPORTED_ARCH', message: expect.stringMatching(/"gemma" is not supported.*llama, mistral, qwen2, qwen3/) });
    const split = join(dir, 'model-00001-of-00002.gguf');
    await writeFile(split, ggufBytes({ ...llamaMeta(), 'split.no': u32(0), 'split.count': u32(2) }, []));
    await expect(openGgufFiles(split)).rejects.toMatchObject({ code: 'GGUF_BAD_FILE', message: expect.stringContaining('shard 1 of 2 of a split GGUF') });
    const noTok = join(dir, 'no-tokenizer.gguf');
    const embd = quantizeGgml('F32', new Float32Array(8 * 32));
    await writeFile(noTok, ggufBytes(llamaMeta(), [{ name: 'token_embd.weight', type: 'F32', shape: [8, 32], data: embd.bytes }]));
    // No vocabulary: token i is "<|i|>", so token-id prompts still run.
    const files = await openGgufFiles(noTok);
    const { TextTokenizer } = await import('../../src/text/tokenizer.ts');
    const tok = TextTokenizer.fromJson(await files.readText('tokenizer.json'), await files.readText('tokenizer_config.json'));
    expect(tok.encode('<|3|><|7|>').ids).toEqual([3, 7]);
    expect(tok.vocabSize).toBe(8);
    const moe = join(dir, 'moe.gguf');
    await writeFile(moe, ggufBytes(llamaMeta(), [
      { name: 'token_embd.weight', type: 'F32', shape: [8, 32], data: embd.bytes },
      { name: 'blk.0.ffn_gate_exps.weight', type: 'F32', shape: [8, 32], data: embd.bytes },
    ]));
    await expect(openGgufFiles(moe)).rejects.toMatchObject({ code: 'GGUF_TENSOR', message: expect.stringMatching(/"blk\.0\.ffn_gate_exps\.weight".*mixture-of-experts/) });
  });
});
