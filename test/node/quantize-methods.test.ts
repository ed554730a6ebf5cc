// `webq quantize` methods on tiny models with planted outlier channels (a 25x LayerNorm channel
// set in BERT, tiny-llama's 20x embedding channels and 6x weight columns), measured the way the
// command measures them: the written file loaded as every loader loads it, against the float
// model on the calibration text (BERT: 1 - embedding cosine; LLaMA: logit KL per token). Every
// comparison is at the same group size and the same bits per weight; the numbers are printed and
// quoted in the README. One GPU device for the whole file (the CLI's io.gpuContext).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import type { QuantizeReport } from '../../src/quantize/checkpoint.ts';
import { DEFAULT_CALIBRATION_TEXT, calibrationLines } from '../../src/quantize/calibration-text.ts';
import { readPrequantInfo } from '../../src/quant/prequantized.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { writeLines, writeOutlierBert } from '../helpers/quantize-fixtures.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-quantize-methods-');
let ctx: GpuContext;
let bert: string;
let llama: string;
let calib: string;

beforeAll(async () => {
  ctx = await GpuContext.create();
  bert = (await writeOutlierBert(join(tmp.dir, 'bert'), { hidden: 128, heads: 4, intermediate: 256, layers: 2, seed: 9 })).dir;
  // Tied, with the table kept f16 (--embeddings f16 below): the errors are the Linears'.
  llama = (await writeTinyLlama(join(tmp.dir, 'llama'), { tokenizer: 'llama2', tied: true, hidden: 128, intermediate: 256, layers: 2, seed: 5 })).dir;
  calib = await writeLines(join(tmp.dir, 'calib.txt'), calibrationLines(DEFAULT_CALIBRATION_TEXT, 'default').slice(0, 16));
});
afterAll(() => ctx?.dispose());

/** Runs `webq quantize` on the shared device with --report; returns the report. */
async function quantize(model: string, name: string, ...args: string[]): Promise<QuantizeReport & { out: string }> {
  const out = join(tmp.dir, name);
  const report = join(tmp.dir, `${name}.json`);
  let err = '';
  const code = await main(['quantize', model, '--out', out, '--calib', calib, '--report', report, ...args], { stdout: () => {}, stderr: (t) => void (err += t), gpuContext: ctx } as Parameters<typeof main>[1]);
  expect(code, err).toBe(0);
  return JSON.parse(await readFile(report, 'utf8'));
}

const fmt = (e: number) => e.toExponential(2);

// Asymmetric groups of 32 throughout (BERT's q4 default is symmetric groups of 64: bertQuantDefaults),
// so the methods' numbers stay comparable with the README's table.
describe('BERT with outlier channels, q4 group 32', () => {
  const errors: Record<string, number> = {};
  it('gptq and awq each have less error than round-to-nearest; the files load with no options', async () => {
    for (const method of ['rtn', 'gptq', 'awq']) {
      const r = await quantize(bert, `bert-q4-${method}`, '--dtype', 'q4', '--group', '32', '--asymmetric', '--method', method);
      expect(r.model!.kind).toBe('encoder');
      expect(r.bitsPerWeight).toBeCloseTo(5, 6);
      errors[method] = r.model!.error;
      const m = await BertModel.load(r.out, { context: ctx });
      expect(m.dtype).toBe('q4');
      expect((await m.embed(['a quick test']))[0].length).toBe(128);
      m.dispose();
    }
    console.log(`BERT q4 g32, 1 - cosine vs fp32: rtn ${fmt(errors.rtn)}, gptq ${fmt(errors.gptq)} (${(errors.gptq / errors.rtn).toFixed(2)}x), awq ${fmt(errors.awq)} (${(errors.awq / errors.rtn).toFixed(2)}x)`);
    expect(errors.gptq).toBeLessThan(errors.rtn);
    expect(errors.awq).toBeLessThan(errors.rtn);
  });

  it('bias correction lowers awq\'s error', async () => {
    const r = await quantize(bert, 'bert-q4-awq-nobc', '--dtype', 'q4', '--group', '32', '--asymmetric', '--method', 'awq', '--no-bias-correction');
    console.log(`BERT q4 awq: with bias correction ${fmt(errors.awq)}, without ${fmt(r.model!.error)}`);
    expect(r.layers.every((l) => !l.biasCorrected)).toBe(true);
    expect(errors.awq).toBeLessThan(r.model!.error);
  });

  it('mixed --budget at uniform q4\'s size has at least 30% less error, and lists each layer\'s choice', async () => {
    // Same table for both (the budget is over the Linears).
    const uniform = await quantize(bert, 'bert-q4-uniform', '--dtype', 'q4', '--group', '32', '--asymmetric', '--embeddings', 'int8');
    const mixed = await quantize(bert, 'bert-mixed', '--dtype', 'mixed', '--budget', String(uniform.bitsPerWeight), '--embeddings', 'int8');
    expect(mixed.bytesOut).toBeLessThanOrEqual(uniform.bytesOut);
    console.log(`BERT mixed --budget ${uniform.bitsPerWeight}: ${mixed.bitsPerWeight.toFixed(3)} bits per weight, error ${fmt(mixed.model!.error)} vs uniform q4 ${fmt(uniform.model!.error)} (${(100 * (1 - mixed.model!.error / uniform.model!.error)).toFixed(0)}% less); ${mixed.layers.map((l) => `${l.id} ${l.bits}${l.group ? `/g${l.group}` : ''}`).join(', ')}`);
    expect(mixed.bitsPerWeight).toBeLessThanOrEqual(uniform.bitsPerWeight + 1e-9);
    expect(mixed.model!.error).toBeLessThan(0.7 * uniform.model!.error);
    for (const l of mixed.layers) {
      expect(l.candidates!.length).toBeGreaterThanOrEqual(3);
      expect(l.candidates!.some((c) => c.bits === l.bits)).toBe(true);
    }
    const m = await BertModel.load(mixed.out, { context: ctx });
    expect(m.dtype).toBe('q4');
    m.dispose();
  });
});

