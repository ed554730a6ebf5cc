// Tiny Llama and BERT checkpoints rewritten in GPTQ, AWQ, compressed-tensors and bitsandbytes
// (test/helpers/quant-formats.ts packs them as each tool does), loaded through LlmModel and
// BertModel like any folder: logits and embeddings against the fp32 CPU reference of the float
// model they came from, and of their reference dequantization (the weights these checkpoints
// really hold); f32 loads reproduce the latter to float rounding; a bad checkpoint fails with the
// tensor named and leaves nothing on a shared device.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import type { TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { parseBertConfig } from '../../src/models/config.ts';
import { parseLlamaConfig, type LlamaConfig } from '../../src/models/llama/llama-config.ts';
import { bertEncode, meanPool } from '../../src/reference/bert.ts';
import { cosine } from '../../src/quant/guard.ts';
import { llamaReferenceForward } from '../../src/reference/llama.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { BERT_LINEARS, LLAMA_LINEARS, writeQuantizedCopy, type FormatSpec } from '../helpers/quant-formats.ts';
import { writeTinyBert, type TinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama, type TinyLlama } from '../../fixtures/tiny-llama.ts';
import { klDivergence } from '../helpers/distribution.ts';

let dir: string;
let ctx: GpuContext;
let llama: TinyLlama;
let cfg: LlamaConfig;
let refFloat: Float32Array;
let bert: TinyBert;

const IDS = (() => {
  let s = 17;
  return [1, ...Array.from({ length: 31 }, () => 3 + ((s = (s * 1103515245 + 12345) >>> 0) % 400))];
})();
const FROM = 20; // teacher-forced positions 20..31: 12 tokens

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-import-models-'));
  ctx = await GpuContext.create();
  // K = 128 (q/k/v/o/gate/up) and 256 (down): group 128 fits both. llama2's tokenizer (vocab 32000).
  llama = await writeTinyLlama(join(dir, 'llama'), { modelType: 'llama', tokenizer: 'llama2', hidden: 128, heads: 4, kvHeads: 2, intermediate: 256, maxPositions: 64, seed: 21 });
  cfg = parseLlamaConfig(llama.config);
  refFloat = llamaReferenceForward(cfg, llama.weights, IDS);
  bert = await writeTinyBert(join(dir, 'bert'), { hidden: 64, heads: 2, intermediate: 128, layers: 2, maxPositions: 32, prefix: 'bert.', labels: ['a', 'b'], linearStd: 0.1, seed: 9 });
}, 120_000);

afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

/** Mean KL(ref || got) per token and the largest logit difference over positions FROM..end. */
async function measure(m: LlmModel, ref: Float32Array): Promise<{ kl: number; maxAbs: number }> {
  const V = cfg.vocabSize;
  let kl = 0;
  let maxAbs = 0;
  for (let t = FROM; t < IDS.length; t++) {
    const { logits } = await m.logits(IDS.slice(0, t + 1));
    const want = ref.subarray(t * V, (t + 1) * V);
    kl += klDivergence(want, logits);
    for (let i = 0; i < V; i++) maxAbs = Math.max(maxAbs, Math.abs(logits[i] - want[i]));
  }
  return { kl: kl / (IDS.length - FROM), maxAbs };
}

