// `webq generate`, `webq logits`, `webq chat` and `webq quantize` on LLMs, in-process through
// main() on tiny Llama and Qwen3 folders with real tokenizers, compared with LlmModel itself.
// Most commands share one GpuContext (passed in the io) to keep this file fast on a software
// adapter; one generate run makes its own, as the real CLI does.
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlmModel } from '../../src/api/llm.ts';
import type { ChatIO, ChatSession } from '../../src/cli/chat.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const PROMPT = 'Once upon a time';
const F32 = ['--dtype', 'f32', '--kv', 'f32'];

const tmp = useTempDir('webq-cli-llm-');
let ctx: GpuContext;
let llama: string; // llama2 tokenizer (adds BOS), chat template, untied lm_head
let ref: LlmModel; // llama at f32, the reference for the CLI's output

beforeAll(async () => {
  ctx = await GpuContext.create();
  llama = (await writeTinyLlama(join(tmp.dir, 'llama'), { tokenizer: 'llama2', chatTemplate: CHATML, generationConfig: { bos_token_id: 1, eos_token_id: 2 }, seed: 31 })).dir;
  await writeFile(join(llama, 'chat_template.jinja'), CHATML);
  ref = await LlmModel.load(llama, { dtype: 'f32', kv: 'f32', context: ctx });
});
afterAll(() => {
  ref?.dispose();
  ctx?.dispose();
});

interface Run {
  code: number;
  out: string;
  err: string;
}

/** main() with captured output, on the shared device unless `own` (the real CLI's path). */
async function cli(argv: string[], extra: Partial<ChatIO> & { own?: boolean } = {}): Promise<Run> {
  const r = { code: 0, out: '', err: '' };
  const { own, ...rest } = extra;
  const io: ChatIO = { stdout: (t) => void (r.out += t), stderr: (t) => void (r.err += t), ...(!own && { gpuContext: ctx }), ...rest };
  r.code = await main(argv, io);
  return r;
}

function expectOneErrorLine(r: Run, ...fragments: string[]): void {
  expect(r.code).toBe(1);
  expect(r.out).toBe('');
  expect(r.err.endsWith('\n')).toBe(true);
  expect(r.err.trimEnd().split('\n')).toHaveLength(1);
  expect(r.err.startsWith('webq: ')).toBe(true);
  for (const f of fragments) expect(r.err).toContain(f);
}

const STATS = /^prompt \d+ tokens, generated (\d+) tokens, prefill [\d.]+ tokens\/s, decode [\d.]+ tokens\/s, finish (length|stop)\n$/;

