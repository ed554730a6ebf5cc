// Embedding tables in pre-quantized files (webq-quant-2): the fused quantized-table kernel
// (shaders/embed_sum_q.wgsl) against the CPU, file sizes (a tiny model written, MiniLM's shape
// sized from its headers by the same plan the writer follows), BERT cosines and LLM KL against
// fp32 with packed tables, every --embeddings option, pre-quantized = quantized at load, and
// webq-quant-1 files (float tables) still loading.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import type { DType, TensorInfo } from '../../src/io/safetensors/dtypes.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { SafetensorsFile, type TensorStore } from '../../src/io/safetensors/reader.ts';
import { writeSafetensorsFile, type TensorToWrite } from '../../src/io/safetensors/writer.ts';
import { parseBertConfig, parseModelConfig } from '../../src/models/config.ts';
import { Decoder } from '../../src/generate/decoder.ts';
import { kvCacheFor } from '../../src/generate/kv.ts';
import { parseLlamaConfig, type LlamaConfig } from '../../src/models/llama/llama-config.ts';
import { uploadLlamaWeights } from '../../src/models/llama/llama.ts';
import { resolveLlamaWeights } from '../../src/models/llama/llama-weights.ts';
import { validateSamplingParams } from '../../src/ops/sample.ts';
import { planQuantized } from '../../src/quantize/checkpoint.ts';
import type { EmbeddingDType, UploadOptions } from '../../src/models/upload.ts';
import { embedSum } from '../../src/ops/encoder-io.ts';
import type { LinearDType } from '../../src/ops/linear.ts';
import { quantSpecFor } from '../../src/models/prepare-linear.ts';
import { uploadQuantized } from '../../src/ops/qweight.ts';
import type { QuantSpec } from '../../src/quant/layout.ts';
import { quantizedTensors, readPrequantInfo } from '../../src/quant/prequantized.ts';
import { dequantizeWeight, quantizeWeight } from '../../src/quant/rtn.ts';
import { bertEncode, meanPool } from '../../src/reference/bert.ts';
import { llamaReferenceForward } from '../../src/reference/llama.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { writeTinyBert, type TinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama, type TinyLlama } from '../../fixtures/tiny-llama.ts';
import { compare, randn, roundF16 } from '../kernels/check.ts';
import { klDivergence } from '../helpers/distribution.ts';

let dir: string;
let ctx: GpuContext;
const TEXTS = ['the cat sat on the mat', 'a much longer sentence about the weather and the city in the morning', 'hello world'];

async function cli(...argv: string[]) {
  let out = '', err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-qemb-'));
  ctx = await GpuContext.create();
}, 60_000);
afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