// [label, format, the dtype a load picks, bound on KL per token against the float model, and
// against the dequantized model (kernel error only: f16 activations; the format's own int8
// activations for W8A8; a re-quantization to int8 g32 where act-order columns are permuted)].
// Measured on lavapipe, KL vs float / vs dequantized:
//   GPTQ/AWQ int4 g128 3.6e-1 / 2.9e-6   int4 g32 sym 2.4e-1 / 2.4e-6   CT int4 g64 2.6e-1 / 2.6e-6
//   GPTQ int8 desc_act (int8 g32) 1.9e-3 / 4.9e-5   CT W8A8 3.9e-3 / 2.0e-3   bnb 1.9e-3 / 4.0e-6
// (before float activations and a float lm_head became the imports' default, 4-bit was ~1.5e-2
// against its dequantization).
// (min/max round-to-nearest stands in for GPTQ's search, so 4-bit is far from the float model
// here; a real GPTQ/AWQ checkpoint is closer. The dequantized column is what webq adds.)
const LLAMA: [string, FormatSpec, string, number, number][] = [
  ['GPTQ int4 g128 asym (v1)', { format: 'gptq', bits: 4, group: 128, sym: false }, 'q4', 0.5, 5e-5],
  ['GPTQ int4 g32 sym, act-order with groups out of order (v2)', { format: 'gptq', bits: 4, group: 32, sym: true, actOrder: 'shuffled-groups', v2: true }, 'q4', 0.4, 5e-5],
  ['GPTQ int8 g128 desc_act (columns permuted: re-quantized to int8 g32)', { format: 'gptq', bits: 8, group: 128, sym: true, actOrder: 'permuted' }, 'q8', 5e-3, 5e-4],
  ['AWQ GEMM int4 g128', { format: 'awq', group: 128 }, 'q4', 0.5, 5e-5],
  ['compressed-tensors pack-quantized int4 g64 asym', { format: 'compressed-tensors', bits: 4, strategy: 'group', group: 64, sym: false }, 'q4', 0.4, 5e-5],
  ['compressed-tensors int-quantized int8 channel W8A8', { format: 'compressed-tensors', bits: 8, strategy: 'channel', group: 0, sym: true, unpacked: true, int8Activations: true }, 'w8a8', 1e-2, 1e-2],
  ['bitsandbytes LLM.int8()', { format: 'bitsandbytes' }, 'q8', 5e-3, 5e-5],
];

describe.each(LLAMA)('Llama in %s', (label, spec, dtype, klFloat, klDeq) => {
  it('LlmModel loads the folder as it is; logits within the stated KL of the float and the dequantized model', async () => {
    const out = join(dir, label.replace(/\W+/g, '-'));
    const refs = await writeQuantizedCopy(llama.dir, out, spec, LLAMA_LINEARS);
    const refDeq = llamaReferenceForward(cfg, { ...llama.weights, ...refs }, IDS);
    const m = await LlmModel.load(out, { context: ctx, kv: 'f32' });
    try {
      expect(m.dtype).toBe(dtype);
      const vsFloat = await measure(m, refFloat);
      const vsDeq = await measure(m, refDeq);
      console.log(`${label} (${dtype}): KL vs float ${vsFloat.kl.toExponential(2)}, vs dequantized ${vsDeq.kl.toExponential(2)} (max |dlogit| ${vsDeq.maxAbs.toFixed(3)}); ${(m.weightBytes / 1024).toFixed(0)} KiB on the GPU`);
      expect(vsFloat.kl).toBeLessThanOrEqual(klFloat);
      expect(vsDeq.kl).toBeLessThanOrEqual(klDeq);
      expect(vsDeq.kl).toBeLessThan(vsFloat.kl + 1e-9); // it runs the checkpoint's weights, not the float ones
    } finally {
      m.dispose();
    }
  });
});

// What users of these formats expect: the format's own result (weight-only kernels, float
// activations, the untied lm_head float as the file keeps it). Measured on lavapipe: cosine
// 1.000000 (to six places) on both activation paths; it was 0.9967 when the head went through
// 4-bit round-to-nearest and the prefill through int8 activation blocks.
it('a 4-bit GPTQ, AWQ or compressed-tensors folder loaded with defaults: last logits within cosine 0.9995 of fp32 on its dequantization', async () => {
  const f32 = await GpuContext.create({ f16: false });
  try {
    for (const [label, spec] of LLAMA.filter(([, s]) => s.format === 'awq' || ((s.format === 'gptq' || s.format === 'compressed-tensors') && s.bits === 4))) {
      const out = join(dir, `cos-${label.replace(/\W+/g, '-')}`);
      const refs = await writeQuantizedCopy(llama.dir, out, spec, LLAMA_LINEARS);
      const want = llamaReferenceForward(cfg, { ...llama.weights, ...refs }, IDS).subarray((IDS.length - 1) * cfg.vocabSize);
      for (const c of [ctx, f32]) {
        const m = await LlmModel.load(out, { context: c });
        try {
          const { logits } = await m.logits(IDS);
          const cos = cosine(logits, want);
          console.log(`${label}, ${c.caps.f16 ? 'f16' : 'f32'} activations: ${m.dtype}/${m.activations}, last-position cosine ${cos.toFixed(7)}`);
          expect(m.activations).toBe('float');
          expect(cos, label).toBeGreaterThanOrEqual(0.9995);
        } finally {
          m.dispose();
        }
      }
    }
  } finally {
    f32.dispose();
  }
});