describe('webq generate', () => {
  it('--json: the prompt ids, greedy tokens and text LlmModel gives; streamed text equals it (own device)', async () => {
    const r = await cli(['generate', llama, '--prompt', PROMPT, '--max-tokens', '12', '--json', ...F32]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { ids: number[]; tokens: number[]; text: string };
    expect(Object.keys(j)).toEqual(['ids', 'tokens', 'text']);
    expect(r.out.trimEnd().split('\n')).toHaveLength(1);
    expect(j.ids).toEqual(ref.encode(PROMPT));
    expect(j.ids[0]).toBe(1); // llama2's tokenizer adds <s>
    const want = await ref.generate(PROMPT, { maxTokens: 12, temperature: 0 });
    expect(j.tokens.length).toBeGreaterThan(0);
    expect(j.tokens).toEqual(want.tokens);
    expect(j.text).toBe(ref.tokenizer.decode(j.tokens, { skipSpecialTokens: true }));

    // Streamed, on a device of its own as a real run has, with the prompt from stdin.
    const s = await cli(['generate', llama, '--prompt', '-', '--max-tokens', '12', ...F32], { own: true, readStdin: async () => `${PROMPT}\n` });
    expect(s.code).toBe(0);
    expect(s.out).toBe(`${j.text}\n`);
    const m = STATS.exec(s.err);
    expect(m?.[1]).toBe(String(j.tokens.length));
    expect(s.err).toContain(`prompt ${j.ids.length} tokens`);
  });

  it('qwen3: no BOS added; q4 tokens equal LlmModel at q4', async () => {
    const qwen = (await writeTinyLlama(join(tmp.dir, 'qwen3'), { modelType: 'qwen3', tokenizer: 'qwen3', tied: true, dtype: 'F16', seed: 5 })).dir;
    const lm = await LlmModel.load(qwen, { dtype: 'q4', context: ctx });
    try {
      const r = await cli(['generate', qwen, '--prompt', 'Hello world', '--max-tokens', '6', '--dtype', 'q4', '--json']);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.out) as { ids: number[]; tokens: number[]; text: string };
      expect(j.ids).toEqual(lm.encode('Hello world'));
      expect(j.ids).not.toContain(151643);
      expect(j.tokens).toEqual((await lm.generate('Hello world', { maxTokens: 6, temperature: 0 })).tokens);
      expect(j.text).toBe(lm.tokenizer.decode(j.tokens, { skipSpecialTokens: true }));
    } finally {
      lm.dispose();
    }
  });

  it('seeded sampling gives the same tokens each run (those of LlmModel); --stop repeats', async () => {
    const args = ['generate', llama, '--prompt', 'Hello', '--max-tokens', '16', '--temperature', '1.5', '--top-k', '50', '--top-p', '0.95', '--json', ...F32];
    const [a, b] = [await cli([...args, '--seed', '7']), await cli([...args, '--seed', '7'])];
    const ta = (JSON.parse(a.out) as { tokens: number[] }).tokens;
    expect(ta.length).toBeGreaterThan(0);
    expect((JSON.parse(b.out) as { tokens: number[] }).tokens).toEqual(ta);
    expect(ta).toEqual((await ref.generate('Hello', { maxTokens: 16, temperature: 1.5, topK: 50, topP: 0.95, seed: 7 })).tokens);

    const greedy = await ref.generate(PROMPT, { maxTokens: 24, temperature: 0 });
    const full = greedy.text;
    const stop = full.slice(full.length >> 1, (full.length >> 1) + 3);
    const r = await cli(['generate', llama, '--prompt', PROMPT, '--max-tokens', '24', '--stop', 'never-seen', '--stop', stop, ...F32]);
    expect(r.out).toBe(`${full.slice(0, full.indexOf(stop))}\n`);
    expect(STATS.exec(r.err)?.[2]).toBe('stop');
    // The count and the ids end at the id completing the stop; none sampled after it counts.
    let kept = 1;
    while (!ref.tokenizer.decode(greedy.tokens.slice(0, kept), { skipSpecialTokens: true }).includes(stop)) kept++;
    expect(kept).toBeLessThan(greedy.tokens.length);
    expect(STATS.exec(r.err)?.[1]).toBe(String(kept));
    const j = await cli(['generate', llama, '--prompt', PROMPT, '--max-tokens', '24', '--stop', stop, '--json', ...F32]);
    expect((JSON.parse(j.out) as { tokens: number[] }).tokens).toEqual(greedy.tokens.slice(0, kept));
  });
});

describe('--prompt ""', () => {
  it('is an empty prompt: generation from BOS alone; a tokenizer that adds no BOS refuses it in one line', async () => {
    const r = await cli(['generate', llama, '--prompt', '', '--max-tokens', '4', '--json', ...F32]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out) as { ids: number[]; tokens: number[] };
    expect(j.ids).toEqual([1]); // <s>
    expect(j.tokens).toEqual((await ref.generate('', { maxTokens: 4, temperature: 0 })).tokens);
    expect((await cli(['generate', llama, '--prompt=', '--max-tokens', '4', '--json', ...F32])).out).toBe(r.out);

    const qwen = (await writeTinyLlama(join(tmp.dir, 'qwen3-empty'), { modelType: 'qwen3', tokenizer: 'qwen3', tied: true, dtype: 'F16', seed: 5 })).dir;
    expectOneErrorLine(await cli(['generate', qwen, '--prompt', '', '--max-tokens', '4']), 'the prompt has no tokens');
    // An option that is not the prompt still needs a value.
    expectOneErrorLine(await cli(['generate', llama, '--prompt', 'hi', '--stop', '']), 'option --stop needs a value');
  });
});