describe('embed_sum_q: word (packed) + position + type, against the CPU', () => {
  const SPECS: QuantSpec[] = [
    { bits: 8, group: 'channel', symmetric: true }, // BERT's int8 table
    { bits: 8, group: 32, symmetric: true }, //        LLMs' int8 table
    { bits: 4, group: 32, symmetric: false }, //       int4 tables
    { bits: 8, group: 64, symmetric: false },
  ];
  for (const precision of ['f32', 'f16'] as const) {
    for (const spec of SPECS) {
      it(`${precision} int${spec.bits} group ${spec.group} ${spec.symmetric ? 'sym' : 'asym'}, row chunks, ids past the table clamped`, async () => {
        if (precision === 'f16' && !ctx.caps.f16) return;
        const [V, H, P, TV, B, T] = [200, 72, 9, 3, 2, 7]; // H not a multiple of 32: padded columns must not leak
        const q = quantizeWeight(randn(V * H, 1, 0.05), V, H, spec);
        const word = uploadQuantized(ctx, q, precision, { bindingLimit: 48 * ((q.Kp * spec.bits) / 8) });
        expect(word.chunks.length).toBeGreaterThan(2);
        const round = precision === 'f16' ? roundF16 : (x: Float32Array) => x;
        const [pos, typ] = [round(randn(P * H, 2, 0.02)), round(randn(TV * H, 3, 0.02))];
        const ids = Uint32Array.from([0, 199, 5, 48, 49, 97, 5, 150, 999, 3, 96, 1, 2, 144]); // 999: past the table
        const types = Uint32Array.from(ids, (_, i) => i % TV);
        const t = (a: Uint32Array) => ctx.write(a, [a.length], 'u32');
        const [idsT, typesT, posIdsT, posT, typT] = [t(ids), t(types), t(Uint32Array.from(ids, (_, i) => i % T)), ctx.uploadFloat(pos, [P, H], precision), ctx.uploadFloat(typ, [TV, H], precision)];
        const rec = ctx.record();
        const out = embedSum(ctx, rec, idsT, typesT, posIdsT, { word, pos: posT, type: typT }, T);
        await rec.submit();
        const got = await ctx.readFloat(out);
        // Reference: the dequantized table (scales, zeros in the activation precision, as on the GPU) + pos + type.
        const deq = dequantizeWeight(precision === 'f16' ? { ...q, scales: roundF16(q.scales), zeros: q.zeros && roundF16(q.zeros) } : q);
        const want = new Float32Array(B * T * H);
        for (let r = 0; r < B * T; r++) {
          const id = Math.min(ids[r], V - 1);
          for (let d = 0; d < H; d++) want[r * H + d] = deq[id * H + d] + pos[(r % T) * H + d] + typ[types[r] * H + d];
        }
        const c = compare(got, precision === 'f16' ? roundF16(want) : want, precision === 'f16' ? 1e-4 : 1e-6, precision === 'f16' ? 2e-3 : 1e-5);
        expect(c.ok, c.mismatches.join('\n')).toBe(true);
        [out, idsT, typesT, posIdsT, posT, typT].forEach((x) => x.dispose());
        word.dispose();
      });
    }
  }
});

/** A store of tensor headers only: sizes a model that is never written. */
function headerStore(name: string, shapes: [string, number[]][]): TensorStore {
  let off = 0;
  const tensors: TensorInfo[] = shapes.map(([n, shape]) => {
    const elements = shape.reduce((a, b) => a * b, 1);
    const t = { name: n, dtype: 'F32' as DType, shape, elements, byteLength: 4 * elements, dataOffsets: [off, off + 4 * elements] as const };
    off += 4 * elements;
    return t;
  });
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const none = () => Promise.reject(new Error('header-only store'));
  return { name, tensors, metadata: {}, get: (n) => byName.get(n), has: (n) => byName.has(n), readBytes: none, readAs: none, close: async () => {} };
}

/** all-MiniLM-L6-v2's tensors (BertModel with pooler): 22,713,216 parameters, 90.85 MB in F32. */
const MINILM = { V: 30522, H: 384, L: 6, I: 1536, P: 512, TV: 2 };
function miniLMShapes(): [string, number[]][] {
  const { V, H, L, I, P, TV } = MINILM;
  const s: [string, number[]][] = [
    ['embeddings.word_embeddings.weight', [V, H]], ['embeddings.position_embeddings.weight', [P, H]], ['embeddings.token_type_embeddings.weight', [TV, H]],
    ['embeddings.LayerNorm.weight', [H]], ['embeddings.LayerNorm.bias', [H]],
  ];
  const lin = (b: string, n: number, k: number) => s.push([`${b}.weight`, [n, k]], [`${b}.bias`, [n]]);
  for (let l = 0; l < L; l++) {
    const b = `encoder.layer.${l}`;
    for (const x of ['query', 'key', 'value']) lin(`${b}.attention.self.${x}`, H, H);
    lin(`${b}.attention.output.dense`, H, H);
    s.push([`${b}.attention.output.LayerNorm.weight`, [H]], [`${b}.attention.output.LayerNorm.bias`, [H]]);
    lin(`${b}.intermediate.dense`, I, H);
    lin(`${b}.output.dense`, H, I);
    s.push([`${b}.output.LayerNorm.weight`, [H]], [`${b}.output.LayerNorm.bias`, [H]]);
  }
  lin('pooler.dense', H, H);
  return s;
}