it('dtype f32 runs the exact dequantization: logits equal the reference on the dequantized weights', async () => {
  for (const spec of [LLAMA[2][1], LLAMA[3][1]]) {
    const out = join(dir, `f32-${spec.format}`);
    const refs = await writeQuantizedCopy(llama.dir, out, spec, LLAMA_LINEARS);
    const refDeq = llamaReferenceForward(cfg, { ...llama.weights, ...refs }, IDS);
    const m = await LlmModel.load(out, { context: ctx, dtype: 'f32', kv: 'f32' });
    try {
      const r = await measure(m, refDeq);
      expect(r.maxAbs, spec.format).toBeLessThan(1e-3);
    } finally {
      m.dispose();
    }
  }
});

describe('BERT', () => {
  const TEXTS = ['the cat sat on the mat', 'hello world'];
  const canonical = (refs: Record<string, Float32Array>) => Object.fromEntries(Object.entries(refs).map(([k, v]) => [k.replace(/^bert\./, ''), v]));

  async function reference(weights: Record<string, Float32Array>): Promise<Float32Array> {
    const c = parseBertConfig(bert.config);
    const tok = await loadTokenizer(await openModelFiles(bert.dir), { padTokenId: c.padTokenId });
    const enc = tok.encodeBatch(TEXTS, { maxLength: c.maxPositions });
    const hidden = bertEncode(c, weights, { ids: enc.ids, attentionMask: enc.attentionMask, tokenTypeIds: enc.tokenTypeIds, batch: enc.batch });
    return meanPool(hidden, enc.attentionMask, enc.batch);
  }

  function cosine(a: Float32Array, b: Float32Array): number {
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < a.length; i++) [ab, aa, bb] = [ab + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]];
    return ab / Math.sqrt(aa * bb);
  }

  // [label, format, cosine bound against the float model, against the dequantized one]. Measured:
  // int4 g64 0.9916 / 0.99998; int8 0.99995 / 0.99998. The 4-bit ones share their kernels, so
  // only the first compiles them (lavapipe compiles slowly).
  const BERT: [string, FormatSpec, number, number][] = [
    ['GPTQ int4 g64 asym', { format: 'gptq', bits: 4, group: 64, sym: false }, 0.985, 0.9995],
    ['AWQ GEMM int4 g64', { format: 'awq', group: 64 }, 0.985, 0.9995],
    ['compressed-tensors pack-quantized int4 g64 asym', { format: 'compressed-tensors', bits: 4, strategy: 'group', group: 64, sym: false }, 0.985, 0.9995],
    ['bitsandbytes LLM.int8()', { format: 'bitsandbytes' }, 0.999, 0.9995],
  ];
  let floatLabels: string[];
  beforeAll(async () => {
    const f = await BertModel.load(bert.dir, { context: ctx, dtype: 'f32' });
    floatLabels = (await f.classify(TEXTS)).map((c) => c.label);
    f.dispose();
  });
  it.each(BERT)('%s: BertModel embeds and classifies within the stated cosine', async (label, spec, cosFloat, cosDeq) => {
    const out = join(dir, `bert-${label.replace(/\W+/g, '-')}`);
    const refs = await writeQuantizedCopy(bert.dir, out, spec, BERT_LINEARS);
    const wantFloat = await reference(bert.weights);
    const wantDeq = await reference({ ...bert.weights, ...canonical(refs) });
    const m = await BertModel.load(out, { context: ctx });
    try {
      const got = await m.embed(TEXTS);
      const H = 64;
      const cos = (want: Float32Array) => Math.min(...got.map((g, i) => cosine(g, want.subarray(i * H, (i + 1) * H))));
      console.log(`BERT ${label}: cosine vs float ${cos(wantFloat).toFixed(5)}, vs dequantized ${cos(wantDeq).toFixed(5)}`);
      expect(cos(wantFloat)).toBeGreaterThanOrEqual(cosFloat);
      expect(cos(wantDeq)).toBeGreaterThanOrEqual(cosDeq);
      expect((await m.classify(TEXTS)).map((c) => c.label)).toEqual(floatLabels);
    } finally {
      m.dispose();
    }
  });
});