describe('LLaMA with massive activations, q4 group 32', () => {
  it('gptq and awq each have less logit KL than round-to-nearest; the files generate with no options', async () => {
    const kl: Record<string, number> = {};
    for (const method of ['rtn', 'gptq', 'awq']) {
      const r = await quantize(llama, `llama-q4-${method}`, '--dtype', 'q4', '--group', '32', '--method', method, '--embeddings', 'f16');
      expect(r.model!.kind).toBe('decoder');
      kl[method] = r.model!.error;
      console.log(`LLaMA q4 ${method}: KL ${fmt(r.model!.kl!)} per token, top-1 ${(100 * r.model!.top1!).toFixed(1)}%${method === 'awq' ? `, alphas ${r.layers.map((l) => l.alpha ?? '-').join(' ')}` : ''}`);
      const m = await LlmModel.load(r.out, { context: ctx });
      expect(m.dtype).toBe('q4');
      expect((await m.generate('Once upon a time', { maxTokens: 4, temperature: 0, ignoreEos: true })).tokens).toHaveLength(4);
      m.dispose();
    }
    expect(kl.gptq).toBeLessThan(kl.rtn);
    expect(kl.awq).toBeLessThan(kl.rtn);
  });

  it('mixed --budget at uniform q4\'s size has at least 30% less KL', async () => {
    const uniform = await quantize(llama, 'llama-q4-uniform', '--dtype', 'q4', '--embeddings', 'f16');
    const mixed = await quantize(llama, 'llama-mixed', '--dtype', 'mixed', '--budget', String(uniform.bitsPerWeight), '--embeddings', 'f16');
    console.log(`LLaMA mixed --budget ${uniform.bitsPerWeight}: ${mixed.bitsPerWeight.toFixed(3)} bits per weight, KL ${fmt(mixed.model!.error)} vs uniform q4 ${fmt(uniform.model!.error)} (${(100 * (1 - mixed.model!.error / uniform.model!.error)).toFixed(0)}% less); ${mixed.layers.map((l) => `${l.id} ${l.bits}${l.group ? `/g${l.group}` : ''}`).join(', ')}`);
    expect(mixed.bytesOut).toBeLessThanOrEqual(uniform.bytesOut);
    expect(mixed.model!.error).toBeLessThan(0.7 * uniform.model!.error);
  });

  it('SmoothQuant lowers W8A8 error, static and dynamic; static scales are in the file and load with no options', async () => {
    const e: Record<string, QuantizeReport & { out: string }> = {};
    for (const [name, args] of [
      ['w8a8', ['--dtype', 'w8a8']],
      ['w8a8 --smooth 0.8', ['--dtype', 'w8a8', '--smooth', '0.8']],
      ['w8a8-static', ['--dtype', 'w8a8-static']],
      ['w8a8-static --smooth 0.8', ['--dtype', 'w8a8-static', '--smooth', '0.8']],
      ['w8a8-static --smooth 0.8 --act-calib kl', ['--dtype', 'w8a8-static', '--smooth', '0.8', '--act-calib', 'kl']],
      ['w8a8-static --smooth 0.8 --act-calib minmax', ['--dtype', 'w8a8-static', '--smooth', '0.8', '--act-calib', 'minmax']],
    ] as const) {
      e[name] = await quantize(llama, `llama-${name.replace(/[ .-]+/g, '_')}`, ...args, '--embeddings', 'f16');
    }
    console.log(`LLaMA W8A8 logit KL per token: ${Object.entries(e).map(([k, r]) => `${k} ${fmt(r.model!.error)}`).join('; ')}`);
    expect(e['w8a8 --smooth 0.8'].model!.error).toBeLessThan(e.w8a8.model!.error);
    expect(e['w8a8-static --smooth 0.8'].model!.error).toBeLessThan(e['w8a8-static'].model!.error);
    const out = e['w8a8-static --smooth 0.8'].out;
    const st = await SafetensorsFile.open(join(out, 'model.safetensors'));
    const info = readPrequantInfo(st)!;
    expect(info.dtype).toBe('w8a8');
    expect(info.actScales!.size).toBe(14); // q, k, v, o, gate, up, down in 2 layers
    expect(st.metadata['webq.static_activations']).toBe('percentile');
    expect(JSON.parse(st.metadata['webq.spec.model.layers.0.self_attn.q_proj.weight'])).toMatchObject({ bits: 8, group: 'channel', symmetric: true, method: 'rtn' });
    await st.close();
    const m = await LlmModel.load(out, { context: ctx });
    expect(m.dtype).toBe('w8a8');
    expect((await m.generate('Once upon a time', { maxTokens: 4, temperature: 0, ignoreEos: true })).tokens).toHaveLength(4);
    m.dispose();
  });
});
