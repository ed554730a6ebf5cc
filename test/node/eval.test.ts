// `webq eval` and evaluate(): a quantized model against its float original on a text. The float
// perplexity is checked against the fp32 CPU forward (src/reference/llama.ts) on the same chunks,
// a dtype quantized at load against the same dtype written by `webq quantize`, f16 against a tiny
// KL, the piecewise logits against one forward, and the encoder cosines against the CPU BERT.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluate } from '../../src/api/evaluate.ts';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { parseBertConfig } from '../../src/models/config.ts';
import { parseLlamaConfig } from '../../src/models/llama/llama-config.ts';
import { bertEncode, meanPool } from '../../src/reference/bert.ts';
import { llamaReferenceForward } from '../../src/reference/llama.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { TRAINED_LLAMA, trainedWeights } from '../helpers/trained-fixture.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-eval-');
let ctx: GpuContext;
let text: string;
let textFile: string;

beforeAll(async () => {
  ctx = await GpuContext.create();
  // Six held-out stories (the fixture never trained on them): about 900 tokens.
  text = (await readFile(join(TRAINED_LLAMA, 'heldout.txt'), 'utf8')).split('\n').slice(0, 6).join('\n');
  textFile = join(tmp.dir, 'eval.txt');
  await writeFile(textFile, text);
});
afterAll(() => ctx?.dispose());

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), gpuContext: ctx } as Parameters<typeof main>[1]);
  return { code, out, err };
}

describe('decoders', () => {
  it("the float model's perplexity is the fp32 CPU forward's on the same chunks; f16 is within a tiny KL", async () => {
    const r = await evaluate(TRAINED_LLAMA, { text, dtype: 'f16', contextLength: 128, maxChunks: 3, context: ctx });
    expect(r.kind).toBe('decoder');
    expect(r.chunks).toBe(3);
    // The chunks as evaluate() cuts them: BOS, then 127 tokens of the stream.
    const model = await LlmModel.load(TRAINED_LLAMA, { dtype: 'f32', context: ctx });
    const stream = model.tokenizer.encode(text, { addSpecialTokens: false, maxLength: Infinity }).ids;
    model.dispose();
    const cfg = parseLlamaConfig(JSON.parse(await readFile(join(TRAINED_LLAMA, 'config.json'), 'utf8')));
    const w = await trainedWeights();
    let nll = 0;
    let n = 0;
    for (let c = 0; c < 3; c++) {
      const ids = [1, ...stream.slice(c * 127, (c + 1) * 127)];
      const logits = llamaReferenceForward(cfg, w, ids);
      for (let t = 0; t + 1 < ids.length; t++) {
        const row = logits.subarray(t * cfg.vocabSize, (t + 1) * cfg.vocabSize);
        const m = Math.max(...row);
        const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
        nll += lse - row[ids[t + 1]];
        n++;
      }
    }
    expect(r.tokens).toBe(n);
    const ref = Math.exp(nll / n);
    console.log(`eval f16 on the trained fixture: float perplexity ${r.perplexity!.float.toFixed(4)} (CPU fp32 ${ref.toFixed(4)}), f16 ${r.perplexity!.quantized.toFixed(4)}, KL ${r.kl!.mean.toExponential(2)} (p99 ${r.kl!.p99.toExponential(2)}), top-1 ${(100 * r.top1!).toFixed(2)}%`);
    expect(Math.abs(r.perplexity!.float - ref) / ref).toBeLessThan(1e-4);
    expect(r.kl!.mean).toBeLessThan(1e-4);
    expect(r.kl!.p99).toBeGreaterThanOrEqual(0);
    expect(r.kl!.max).toBeGreaterThanOrEqual(r.kl!.p99);
    expect(r.top1!).toBeGreaterThan(0.99);
  });

  it('logits piece by piece (cached prefix) equal one forward', async () => {
    const model = await LlmModel.load(TRAINED_LLAMA, { dtype: 'f32', kv: 'f32', context: ctx });
    try {
      const ids = [1, ...model.tokenizer.encode(text, { addSpecialTokens: false, maxLength: Infinity }).ids.slice(0, 60)];
      const whole = await model.logitsAll(ids);
      const V = model.config.vocabSize;
      const a = await model.logitsAll(ids.slice(0, 25));
      const b = await model.logitsAll(ids, { from: 25 });
      expect(a.length + b.length).toBe(whole.length);
      let worst = 0;
      [...a, ...b].forEach((v, i) => (worst = Math.max(worst, Math.abs(v - whole[i]))));
      expect(worst).toBeLessThan(1e-4);
      expect(b.length).toBe((ids.length - 25) * V);
      await expect(model.logitsAll(ids, { from: ids.length })).rejects.toThrow(/from must be a position/);
    } finally {
      model.dispose();
    }
  });

  it('a dtype quantized at load gives the numbers of the same dtype written by webq quantize; the CLI prints a row per dtype', async () => {
    const out = join(tmp.dir, 'q4');
    expect((await cli('quantize', TRAINED_LLAMA, '--dtype', 'q4', '--out', out)).code).toBe(0);
    const onLoad = await evaluate(TRAINED_LLAMA, { text, dtype: 'q4', maxChunks: 2, contextLength: 256, context: ctx });
    const file = await evaluate(TRAINED_LLAMA, { text, quantized: out, maxChunks: 2, contextLength: 256, context: ctx });
    expect(file.quantized.dtype).toBe('q4');
    expect(file.kl!.mean).toBeCloseTo(onLoad.kl!.mean, 9);
    expect(file.perplexity!.quantized).toBeCloseTo(onLoad.perplexity!.quantized, 9);
    expect(onLoad.kl!.mean).toBeGreaterThan(1e-4);
    const r = await cli('eval', TRAINED_LLAMA, '--text', textFile, '--dtype', 'q8,q4', '--context', '256', '--max-chunks', '2');
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toMatch(/tokens of .* in 2 chunks of up to 256; f32 perplexity \d/);
    expect(lines.slice(2).map((l) => l.split(/\s+/)[0])).toEqual(['q8', 'q4']);
    expect(Number(lines[3].split(/\s+/)[4])).toBeCloseTo(onLoad.kl!.mean, 6);
    const j = await cli('eval', TRAINED_LLAMA, '--text', textFile, '--quantized', out, '--json', '--context', '256', '--max-chunks', '2');
    const parsed = JSON.parse(j.out);
    expect(parsed.rows).toHaveLength(1);
    expect(parsed.rows[0].kl.mean).toBeCloseTo(file.kl!.mean, 9);
    expect(parsed.rows[0].kind).toBe('decoder');
  });

  it('bad requests are one-line errors', async () => {
    expect((await cli('eval', TRAINED_LLAMA)).err).toMatch(/--text FILE is required/);
    expect((await cli('eval', TRAINED_LLAMA, '--text', textFile, '--dtype', 'f32')).err).toMatch(/f32 is the float model itself/);
    expect((await cli('eval', TRAINED_LLAMA, '--text', join(tmp.dir, 'missing.txt'))).err).toMatch(/cannot read it/);
    await expect(evaluate(TRAINED_LLAMA, { text: ' \n', context: ctx })).rejects.toThrow(/text is empty/);
    await expect(evaluate(TRAINED_LLAMA, { text, dtype: 'q4', quantized: tmp.dir, context: ctx })).rejects.toThrow(/not both/);
    await expect(evaluate(TRAINED_LLAMA, { text, contextLength: 100000, context: ctx })).rejects.toThrow(/max_position_embeddings/);
  });
});