describe('webq logits', () => {
  it('--json: one logit per vocabulary entry, equal to LlmModel.logits; otherwise the top tokens', async () => {
    const r = await cli(['logits', llama, '--prompt', PROMPT, '--json', ...F32]);
    expect(r.err).toBe('');
    const j = JSON.parse(r.out) as { ids: number[]; logits: number[] };
    expect(Object.keys(j)).toEqual(['ids', 'logits']);
    const want = await ref.logits(PROMPT);
    expect(j.ids).toEqual(want.ids);
    expect(j.logits).toHaveLength(ref.config.vocabSize);
    expect(Math.max(...j.logits.map((x, i) => Math.abs(x - want.logits[i])))).toBeLessThanOrEqual(1e-5);

    const t = await cli(['logits', llama, '--prompt', PROMPT, ...F32]);
    const rows = t.out.trimEnd().split('\n').slice(2);
    expect(rows).toHaveLength(10);
    const best = j.logits.indexOf(Math.max(...j.logits));
    expect(rows[0]).toMatch(new RegExp(`^\\s+1\\s+${best}\\s+-?\\d+\\.\\d{4}\\s+\\d\\.\\d{4}\\s+".*"$`));
    expect(t.out.split('\n')[0]).toMatch(/: f32 weights, float activations; \d+ prompt tokens, \d+ logits at the last position$/);
  });

  it('--activations int8 runs q4 with int8 activation blocks: what LlmModel gives with that option, and says so', async () => {
    const q = await LlmModel.load(llama, { dtype: 'q4', activations: 'int8', context: ctx });
    try {
      const want = (await q.logits(PROMPT)).logits;
      const j = JSON.parse((await cli(['logits', llama, '--prompt', PROMPT, '--json', '--dtype', 'q4', '--activations', 'int8'])).out) as { logits: number[] };
      expect(Math.max(...j.logits.map((x, i) => Math.abs(x - want[i])))).toBe(0);
      const t = await cli(['logits', llama, '--prompt', PROMPT, '--dtype', 'q4', '--activations=int8']);
      expect(t.out.split('\n')[0]).toMatch(/: q4 weights, int8 activations; /);
      const f = await cli(['logits', llama, '--prompt', PROMPT, '--dtype', 'q4']);
      expect(f.out.split('\n')[0]).toMatch(/: q4 weights, float activations; /);
    } finally {
      q.dispose();
    }
  });
});

