// The CLI on GGUF files: `webq info` says how each type loads (copied, or re-quantized: named),
// `webq generate` and `webq chat` run a .gguf with no other file.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LlmModel } from '../../src/api/llm.ts';
import type { ChatIO } from '../../src/cli/chat.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { hfToGguf, vocabMetadata } from '../helpers/gguf-writer.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';

const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
let dir: string;
let ctx: GpuContext;
let path: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webq-gguf-cli-'));
  ctx = await GpuContext.create();
  const m = await writeTinyLlama(join(dir, 'hf'), { modelType: 'llama', tokenizer: 'llama2', hidden: 64, intermediate: 256, layers: 1, maxPositions: 64, seed: 5 });
  const g = hfToGguf(m.config, m.weights, { linear: 'Q4_0', linearBy: { 'down_proj.weight': 'Q6_K', 'up_proj.weight': 'Q4_1' }, embed: 'F16', output: 'Q8_0', vocabMeta: vocabMetadata('llama2', { chatTemplate: CHATML }).meta });
  path = join(dir, 'tiny-Q4_0.gguf');
  await writeFile(path, g.bytes);
});
afterAll(async () => {
  ctx?.dispose();
  await rm(dir, { recursive: true, force: true });
});

async function cli(argv: string[], extra: Partial<ChatIO> = {}): Promise<{ code: number; out: string; err: string }> {
  const r = { code: 0, out: '', err: '' };
  r.code = await main(argv, { stdout: (t) => void (r.out += t), stderr: (t) => void (r.err += t), gpuContext: ctx, ...extra } as ChatIO);
  return r;
}

it('webq info names what is copied and what is re-quantized', async () => {
  const r = await cli(['info', path]);
  expect(r.code).toBe(0);
  expect(r.out).toMatch(/GGUF v3, llama, \d+ tensors/);
  expect(r.out).toMatch(/blk\.0\.attn_q\.weight\s+Q4_0\s+\[64, 64\].*model\.layers\.0\.self_attn\.q_proj\.weight/);
  expect(r.out).toMatch(/\d+ Q4_0 tensors .*loaded as webq int4 symmetric, group 32, codes and f16 scales as stored \(no re-quantization\)/);
  expect(r.out).toMatch(/1 Q6_K tensor .*RE-QUANTIZED at load to webq int8 symmetric, group 32.*: blk\.0\.ffn_down\.weight/);
  expect(r.out).toMatch(/1 Q4_1 tensor .*RE-QUANTIZED at load to webq int8 asymmetric, group 32.*: blk\.0\.ffn_up\.weight/);
  expect(r.out).toMatch(/1 Q8_0 tensor .*no re-quantization/);
  expect(r.out).toContain('tokenizer.ggml.tokens: [32000 values');
  const j = JSON.parse((await cli(['info', path, '--json'])).out);
  expect(j.types.find((t: { type: string }) => t.type === 'Q6_K')).toMatchObject({ tensors: 1, mapping: 'scaled', layout: 'int8 symmetric, group 32' });
  expect(j.types.find((t: { type: string }) => t.type === 'Q4_0')).toMatchObject({ mapping: 'copy', layout: 'int4 symmetric, group 32' });
});

it('webq generate and webq chat run the .gguf alone', async () => {
  const llm = await LlmModel.load(path, { context: ctx });
  try {
    const want = await llm.generate('Once upon a time', { maxTokens: 6, temperature: 0 });
    const r = await cli(['generate', path, '--prompt', 'Once upon a time', '--max-tokens', '6', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ ids: want.promptIds, tokens: want.tokens, text: want.text });
    const reply = await llm.chat.completions.create({ messages: [{ role: 'user', content: 'Hi there' }], max_tokens: 5, temperature: 0 });
    const c = await cli(['chat', path, '--max-tokens', '5', '--temperature', '0'], { input: Readable.from(['Hi there\n']), inputIsTTY: false });
    expect(c.code).toBe(0);
    expect(c.out).toContain(reply.choices[0].message.content);
  } finally {
    llm.dispose();
  }
});
