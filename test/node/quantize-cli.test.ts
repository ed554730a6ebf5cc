// `webq quantize`'s surface: the accuracy guard (refuses, writes nothing, names the costliest
// layers), the JSON report and stderr summary, bad input as one-line errors with nothing written,
// and the written models in `webq embed` / `webq generate` with no extra flags.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { SPECIAL_TOKENS } from '../../fixtures/tiny-bert-vocab.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { tinyTokenizerFiles } from '../../fixtures/tiny-tokenizer.ts';
import { writeLines, writeOutlierBert } from '../helpers/quantize-fixtures.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-quantize-cli-');
let ctx: GpuContext;
let bert: string;
let llama: string;
let calib: string;

const LINES = [
  'The quick brown fox jumps over the lazy dog.',
  'In 1969, two astronauts walked on the Moon.',
  'Preheat the oven to 180 degrees, then mix the flour and sugar.',
  'Researchers found that regular exercise improves sleep quality.',
  'Please remember to bring your passport and a printed ticket.',
  'The library is open from nine in the morning until eight.',
];

beforeAll(async () => {
  ctx = await GpuContext.create();
  bert = (await writeOutlierBert(join(tmp.dir, 'bert'), { hidden: 64, heads: 2, intermediate: 128, layers: 2, seed: 3 })).dir;
  llama = (await writeTinyLlama(join(tmp.dir, 'llama'), { tokenizer: 'llama2', tied: true, hidden: 64, intermediate: 128, layers: 1, seed: 7 })).dir;
  calib = await writeLines(join(tmp.dir, 'calib.txt'), LINES);
});
afterAll(() => ctx?.dispose());

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(argv: string[], opts: { own?: boolean; tty?: boolean } = {}): Promise<Run> {
  const r = { code: 0, out: '', err: '' };
  const io = { stdout: (t: string) => void (r.out += t), stderr: (t: string) => void (r.err += t), stderrIsTTY: opts.tty, ...(!opts.own && { gpuContext: ctx }) };
  r.code = await main(argv, io);
  return r;
}

function expectOneErrorLine(r: Run, ...fragments: string[]): void {
  expect(r.code, r.err).toBe(1);
  expect(r.out).toBe('');
  expect(r.err.trimEnd().split('\n'), r.err).toHaveLength(1);
  expect(r.err.startsWith('webq: ')).toBe(true);
  for (const f of fragments) expect(r.err).toContain(f);
}

/** Nothing named `name`, and no temporary folder, in the test folder. */
async function expectNothingWritten(name: string): Promise<void> {
  const entries = await readdir(tmp.dir);
  expect(entries).not.toContain(name);
  expect(entries.filter((e) => e.includes('.tmp-'))).toEqual([]);
}