describe('webq chat', () => {
  const stats = (err: string) => err.split('\n').filter((l) => l.startsWith('prompt '));

  it('streams a reply per line; the second turn reuses the cached prefix', async () => {
    const r = await cli(['chat', llama, '--verbose', '--max-tokens', '8', ...F32], { input: Readable.from(['hello there\n', 'and again\n']) });
    expect(r.code).toBe(0);
    const first = await ref.chat.completions.create({ messages: [{ role: 'user', content: 'hello there' }], max_tokens: 8 });
    const second = await ref.chat.completions.create({
      messages: [{ role: 'user', content: 'hello there' }, first.choices[0].message, { role: 'user', content: 'and again' }],
      max_tokens: 8,
    });
    expect(r.out).toBe(`${first.choices[0].message.content}\n${second.choices[0].message.content}\n`);
    const [s1, s2] = stats(r.err);
    expect(s1).not.toContain('cached');
    expect(Number(/\((\d+) cached\)/.exec(s2)?.[1])).toBeGreaterThan(first.usage.prompt_tokens - 2);
  });

  it('an interrupt stops a reply, the next turn still works, and one at the prompt ends the chat', async () => {
    const input = new PassThrough();
    let session: ChatSession | undefined;
    let stopped = false;
    const r = { code: 0, out: '', err: '' };
    const io: ChatIO = {
      gpuContext: ctx,
      input,
      onChatSession: (s) => void (session = s),
      stdout: (t) => {
        r.out += t;
        if (!stopped && t.trim()) {
          stopped = true;
          session!.interrupt(); // Ctrl-C while the first reply streams
        }
      },
      stderr: (t) => {
        r.err += t;
        if (t.startsWith('prompt ') && !t.includes('finish stopped')) session!.interrupt(); // Ctrl-C at the prompt after the second reply
      },
    };
    input.write('tell me a long story\nshort one\n'); // the input stays open: only the interrupt ends it
    const guard = setTimeout(() => input.end(), 60_000); // so a failure here cannot hang the run
    r.code = await main(['chat', llama, '--verbose', '--max-tokens', '200', ...F32], io);
    clearTimeout(guard);
    expect(r.code).toBe(0);
    // --verbose: the stopped reply's stats (as far as it went), then the second reply's.
    const m = /^\[reply stopped\]\nprompt (\d+) tokens, generated (\d+) tokens, prefill [\d.]+ tokens\/s, decode [\d.]+ tokens\/s, finish stopped\nprompt \d+ tokens \(\d+ cached\), generated \d+ tokens/.exec(r.err);
    expect(m, r.err).not.toBeNull();
    const partial = r.out.split('\n')[0];
    const n = Number(m![2]);
    expect(n).toBeGreaterThan(0);
    expect(n).toBeLessThan(200);
    // The count is of the tokens whose text was shown: the greedy reply's first n.
    const prompt = ref.encode(ref.renderChat([{ role: 'user', content: 'tell me a long story' }]), { addSpecialTokens: false });
    expect(Number(m![1])).toBe(prompt.length);
    const full = await ref.generate(prompt, { maxTokens: 200, temperature: 0 });
    expect(ref.tokenizer.decode(full.tokens.slice(0, n), { skipSpecialTokens: true }).startsWith(partial)).toBe(true);
    expect(stats(r.err)).toHaveLength(2);
    expect(r.out.split('\n')).toHaveLength(3); // two replies, each ended by a newline
  });
});