describe('file sizes', () => {
  const miniCfg = parseModelConfig({ model_type: 'bert', vocab_size: MINILM.V, hidden_size: MINILM.H, num_hidden_layers: MINILM.L, num_attention_heads: 12, intermediate_size: MINILM.I, max_position_embeddings: MINILM.P, type_vocab_size: MINILM.TV }, 'minilm');

  it('MiniLM shape: q8 and q4 bytes as the formula says; the ratios to f32', () => {
    const store = headerStore('minilm', miniLMShapes());
    const f32 = store.tensors.reduce((s, t) => s + t.byteLength, 0);
    expect(f32).toBe(90_852_864);
    const { V, H, L, I, P, TV } = MINILM;
    // By hand: Linears [N, K] as codes + f16 scales (+ zeros); the table by --embeddings; the rest (norms, biases, position, type) f16.
    const linears = [...Array(L)].flatMap(() => [[3 * H, H], [H, H], [I, H], [H, I]]).concat([[H, H]]);
    const packed = (N: number, K: number, bits: number, G: number, asym: boolean) => N * Math.ceil(K / G) * G * (bits / 8) + N * Math.ceil(K / G) * 2 * (asym ? 2 : 1); // F16 scales (and zeros)
    const sideF16 = 2 * (P * H + TV * H + 2 * H + L * (3 * H + H + I + H + 4 * H) + H);
    const table: Record<EmbeddingDType, number> = { int8: packed(V, H, 8, H, false), int4: packed(V, H, 4, 32, true), f16: 2 * V * H, f32: 4 * V * H };
    const rows: string[] = [];
    const ratios: Record<string, number> = {};
    // BERT's q4 Linears: symmetric int4 in groups of 64 (bertQuantDefaults).
    for (const [dtype, bits, G, asym] of [['q8', 8, 128, false], ['q4', 4, 64, false]] as const) {
      for (const e of ['int8', 'int4', 'f16', 'f32'] as const) {
        const plan = planQuantized(store, miniCfg, dtype, { embeddings: e });
        const formula = linears.reduce((s, [n, k]) => s + packed(n, k, bits, G, asym), 0) + table[e] + sideF16;
        expect(plan.bytesOut, `${dtype} --embeddings ${e}`).toBe(formula);
        ratios[`${dtype}/${e}`] = plan.bytesOut / f32;
        rows.push(`${dtype} --embeddings ${e}: ${(plan.bytesOut / 1e6).toFixed(2)} MB = ${((100 * plan.bytesOut) / f32).toFixed(1)}% of f32`);
      }
    }
    console.log(`MiniLM-shaped (f32 ${(f32 / 1e6).toFixed(2)} MB):\n  ${rows.join('\n  ')}`);
    // 8-bit codes alone are 24.6% of f32 here: q8 with an int8 table cannot reach 25% once its
    // scales, biases and position table are counted (25.5%).
    expect(ratios['q8/int8']).toBeLessThan(0.26);
    // q4's default (int8 table rows, int4 Linears in symmetric groups of 64) stays under a fifth of f32.
    expect(ratios['q4/int8']).toBeLessThan(0.2);
    expect(ratios['q4/int4']).toBeLessThan(0.16);
    // The defaults: int8 table rows for q8 and q4 (bertTableDefault).
    expect(planQuantized(store, miniCfg, 'q8', {}).embeddings).toBe('int8');
    expect(planQuantized(store, miniCfg, 'q4', {}).embeddings).toBe('int8');
    expect(planQuantized(store, miniCfg, 'q4', {}).spec).toMatchObject({ bits: 4, group: 64, symmetric: true, clipSearch: true });
    expect(ratios['q8/f32']).toBeGreaterThan(0.62); // what webq-quant-1 files were (64%)
  });

  it('a tiny model: the written file is the plan plus its header, and the table is packed', async () => {
    const m = await writeTinyBert(join(dir, 'size'), { hidden: 64, heads: 2, intermediate: 256, layers: 1, maxPositions: 32, linearStd: 0.075, seed: 5 });
    const f32 = (await stat(join(m.dir, 'model.safetensors'))).size;
    for (const [dtype, e] of [['q8', 'int8'], ['q4', 'int8'], ['q4', 'int4'], ['q8', 'f32']] as const) {
      const out = join(dir, `size-${dtype}-${e}`);
      const r = await cli('quantize', m.dir, '--dtype', dtype, '--out', out, '--embeddings', e);
      expect(r.err).toBe('');
      expect(r.out).toContain(`embeddings ${e}`);
      const st = await SafetensorsFile.open(join(out, 'model.safetensors'));
      const size = (await stat(join(out, 'model.safetensors'))).size;
      const data = st.tensors.reduce((s, t) => s + t.byteLength, 0);
      const store = await (await openModelFiles(m.dir)).checkpoint();
      expect(data).toBe(planQuantized(store, parseModelConfig(m.config), dtype, { embeddings: e }).bytesOut);
      await store.close();
      expect(size - data).toBeLessThan(16384); // the JSON header, with its version: ~250 bytes of hashes per unit
      expect(st.metadata['webq.format']).toBe('webq-quant-2');
      expect(st.metadata['webq.embeddings']).toBe(e);
      const word = 'embeddings.word_embeddings.weight';
      expect(st.has(`${word}.qvalues`)).toBe(e !== 'f32');
      expect(st.get(word)?.dtype).toBe(e === 'f32' ? 'F32' : undefined);
      if (e === 'int8') expect(JSON.parse(st.metadata[`webq.spec.${word}`])).toEqual({ bits: 8, group: 'channel', symmetric: true });
      if (e === 'int4') expect(JSON.parse(st.metadata[`webq.spec.${word}`])).toEqual({ bits: 4, group: 32, symmetric: false });
      for (const n of ['embeddings.position_embeddings.weight', 'embeddings.LayerNorm.weight', 'encoder.layer.0.output.dense.bias']) expect(st.get(n)?.dtype).toBe('F16');
      await st.close();
      console.log(`tiny BERT (hidden 64, vocab ${m.config.vocab_size}, 1 layer) ${dtype} --embeddings ${e}: ${((100 * size) / f32).toFixed(1)}% of f32`);
    }
  });
});