describe('a bad checkpoint fails naming the tensor, and leaves nothing on the shared device', () => {
  const gptq: FormatSpec = { format: 'gptq', bits: 4, group: 128, sym: false };
  const cases: [string, (t: TensorToWrite[]) => TensorToWrite[], ((c: Record<string, unknown>) => void) | undefined, RegExp][] = [
    // Found while reading layer 1's data, after layer 0 is on the GPU.
    ['g_idx out of range', (ts) => ts.map((t) => (t.name === 'model.layers.1.mlp.down_proj.g_idx' ? { ...t, data: Int32Array.from(t.data as Int32Array, (g, k) => (k === 3 ? 9 : g)) } : t)), undefined, /tensor "model\.layers\.1\.mlp\.down_proj\.g_idx" has g_idx\[3\] = 9; expected a group index from 0 to 1/],
    ['missing qzeros', (ts) => ts.filter((t) => t.name !== 'model.layers.1.self_attn.v_proj.qzeros'), undefined, /missing tensor "model\.layers\.1\.self_attn\.v_proj\.qzeros"/],
    ['bits that contradict the packing', (ts) => ts, (c) => ((c.quantization_config as Record<string, unknown>).bits = 8), /tensor "model\.layers\.0\.self_attn\.q_proj\.qweight" is \[16, 128\], expected \[32, 128\] .*4-bit packing/],
    ['a group that does not divide K', (ts) => ts, (c) => ((c.quantization_config as Record<string, unknown>).group_size = 96), /"model\.layers\.0\.self_attn\.q_proj\.qweight": group_size 96 does not divide the Linear's 128 inputs/],
    ['an unsupported variant', (ts) => ts, (c) => ((c.quantization_config as Record<string, unknown>).checkpoint_format = 'marlin'), /Marlin-repacked GPTQ \(checkpoint_format "marlin"\) is not supported/],
  ];
  it.each(cases)('%s', async (label, edit, config, message) => {
    const out = join(dir, `bad-${label.replace(/\W+/g, '-')}`);
    await writeQuantizedCopy(llama.dir, out, gptq, LLAMA_LINEARS, { edit, config });
    const before = ctx.stats().ownedBuffers;
    await expect(LlmModel.load(out, { context: ctx })).rejects.toThrow(message);
    expect(ctx.stats().ownedBuffers).toBe(before);
  });

  it('BERT too', async () => {
    const out = join(dir, 'bad-bert');
    await writeQuantizedCopy(bert.dir, out, { format: 'awq', group: 64 }, BERT_LINEARS, {
      edit: (ts) => ts.filter((t) => t.name !== 'bert.encoder.layer.1.output.dense.qzeros'),
    });
    const before = ctx.stats().ownedBuffers;
    await expect(BertModel.load(out, { context: ctx })).rejects.toThrow(/missing tensor "bert\.encoder\.layer\.1\.output\.dense\.qzeros"/);
    expect(ctx.stats().ownedBuffers).toBe(before);
  });
});
