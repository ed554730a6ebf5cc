// A TypeScript user's build against the packed package: a small consumer project (BertModel,
// LlmModel, the chat-completions types, GpuContext and a WebGPU type from the declarations)
// with webq unpacked from `npm pack` into its node_modules and webq's dependencies beside it,
// type-checked by `tsc --noEmit` under `module: nodenext` and under `moduleResolution: bundler`,
// with no skipLibCheck (so every .d.ts the consumer's build reaches must compile) and no `types`
// of its own (webq's declarations must bring the WebGPU types they name).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/browser.ts';
import { useTempDir } from './safetensors-helpers.ts';

const run = promisify(execFile);
const tmp = useTempDir('webq-package-types-');
let app: string;

const MAIN_TS = `import { BertModel, GpuContext, LlmModel, cosineSimilarity, type ChatCompletion, type ChatCompletionChunk, type ChatMessage, type GenerationResult } from 'webq';

const ctx: GpuContext = await GpuContext.create();
const bert = await BertModel.load('sentence-transformers/all-MiniLM-L6-v2', { dtype: 'q8', context: ctx });
const [a, b] = await bert.embed(['first text', 'second text'], { normalize: true });
const similarity: number = cosineSimilarity(a, b);

const llm = await LlmModel.load('HuggingFaceTB/SmolLM2-135M-Instruct', { dtype: 'q4', context: ctx });
const result: GenerationResult = await llm.generate('Once upon a time', { maxTokens: 8, temperature: 0 });
for await (const text of llm.generate('Once upon a time', { maxTokens: 8, stream: true })) void text;
const messages: ChatMessage[] = [{ role: 'user', content: 'Hello' }];
const done: ChatCompletion = await llm.chat.completions.create({ messages, max_tokens: 8 });
const reply: string | null = done.choices[0].message.content;
for await (const chunk of llm.chat.completions.create({ messages, stream: true })) {
  const c: ChatCompletionChunk = chunk;
  void c.choices[0]?.delta.content;
}

const device: GPUDevice = ctx.dev.gpu;
const buffer: GPUBuffer = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
void [similarity, result.tokens, reply, buffer];
bert.dispose();
llm.dispose();
ctx.dispose();
`;

// The explicit browser entry has the same declarations.
const BROWSER_TS = `import { BertModel, cosineSimilarity } from 'webq/browser';

export async function similarity(texts: [string, string]): Promise<number> {
  const model = await BertModel.load('sentence-transformers/all-MiniLM-L6-v2');
  const [a, b] = await model.embed(texts, { normalize: true });
  model.dispose();
  return cosineSimilarity(a, b);
}
`;

const CONFIGS: Record<string, Record<string, unknown>> = {
  nodenext: { module: 'nodenext', moduleResolution: 'nodenext' },
  bundler: { module: 'esnext', moduleResolution: 'bundler' },
};

beforeAll(async () => {
  const { stdout } = await run(process.execPath, [join(ROOT, 'scripts/pack.mjs'), join(tmp.dir, 'out')], { cwd: ROOT, maxBuffer: 64 << 20 });
  const tarball = stdout.trim();
  app = join(tmp.dir, 'app');
  const webq = join(app, 'node_modules', 'webq');
  await mkdir(webq, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', webq, '--strip-components=1']);
  // webq's dependencies, where an install would put them: linked from this checkout (no network).
  const deps = Object.keys((JSON.parse(readFileSync(join(webq, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
  for (const dep of deps) {
    await mkdir(dirname(join(app, 'node_modules', dep)), { recursive: true });
    await symlink(join(ROOT, 'node_modules', dep), join(app, 'node_modules', dep), 'dir');
  }
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { webq: `file:${tarball}` } }, null, 2));
  await writeFile(join(app, 'main.ts'), MAIN_TS);
  await writeFile(join(app, 'browser.ts'), BROWSER_TS);
  for (const [name, options] of Object.entries(CONFIGS)) {
    const compilerOptions = { target: 'ES2022', strict: true, noEmit: true, types: [], ...options };
    await writeFile(join(app, `tsconfig.${name}.json`), JSON.stringify({ compilerOptions, files: ['main.ts', 'browser.ts'] }, null, 2));
  }
}, 180_000);

describe("a consumer's tsc against the packed package", () => {
  for (const name of Object.keys(CONFIGS)) {
    it(`compiles under ${name}, without skipLibCheck`, async () => {
      const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
      const r = await run(process.execPath, [tsc, '-p', `tsconfig.${name}.json`], { cwd: app }).then(
        () => ({ code: 0, out: '' }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: `${e.stdout}${e.stderr}` }),
      );
      expect(r.out).toBe('');
      expect(r.code).toBe(0);
    }, 60_000);
  }
});