describe('BERT with packed tables', () => {
  let m: TinyBert;
  beforeAll(async () => {
    // bert-gpu.test.ts's model: MiniLM-like proportions at hidden 128.
    m = await writeTinyBert(join(dir, 'bert'), { hidden: 128, heads: 4, intermediate: 512, layers: 2, maxPositions: 64, linearStd: 0.075, seed: 1 });
  });

  async function refEmbeddings() {
    const cfg = parseBertConfig(m.config);
    const tok = await loadTokenizer(await openModelFiles(m.dir), { padTokenId: cfg.padTokenId });
    const enc = tok.encodeBatch(TEXTS, { maxLength: cfg.maxPositions });
    return meanPool(bertEncode(cfg, m.weights, { ids: enc.ids, attentionMask: enc.attentionMask, tokenTypeIds: enc.tokenTypeIds, batch: enc.batch }), enc.attentionMask, enc.batch);
  }
  const cosine = (a: Float32Array, b: Float32Array) => {
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < a.length; i++) [ab, aa, bb] = [ab + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]];
    return ab / Math.sqrt(aa * bb);
  };

  // Bounds are bert-gpu.test.ts's (q8 0.999, q4 0.99); the minimum over the texts is printed.
  const CASES: [LinearDType, EmbeddingDType, number][] = [
    ['q8', 'int8', 0.999], ['q4', 'int8', 0.99], ['w8a8', 'int8', 0.999],
    ['q8', 'f16', 0.999], ['q8', 'int4', 0.999], ['q4', 'int4', 0.99], ['q8', 'f32', 0.999],
  ];
  for (const [dtype, e, bound] of CASES) {
    it(`${dtype}, --embeddings ${e}: the file loads to what quantizing at load gives; cosine vs fp32 >= ${bound}`, async () => {
      const out = join(dir, `bert-${dtype}-${e}`);
      // q4 as asymmetric groups of 32, what these bounds were set for (the q4 default, symmetric
      // groups of 64 with int8 table rows, is bert-q4.test.ts's, on a BERT with outlier channels).
      const q4 = dtype === 'q4' ? ['--group', '32', '--asymmetric'] : [];
      expect((await cli('quantize', m.dir, '--dtype', dtype, '--out', out, '--embeddings', e, ...q4)).code).toBe(0);
      const pre = await BertModel.load(out, { context: ctx });
      const onLoad = await BertModel.load(m.dir, { dtype, embeddings: e, context: ctx, ...(dtype === 'q4' && { group: 32, symmetric: false }) });
      try {
        const [a, b] = [await pre.embed(TEXTS), await onLoad.embed(TEXTS)];
        for (let i = 0; i < TEXTS.length; i++) expect(Array.from(a[i])).toEqual(Array.from(b[i]));
        expect(pre.weightBytes).toBe(onLoad.weightBytes);
        const ref = await refEmbeddings();
        const cos = a.map((v, i) => cosine(v, ref.subarray(i * 128, (i + 1) * 128)));
        console.log(`BERT ${dtype} --embeddings ${e}: cosine vs fp32 min ${Math.min(...cos).toFixed(5)} (${cos.map((c) => c.toFixed(5)).join(', ')}), ${pre.weightBytes} bytes on the GPU`);
        for (const c of cos) expect(c).toBeGreaterThanOrEqual(bound);
      } finally {
        pre.dispose();
        onLoad.dispose();
      }
    });
  }

  it('int8 is the default under quantized dtypes; f32 and f16 dtypes keep a float table', async () => {
    const q8 = await BertModel.load(m.dir, { dtype: 'q8', context: ctx });
    const q8f = await BertModel.load(m.dir, { dtype: 'q8', embeddings: 'f16', context: ctx });
    const f32 = await BertModel.load(m.dir, { dtype: 'f32', context: ctx });
    try {
      const V = m.config.vocab_size as number;
      // The table: V x 128 bytes + one f16 scale per row, against V x 128 f16 values.
      expect(q8f.weightBytes - q8.weightBytes).toBe(V * 128 * 2 - (V * 128 + V * 2));
      expect(f32.weightBytes).toBe(Object.values(m.weights).reduce((s, w) => s + 4 * w.length, 0));
      // webq embed --embeddings is the same option.
      const r = await cli('embed', m.dir, '--dtype', 'q8', '--embeddings', 'f16', '--json', 'hello world');
      expect(r.err).toBe('');
      expect(JSON.parse(r.out).embeddings[0]).toEqual(Array.from((await q8f.embed(['hello world']))[0]));
    } finally {
      [q8, q8f, f32].forEach((x) => x.dispose());
    }
  });

  it('a webq-quant-1 file (float table, F32 norms) still loads, as quantizing at load with embeddings f32', async () => {
    // What webq quantize wrote before tables were packed: Linears packed, everything else as stored.
    const store = await SafetensorsFile.open(join(m.dir, 'model.safetensors'));
    const spec = quantSpecFor('q8');
    const tensors: TensorToWrite[] = [];
    for (const t of store.tensors) {
      const linear = /(query|key|value|dense)\.weight$/.test(t.name);
      if (linear) tensors.push(...quantizedTensors(t.name, quantizeWeight((await store.readAs(t.name, 'f32')) as Float32Array, t.shape[0], t.shape[1], spec)));
      else tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await store.readBytes(t.name) });
    }
    await store.close();
    const old = join(dir, 'bert-old');
    await writeTinyBert(old, { hidden: 128, heads: 4, intermediate: 512, layers: 2, maxPositions: 64, linearStd: 0.075, seed: 1 });
    const meta = { format: 'pt', 'webq.format': 'webq-quant-1', 'webq.dtype': 'q8', 'webq.bits': '8', 'webq.group': '128', 'webq.symmetric': 'true' };
    await writeSafetensorsFile(join(old, 'model.safetensors'), tensors, meta);
    const pre = await BertModel.load(old, { context: ctx });
    const onLoad = await BertModel.load(m.dir, { dtype: 'q8', embeddings: 'f32', context: ctx });
    try {
      expect(pre.dtype).toBe('q8');
      const [a, b] = [await pre.embed(TEXTS), await onLoad.embed(TEXTS)];
      for (let i = 0; i < TEXTS.length; i++) expect(Array.from(a[i])).toEqual(Array.from(b[i]));
    } finally {
      pre.dispose();
      onLoad.dispose();
    }
    await expect(BertModel.load(old, { embeddings: 'int8', context: ctx })).rejects.toThrow(/stores its table embeddings\.word_embeddings\.weight as f32; load it with embeddings 'f32'/);
  });

  it('bad options and metadata say what is wrong', async () => {
    expect((await cli('quantize', m.dir, '--dtype', 'q8', '--out', join(dir, 'x'), '--embeddings', 'int2')).err).toMatch(/--embeddings must be int8, int4, f16, f32, got "int2"/);
    await expect(BertModel.load(m.dir, { embeddings: 'bf16' as EmbeddingDType, context: ctx })).rejects.toThrow(/unknown embeddings 'bf16'/);
    expect((await cli('embed', m.dir, '--embeddings', 'bf16', 'x')).err).toMatch(/--embeddings "bf16": expected int8, int4, f16, f32/);
    const src = await SafetensorsFile.open(join(dir, 'bert-q8-int8', 'model.safetensors'));
    const tensors: TensorToWrite[] = [];
    for (const t of src.tensors) tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await src.readBytes(t.name) });
    const meta = { ...src.metadata, 'webq.spec.embeddings.word_embeddings.weight': '{"bits":3,"group":32,"symmetric":true}' };
    await src.close();
    const bad = join(dir, 'bert-bad-spec');
    await writeTinyBert(bad, { hidden: 128, heads: 4, intermediate: 512, layers: 2, maxPositions: 64, seed: 1 });
    await writeSafetensorsFile(join(bad, 'model.safetensors'), tensors, meta);
    await expect(BertModel.load(bad, { context: ctx })).rejects.toThrow(/webq\.spec\.embeddings\.word_embeddings\.weight.*bits must be 4 or 8/);
  });
});