describe('the accuracy guard', () => {
  it('refuses an impossible --max-error: exit 1, nothing written, the costliest layers named', async () => {
    const r = await cli(['quantize', bert, '--dtype', 'q4', '--out', join(tmp.dir, 'refused'), '--calib', calib, '--max-error', '0', '--report', join(tmp.dir, 'refused.json')]);
    expectOneErrorLine(r, 'exceeds --max-error 0', 'nothing written', 'Costliest layers: layers.');
    // Three units named, each with its error alone.
    expect(r.err.match(/layers\.\d\.\w+ \(\d\.\d\de[-+]\d+ alone\)/g)).toHaveLength(3);
    await expectNothingWritten('refused');
    // The report is written all the same: it is where one looks for why.
    const j = JSON.parse(await readFile(join(tmp.dir, 'refused.json'), 'utf8'));
    expect(j).toMatchObject({ written: false, error: { code: 'ACCURACY_GUARD' }, architecture: 'bert', dtype: 'q4', calibration: { texts: 6, unknownShare: 0 } });
    expect(j.error.message).toContain('exceeds --max-error 0');
    expect(j.model.error).toBeGreaterThan(0);
    expect(j.layers).toHaveLength(9);
    // A decoder too (KL).
    const d = await cli(['quantize', llama, '--dtype', 'q4', '--out', join(tmp.dir, 'refused-llm'), '--calib', calib, '--max-error', '1e-9']);
    expectOneErrorLine(d, 'logit KL vs float', 'Costliest layers: layers.0.');
    await expectNothingWritten('refused-llm');
  });

  it('text the tokenizer cannot read: a warning, and --max-error refused before any work, with its report', async () => {
    // A BERT whose vocabulary spells almost none of the built-in calibration text: nearly every
    // token is [UNK], and a measurement on that would say "no error" about nothing.
    const dir = (await writeTinyBert(join(tmp.dir, 'unreadable'), { seed: 5 })).dir;
    const { tokenizerJson, tokenizerConfig } = tinyTokenizerFiles(64, [...SPECIAL_TOKENS, 'the', 'of', 'and', 'to', 'in']);
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig));

    const report = join(tmp.dir, 'unreadable.json');
    const r = await cli(['quantize', dir, '--dtype', 'q8', '--out', join(tmp.dir, 'unreadable-q8'), '--max-error', '0.5', '--report', report]);
    expectOneErrorLine(r, "of the built-in calibration text are the tokenizer's unknown token ([UNK])", '--max-error would measure nothing real');
    await expectNothingWritten('unreadable-q8');
    const j = JSON.parse(await readFile(report, 'utf8'));
    expect(j).toMatchObject({ written: false, error: { code: 'CALIBRATION_TEXT_UNKNOWN' } });
    expect(j.evaluation.tokens).toBeGreaterThan(100);
    expect(j.evaluation.unknownShare).toBeGreaterThan(0.5);

    // Without --max-error it runs, and says what the measurement is worth.
    const warned = await cli(['quantize', dir, '--dtype', 'q8', '--out', join(tmp.dir, 'unreadable-ok'), '--report', report]);
    expect(warned.code, warned.err).toBe(0);
    expect(warned.err).toMatch(/warning: \d+% of the calibration tokens are the tokenizer's unknown token/);
    expect(JSON.parse(await readFile(report, 'utf8')).calibration.unknownShare).toBeGreaterThan(0.5);
  });

  it('passes a reachable --max-error; the report has sizes, bits, time and errors per layer and for the model', async () => {
    const out = join(tmp.dir, 'guarded');
    const report = join(tmp.dir, 'guarded.json');
    const r = await cli(['quantize', bert, '--dtype', 'q4', '--method', 'gptq', '--out', out, '--calib', calib, '--max-error', '0.05', '--report', report]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('13 linear weights as q4 (group 64, symmetric, gptq)'); // BERT's q4 default (bertQuantDefaults)
    // The summary on stderr.
    expect(r.err).toMatch(/^quantized bert as q4 by gptq: .* -> .* \(\d+\.\d\dx smaller\), Linears 4\.25 bits per weight, \d+\.\d s\n/);
    expect(r.err).toContain('whole model: embedding cosine vs float 0.9');
    expect(r.err).toMatch(/whole model: .*\(int8 activations, as a default load runs it\)/);
    expect(r.err).toContain('largest layer errors');
    const j = JSON.parse(await readFile(report, 'utf8'));
    expect(j).toMatchObject({ architecture: 'bert', dtype: 'q4', fileDType: 'q4', method: 'gptq', calibration: { texts: 6, unknownShare: 0 } });
    expect(r.err).not.toContain('warning');
    for (const k of ['bytesIn', 'bytesOut', 'linearParams', 'linearBytes', 'bitsPerWeight', 'seconds']) expect(j[k], k).toBeGreaterThan(0);
    expect(j.bytesOut).toBeLessThan(j.bytesIn / 4);
    expect(j.model.kind).toBe('encoder');
    expect(j.model.error).toBeLessThan(0.05);
    expect(j.layers).toHaveLength(9); // 2 x (qkv, attnOut, inter, out) + pooler
    for (const l of j.layers) expect(l).toMatchObject({ bits: 4, group: 64, symmetric: true, method: 'gptq' });
    expect(j.layers.filter((l: { error?: number }) => l.error! > 0)).toHaveLength(8); // the pooler is not on the embedding path
    expect((await readdir(out)).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
    // Written tensor by tensor: 4-byte tensors first, so every tensor is aligned to its element size.
    const st = await SafetensorsFile.open(join(out, 'model.safetensors'));
    expect(st.dataStart % 8).toBe(0);
    for (const t of st.tensors) expect((st.dataStart + t.dataOffsets[0]) % (t.byteLength / t.elements), t.name).toBe(0);
    expect(st.tensors.reduce((s, t) => s + t.byteLength, 0)).toBe(j.bytesOut);
    await st.close();
  });

  it('plain round-to-nearest needs no GPU and prints nothing on stderr; --report measures it', async () => {
    const plain = await cli(['quantize', bert, '--dtype', 'q8', '--out', join(tmp.dir, 'plain')], { own: true });
    expect(plain.code).toBe(0);
    expect(plain.err).toBe('');
    const measured = await cli(['quantize', bert, '--dtype', 'q8', '--out', join(tmp.dir, 'plain-measured'), '--calib', calib, '--report', join(tmp.dir, 'plain.json')]);
    expect(measured.code).toBe(0);
    const j = JSON.parse(await readFile(join(tmp.dir, 'plain.json'), 'utf8'));
    expect(j.method).toBe('rtn');
    expect(j.model.error).toBeLessThan(1e-3);
    // The same tensors either way (rtn is what loading the float checkpoint with q8 makes); only
    // the metadata says more (each Linear's method).
    const [a, b] = [await SafetensorsFile.open(join(tmp.dir, 'plain-measured', 'model.safetensors')), await SafetensorsFile.open(join(tmp.dir, 'plain', 'model.safetensors'))];
    expect(a.tensors.map((t) => t.name)).toEqual(b.tensors.map((t) => t.name));
    for (const t of a.tensors) expect(await a.readBytes(t.name), t.name).toEqual(await b.readBytes(t.name));
    expect(a.metadata['webq.method']).toBe('rtn');
    await Promise.all([a.close(), b.close()]);
  });
});

describe('the written models run everywhere with no extra flags', () => {
  it('webq embed on a mixed BERT, webq generate on a w8a8-static LLaMA', async () => {
    const mixed = join(tmp.dir, 'bert-mixed');
    expect((await cli(['quantize', bert, '--dtype', 'mixed', '--budget', '6', '--out', mixed, '--calib', calib])).code).toBe(0);
    const e = await cli(['embed', mixed, '--json', 'hello world'], { own: true });
    expect(e.code, e.err).toBe(0);
    expect(JSON.parse(e.out)).toMatchObject({ dims: 64 });
    const stat = join(tmp.dir, 'llama-static');
    expect((await cli(['quantize', llama, '--dtype', 'w8a8-static', '--smooth', '0.8', '--out', stat, '--calib', calib])).code).toBe(0);
    const g = await cli(['generate', stat, '--prompt', 'Once upon a time', '--max-tokens', '3']);
    expect(g.code, g.err).toBe(0);
    expect(g.out.length).toBeGreaterThan(0);
  });
});

describe('mixed precision\'s 16-bit choice', () => {
  it('--budget 16 keeps every Linear on the path as F16 ({"bits":16}); the loader keeps them float', async () => {
    const out = join(tmp.dir, 'bert-16');
    const report = join(tmp.dir, 'bert-16.json');
    expect((await cli(['quantize', bert, '--dtype', 'mixed', '--budget', '16', '--out', out, '--calib', calib, '--report', report])).code).toBe(0);
    const j = JSON.parse(await readFile(report, 'utf8'));
    // The pooler is off the embedding path: every layout costs it nothing, so it takes the smallest.
    expect(j.layers.map((l: { bits: number }) => l.bits)).toEqual([...new Array(8).fill(16), 4]);
    expect(j.bitsPerWeight).toBeLessThanOrEqual(16);
    expect(j.embeddings).toBe('int8'); // mixed keeps a BERT table at int8
    expect(j.model.error).toBeLessThan(1e-5);
    const st = await SafetensorsFile.open(join(out, 'model.safetensors'));
    expect(st.get('encoder.layer.0.attention.self.query.weight')?.dtype).toBe('F16');
    expect(JSON.parse(st.metadata['webq.spec.encoder.layer.0.attention.self.query.weight'])).toEqual({ bits: 16, method: 'mixed' });
    await st.close();
  });
});

describe('bad input: one "webq:" line, nothing written', () => {
  it('calibration files, budgets, methods, options that do not go together', async () => {
    const empty = join(tmp.dir, 'empty.txt');
    await writeFile(empty, '\n  \n');
    const q = (...a: string[]) => cli(['quantize', bert, '--out', join(tmp.dir, 'bad'), ...a]);
    expectOneErrorLine(await q('--dtype', 'q4', '--method', 'gptq', '--calib', empty), '--calib', 'has no text');
    expectOneErrorLine(await q('--dtype', 'q4', '--method', 'gptq', '--calib', join(tmp.dir, 'missing.txt')), '--calib', 'cannot read it (ENOENT)');
    expectOneErrorLine(await q('--dtype', 'q4', '--calib', tmp.dir), '--calib', 'cannot read it');
    expectOneErrorLine(await q('--dtype', 'mixed', '--budget', '3'), '--budget must be 4 to 16');
    expectOneErrorLine(await q('--dtype', 'mixed', '--budget', '17'), '--budget must be 4 to 16');
    expectOneErrorLine(await q('--dtype', 'mixed', '--budget', 'lots'), '--budget must be a number');
    expectOneErrorLine(await q('--dtype', 'mixed'), '--dtype mixed needs --budget');
    expectOneErrorLine(await q('--dtype', 'q4', '--budget', '5'), '--budget goes with --dtype mixed');
    expectOneErrorLine(await q('--dtype', 'q8', '--method', 'awq'), 'method awq does not go with dtype q8', 'q8 supports rtn, gptq');
    expectOneErrorLine(await q('--dtype', 'mixed', '--budget', '5', '--method', 'awq'), 'method awq does not go with dtype mixed');
    expectOneErrorLine(await q('--dtype', 'q4', '--method', 'bogus'), '--method must be rtn, awq, gptq');
    expectOneErrorLine(await q('--dtype', 'q4', '--smooth', '0.5'), 'smooth (SmoothQuant) goes with int8 activations');
    expectOneErrorLine(await q('--dtype', 'w8a8', '--smooth', '2'), 'smooth must be an alpha from 0 to 1');
    expectOneErrorLine(await q('--dtype', 'q4', '--act-calib', 'kl'), 'activation calibration goes with dtype w8a8-static');
    expectOneErrorLine(await q('--dtype', 'q4', '--act-order'), 'act-order goes with method gptq');
    expectOneErrorLine(await q('--dtype', 'q4', '--max-error', '-1'), '--max-error must be >= 0');
    expectOneErrorLine(await q('--dtype', 'q3'), '--dtype must be q8, q4, w8a8 or w4a8');
    await expectNothingWritten('bad');
  });

  it('an existing non-empty output folder, an unsupported architecture, a model without a tokenizer', async () => {
    const full = join(tmp.dir, 'full');
    await mkdir(full);
    await writeFile(join(full, 'keep.txt'), 'mine');
    expectOneErrorLine(await cli(['quantize', bert, '--dtype', 'q4', '--method', 'gptq', '--out', full]), 'already exists and is not empty');
    expect(await readdir(full)).toEqual(['keep.txt']);
    const gpt2 = (await writeTinyLlama(join(tmp.dir, 'gpt2'), { extraConfig: { model_type: 'gpt2' }, layers: 1 })).dir;
    expectOneErrorLine(await cli(['quantize', gpt2, '--dtype', 'q4', '--method', 'gptq', '--out', join(tmp.dir, 'gpt2-q4')]), 'gpt2', 'llama, mistral, qwen2, qwen3');
    await expectNothingWritten('gpt2-q4');
    const notok = (await writeTinyLlama(join(tmp.dir, 'notok'), { layers: 1 })).dir;
    expectOneErrorLine(await cli(['quantize', notok, '--dtype', 'q4', '--method', 'awq', '--out', join(tmp.dir, 'notok-q4')]), 'calibration runs the model on text and needs its tokenizer');
    await expectNothingWritten('notok-q4');
  });
});