describe('webq quantize (LLMs)', () => {
  const sizeOf = async (dir: string) => (await stat(join(dir, 'model.safetensors'))).size;

  for (const dtype of ['q4', 'q8'] as const) {
    it(`${dtype}: the written model loads with no options and generates what loading the float one at ${dtype} does`, async () => {
      const out = join(tmp.dir, `llama-${dtype}`);
      const r = await cli(['quantize', llama, '--dtype', dtype, '--out', out]);
      expect(r.err).toBe('');
      expect(r.out).toContain(`llama, 15 linear weights as ${dtype} (group 32, ${dtype === 'q8' ? 'symmetric' : 'asymmetric'})`);
      expect((await readdir(out)).sort()).toEqual(['chat_template.jinja', 'config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
      expect(await sizeOf(out)).toBeLessThan(await sizeOf(llama));
      const st = await SafetensorsFile.open(join(out, 'model.safetensors'));
      expect(st.has('lm_head.weight.qvalues') && st.has('model.layers.1.mlp.down_proj.weight.qscales') && st.has('model.embed_tokens.weight')).toBe(true);
      expect(st.has('model.layers.0.self_attn.q_proj.weight')).toBe(false);
      await st.close();

      const pre = await LlmModel.load(out, { context: ctx });
      const onLoad = await LlmModel.load(llama, { dtype, context: ctx });
      try {
        expect(pre.dtype).toBe(dtype);
        const o = { maxTokens: 12, temperature: 0, ignoreEos: true };
        expect((await pre.generate(PROMPT, o)).tokens).toEqual((await onLoad.generate(PROMPT, o)).tokens);
        expect(pre.weightBytes).toBe(onLoad.weightBytes);
      } finally {
        pre.dispose();
        onLoad.dispose();
      }
    });
  }

  it('stores a tied LM head once, as the int8 embedding table', async () => {
    const tied = (await writeTinyLlama(join(tmp.dir, 'tied'), { tied: true, layers: 1, seed: 3 })).dir;
    const out = join(tmp.dir, 'tied-q4');
    expect((await cli(['quantize', tied, '--dtype', 'q4', '--out', out])).out).toContain('7 linear weights as q4');
    const st = await SafetensorsFile.open(join(out, 'model.safetensors'));
    expect(st.has('model.embed_tokens.weight.qvalues')).toBe(true);
    expect(JSON.parse(st.metadata['webq.spec.model.embed_tokens.weight'])).toEqual({ bits: 8, group: 32, symmetric: true });
    expect(st.tensors.some((t) => t.name.startsWith('lm_head'))).toBe(false);
    await st.close();
  });
});

describe('bad input: one "webq:" line, exit 1', () => {
  it('rejects bad options before loading anything', async () => {
    const gen = (...a: string[]) => cli(['generate', llama, '--prompt', PROMPT, ...a]);
    expectOneErrorLine(await gen('--max-tokens', '0'), '--max-tokens must be a positive integer, got "0"');
    expectOneErrorLine(await gen('--max-tokens', '-1'), '--max-tokens must be a positive integer, got "-1"');
    expectOneErrorLine(await gen('--temperature', '-0.5'), '--temperature must be a number >= 0');
    expectOneErrorLine(await gen('--top-p', '1.5'), '--top-p must be in (0, 1]');
    expectOneErrorLine(await gen('--dtype', 'q3'), '--dtype "q3"', 'f32, f16, q8, q4, w8a8, w4a8');
    expectOneErrorLine(await gen('--kv', 'f8'), '--kv "f8"', 'f16, f32, int8');
    expectOneErrorLine(await gen('--activations', 'int4'), '--activations "int4": expected float (weight-only) or int8');
    expectOneErrorLine(await cli(['chat', llama, '--activations', 'fp16']), '--activations "fp16"');
    expectOneErrorLine(await gen('--dtype', 'w8a8', '--activations', 'float'), "dtype w8a8", "runs int8 activations by definition, not 'float'");
    expectOneErrorLine(await cli(['generate', llama]), '--prompt TEXT is required');
    expectOneErrorLine(await cli(['generate', '--prompt', 'x']), 'expected a model');
    expectOneErrorLine(await cli(['logits', llama, '--prompt', 'x', '--bogus']), '"--bogus"');
  });

  it('a prompt past the context, an unknown architecture, no weights file, chat with no template', async () => {
    expectOneErrorLine(await cli(['generate', llama, '--prompt', 'word '.repeat(40), '--context', '16', ...F32]), 'context of 16');
    const gpt2 = (await writeTinyLlama(join(tmp.dir, 'gpt2'), { extraConfig: { model_type: 'gpt2' } })).dir;
    expectOneErrorLine(await cli(['generate', gpt2, '--prompt', 'x']), 'gpt2', 'llama, mistral, qwen2, qwen3');
    expectOneErrorLine(await cli(['quantize', gpt2, '--dtype', 'q4', '--out', join(tmp.dir, 'gpt2-q4')]), 'gpt2', 'llama, mistral, qwen2, qwen3');
    const bare = (await writeTinyLlama(join(tmp.dir, 'no-weights'), { tokenizer: 'llama2', vocab: 32000, seed: 2 })).dir;
    await rm(join(bare, 'model.safetensors'));
    expectOneErrorLine(await cli(['generate', bare, '--prompt', 'x']), 'model.safetensors');
    const plain = (await writeTinyLlama(join(tmp.dir, 'plain'), { tokenizer: 'llama2', tied: true, layers: 1, seed: 4 })).dir;
    const c = await cli(['chat', plain, ...F32], { input: Readable.from(['hello\n']) });
    expectOneErrorLine(c, 'no chat template', 'webq generate');
  });

  it('lists the new commands in --help', async () => {
    const r = await cli(['--help']);
    for (const name of ['generate', 'chat', 'logits', 'quantize']) expect(r.out).toMatch(new RegExp(`\\n  ${name}\\s+\\S`));
    expect((await cli(['generate', '--help'])).out).toContain('0 = greedy (default 0');
  });
});