describe('LLM tables: tied (int8 table = head) and untied (f16 by default, int8 on request)', () => {
  // llama-quant.test.ts's models (planted outlier channels), so the numbers compare with its table.
  const IDS = (() => {
    let s = 17;
    return Array.from({ length: 40 }, () => (s = (s * 1103515245 + 12345) >>> 0) % 256);
  })();
  const FROM = 24;
  const models = {} as Record<'tied' | 'untied', TinyLlama>;
  beforeAll(async () => {
    const base = { hidden: 128, heads: 4, kvHeads: 2, intermediate: 256 };
    models.untied = await writeTinyLlama(join(dir, 'llm-untied'), { ...base, modelType: 'llama', seed: 21 });
    models.tied = await writeTinyLlama(join(dir, 'llm-tied'), { ...base, modelType: 'qwen2', tied: true, seed: 23 });
  }, 60_000);

  /** The decoder LlmModel.load builds, from a float checkpoint or a pre-quantized one. */
  async function decoder(path: string, cfg: LlamaConfig, dtype: LinearDType, opts: UploadOptions = {}): Promise<Decoder> {
    const kv = dtype === 'q8' ? 'int8' : 'f16';
    const store = await (await openModelFiles(path)).checkpoint();
    const w = await uploadLlamaWeights(ctx, store, cfg, resolveLlamaWeights(store, cfg), dtype, { ...opts, prequant: readPrequantInfo(store) });
    await store.close();
    const cache = kvCacheFor(ctx, cfg, 64, kv);
    const dec = new Decoder(ctx, cfg, w, cache);
    const dispose = dec.dispose.bind(dec);
    dec.dispose = () => (dispose(), w.dispose());
    return dec;
  }

  async function greedy(dec: Decoder): Promise<number[]> {
    const params = validateSamplingParams({ temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 1 });
    const out: number[] = [];
    for await (const ids of dec.generate(IDS.slice(0, 8), params, { maxTokens: 12 })) out.push(...ids);
    return out;
  }

  // Mean KL(fp32 || model) per token over teacher-forced positions FROM.., with llama-quant's KV
  // caches (q8: int8, q4: f16). q8's bound is the issue's aim; 4-bit layers on these outlier
  // models are far coarser whatever the table (llama-quant: q4 9.2e-2 untied).
  const CASES: ['tied' | 'untied', LinearDType, EmbeddingDType | undefined, number][] = [
    ['tied', 'q8', undefined, 1e-3], ['tied', 'q4', undefined, 0.4], ['tied', 'q4', 'f16', 0.4],
    ['untied', 'q8', undefined, 1e-3], ['untied', 'q8', 'int8', 5e-3], ['untied', 'q4', 'int8', 0.15],
  ];
  for (const [which, dtype, e, bound] of CASES) {
    it(`${which} ${dtype}, embeddings ${e ?? 'default'}: the file gives the logits and greedy tokens of quantizing at load; KL vs fp32 <= ${bound}`, async () => {
      const m = models[which];
      const cfg = parseLlamaConfig(m.config);
      const out = join(dir, `llm-${which}-${dtype}-${e ?? 'default'}`);
      const r = await cli('quantize', m.dir, '--dtype', dtype, '--out', out, ...(e ? ['--embeddings', e] : []));
      expect(r.err).toBe('');
      const stored = e ?? (which === 'tied' ? 'int8' : 'f16');
      expect(r.out).toContain(`embeddings ${stored}`);
      const st = await SafetensorsFile.open(join(out, 'model.safetensors'));
      expect(st.has('model.embed_tokens.weight.qvalues')).toBe(stored === 'int8');
      expect(st.has('lm_head.weight.qvalues')).toBe(which === 'untied');
      expect(st.tensors.some((t) => t.name === 'lm_head.weight')).toBe(false);
      if (stored === 'int8') expect(JSON.parse(st.metadata['webq.spec.model.embed_tokens.weight'])).toEqual({ bits: 8, group: 32, symmetric: true });
      else expect(st.get('model.embed_tokens.weight')?.dtype).toBe('F16');
      await st.close();

      const pre = await decoder(out, cfg, dtype);
      const onLoad = await decoder(m.dir, cfg, dtype, { embeddings: e });
      try {
        expect(pre.weights.bytes).toBe(onLoad.weights.bytes);
        expect(await greedy(pre)).toEqual(await greedy(onLoad));
        const ref = llamaReferenceForward(cfg, m.weights, IDS);
        const V = cfg.vocabSize;
        let kl = 0;
        for (let t = FROM; t < IDS.length; t++) {
          const got = await pre.logits(IDS.slice(0, t + 1));
          expect(Array.from(got)).toEqual(Array.from(await onLoad.logits(IDS.slice(0, t + 1))));
          kl += klDivergence(ref.subarray(t * V, (t + 1) * V), got);
        }
        kl /= IDS.length - FROM;
        console.log(`LLM ${which} ${dtype}, table ${stored} (from the file): KL vs fp32 ${kl.toExponential(2)} per token; weights ${pre.weights.bytes} bytes on the GPU`);
        expect(kl).toBeLessThanOrEqual(bound);
      } finally {
        pre.dispose();
        onLoad.dispose();
      }
    });
  }

  it('LlmModel: a tied q4 file loads with no options, generates as quantizing at load, and refuses other tables', async () => {
    const m = await writeTinyLlama(join(dir, 'llm-chat'), { modelType: 'qwen2', tokenizer: 'llama2', tied: true, hidden: 64, layers: 1, seed: 3 });
    const out = join(dir, 'llm-chat-q4');
    expect((await cli('quantize', m.dir, '--dtype', 'q4', '--out', out)).out).toContain('7 linear weights as q4 (group 32, asymmetric), embeddings int8');
    const pre = await LlmModel.load(out, { context: ctx });
    const onLoad = await LlmModel.load(m.dir, { dtype: 'q4', context: ctx });
    try {
      const o = { maxTokens: 8, temperature: 0, ignoreEos: true };
      expect((await pre.generate('Once upon a time', o)).tokens).toEqual((await onLoad.generate('Once upon a time', o)).tokens);
      expect(pre.weightBytes).toBe(onLoad.weightBytes);
    } finally {
      pre.dispose();
      onLoad.dispose();
    }
    await expect(LlmModel.load(out, { embeddings: 'f16', context: ctx })).rejects.toThrow(/stores its table model\.embed_tokens\.weight as int8; load it with embeddings 'int8'/);
    await expect(LlmModel.load(m.dir, { embeddings: 'int2' as EmbeddingDType, context: ctx })).rejects.toThrow(/unknown embeddings 'int2'/);
  });
});