describe('encoders', () => {
  it('mean and minimum cosine over the lines, as the fp32 CPU forward gives them', async () => {
    const m = await writeTinyBert(join(tmp.dir, 'bert'), { hidden: 64, heads: 2, intermediate: 128, layers: 2, maxPositions: 64, seed: 4 });
    const lines = ['the cat sat on the mat', 'hello world', 'a much longer sentence about the weather and the city in the morning'];
    const r = await evaluate(m.dir, { text: lines.join('\n') + '\n\n', dtype: 'q4', context: ctx });
    expect(r.kind).toBe('encoder');
    expect(r.texts).toBe(3);
    const cfg = parseBertConfig(m.config);
    const tok = await loadTokenizer(await openModelFiles(m.dir), { padTokenId: cfg.padTokenId });
    const enc = tok.encodeBatch(lines, { maxLength: cfg.maxPositions });
    const ref = meanPool(bertEncode(cfg, m.weights, { ids: enc.ids, attentionMask: enc.attentionMask, tokenTypeIds: enc.tokenTypeIds, batch: enc.batch }), enc.attentionMask, enc.batch);
    const q = await BertModel.load(m.dir, { dtype: 'q4', context: ctx });
    const got = await q.embed(lines);
    q.dispose();
    const cos = got.map((e, i) => {
      const v = ref.subarray(i * 64, (i + 1) * 64);
      let [ab, aa, bb] = [0, 0, 0];
      for (let k = 0; k < 64; k++) [ab, aa, bb] = [ab + e[k] * v[k], aa + e[k] * e[k], bb + v[k] * v[k]];
      return ab / Math.sqrt(aa * bb);
    });
    expect(r.cosine!.min).toBeCloseTo(Math.min(...cos), 4);
    expect(r.cosine!.mean).toBeCloseTo(cos.reduce((s, c) => s + c, 0) / 3, 4);
    const c = await cli('eval', m.dir, '--text', await writeLines(join(tmp.dir, 'lines.txt'), lines), '--dtype', 'q8');
    expect(c.code, c.err).toBe(0);
    expect(c.out).toMatch(/3 texts \(lines of .*\), embedding cosine against f32/);
    expect((await cli('eval', m.dir, '--text', join(tmp.dir, 'lines.txt'), '--kv', 'int8')).err).toMatch(/for decoders/);
  });
});

async function writeLines(path: string, lines: string[]): Promise<string> {
  await writeFile(path, lines.join('\n') + '\n');
  return path;
}
