// A TypeScript user's build against the packed package, on the TypeScript versions a user may
// have: the newest 5.x, 6.x and `latest` (7.x, the native compiler, at the time of writing),
// installed from the registry once per day into node_modules/.cache. A small consumer project
// (BertModel, LlmModel, the chat-completions types, GpuContext, the webq/browser entry) with webq
// unpacked from `npm pack` into its node_modules and webq's dependencies beside it is type-checked
// by `tsc --noEmit` under `module: nodenext` and under `moduleResolution: bundler`, with lib DOM
// (a browser project) and without it (a Node project: @types/node instead), never with
// skipLibCheck, so every .d.ts the consumer's build reaches must compile. TypeScript's lib.dom has
// WebGPU declarations from 6.0 on, which collide with @webgpu/types: webq's declarations must
// declare no WebGPU global of their own (src/gpu/webgpu-types.ts). A second file names WebGPU
// types and calls the device webq hands out, with the WebGPU declarations such a user has: lib DOM
// on TypeScript >= 6, @webgpu/types on 5. And `deno check` of a Deno script importing 'webq'.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/browser.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const run = promisify(execFile);
const tmp = useTempDir('webq-package-types-');
let app: string;

/** Installed under these aliases, side by side; `major` is checked against what was installed. */
const TYPESCRIPTS: Record<string, { spec: string; major: number | null }> = {
  ts5: { spec: 'typescript@5', major: 5 },
  ts6: { spec: 'typescript@6', major: 6 },
  tslatest: { spec: 'typescript@latest', major: null },
};
const TS_CACHE = join(ROOT, 'node_modules', '.cache', 'webq-package-types');
const CACHE_DAYS = 1;

const API_TS = `import { BertModel, GpuContext, LlmModel, cosineSimilarity, type ChatCompletion, type ChatCompletionChunk, type ChatMessage, type GenerationResult } from 'webq';

const ctx: GpuContext = await GpuContext.create();
const bert = await BertModel.load('sentence-transformers/all-MiniLM-L6-v2', { dtype: 'q8', context: ctx });
const [a, b] = await bert.embed(['first text', 'second text'], { normalize: true });
const similarity: number = cosineSimilarity(a, b);

const llm = await LlmModel.load('HuggingFaceTB/SmolLM2-135M-Instruct', { dtype: 'q4', context: ctx, hubUrl: 'https://hf-mirror.example' });
const result: GenerationResult = await llm.generate('Once upon a time', { maxTokens: 8, temperature: 0 });
for await (const text of llm.generate('Once upon a time', { maxTokens: 8, stream: true })) void text;
const messages: ChatMessage[] = [{ role: 'user', content: 'Hello' }];
const done: ChatCompletion = await llm.chat.completions.create({ messages, max_tokens: 8 });
const reply: string | null = done.choices[0].message.content;
for await (const chunk of llm.chat.completions.create({ messages, stream: true })) {
  const c: ChatCompletionChunk = chunk;
  void c.choices[0]?.delta.content;
}
void [similarity, result.tokens, reply, ctx.dev.gpu];
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

// With WebGPU declarations in the consumer's build, webq's device and tensors are those types.
const GPU_TS = `import { GpuContext } from 'webq';

const ctx = await GpuContext.create();
const device: GPUDevice = ctx.dev.gpu;
const buffer: GPUBuffer = device.createBuffer({ size: 16, usage: 0x80 /* STORAGE */ });
const t = ctx.empty([4], 'f32');
const same: GPUBuffer = t.buffer;
device.queue.writeBuffer(t.buffer, 0, new Float32Array(4));
void [buffer, same];
`;

// Deno type-checks with its own lib, which has WebGPU: the device webq hands out is Deno's GPUDevice.
const DENO_TS = `import { GpuContext, LlmModel, type GenerationResult } from 'webq';

const ctx = await GpuContext.create();
const device: GPUDevice = ctx.dev.gpu;
const buffer: GPUBuffer = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE });
const llm = await LlmModel.load('HuggingFaceTB/SmolLM2-135M-Instruct', { dtype: 'q4', context: ctx });
const r: GenerationResult = await llm.generate('Hi', { maxTokens: 4 });
void [buffer, r.tokens];
`;

const RESOLUTIONS: Record<string, Record<string, unknown>> = {
  nodenext: { module: 'nodenext', moduleResolution: 'nodenext' },
  bundler: { module: 'esnext', moduleResolution: 'bundler' },
};
const LIBS: Record<string, Record<string, unknown>> = {
  dom: { lib: ['ES2022', 'DOM', 'DOM.Iterable'], types: [] },
  node: { lib: ['ES2022'], types: ['node'] },
};

/** npm's install of the TypeScripts into TS_CACHE, reused for CACHE_DAYS (`latest` moves). */
async function installTypeScripts(): Promise<void> {
  const stamp = join(TS_CACHE, 'installed.json');
  const want = JSON.stringify(Object.fromEntries(Object.entries(TYPESCRIPTS).map(([k, v]) => [k, v.spec])));
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want && Date.now() - statSync(stamp).mtimeMs < CACHE_DAYS * 86_400_000) return;
  await rm(TS_CACHE, { recursive: true, force: true });
  await mkdir(TS_CACHE, { recursive: true });
  await writeFile(join(TS_CACHE, 'package.json'), JSON.stringify({ name: 'webq-typescripts', private: true }));
  const specs = Object.entries(TYPESCRIPTS).map(([alias, { spec }]) => `${alias}@npm:${spec}`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  try {
    await run(npm, ['install', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock', ...specs], { cwd: TS_CACHE, maxBuffer: 16 << 20 });
  } catch (e) {
    throw new Error(`installing ${specs.join(', ')} from the registry into ${TS_CACHE} failed (this test needs the network once a day): ${(e as { stderr?: string }).stderr ?? String(e)}`);
  }
  await writeFile(stamp, want);
}

function tsc(alias: string): string {
  return join(TS_CACHE, 'node_modules', alias, 'bin', 'tsc');
}

async function compile(alias: string, project: string): Promise<{ code: number; out: string }> {
  return run(process.execPath, [tsc(alias), '-p', project], { cwd: app, maxBuffer: 16 << 20 }).then(
    () => ({ code: 0, out: '' }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: `${e.stdout}${e.stderr}` }),
  );
}

async function writeProject(name: string, files: string[], options: Record<string, unknown>): Promise<string> {
  const compilerOptions = { target: 'ES2022', strict: true, noEmit: true, ...options };
  await writeFile(join(app, `tsconfig.${name}.json`), JSON.stringify({ compilerOptions, files }, null, 2));
  return `tsconfig.${name}.json`;
}

beforeAll(async () => {
  const [{ stdout }] = await Promise.all([
    run(process.execPath, [join(ROOT, 'scripts/pack.mjs'), join(tmp.dir, 'out')], { cwd: ROOT, maxBuffer: 64 << 20 }),
    installTypeScripts(),
  ]);
  const tarball = stdout.trim();
  app = join(tmp.dir, 'app');
  const webq = join(app, 'node_modules', 'webq');
  await mkdir(webq, { recursive: true });
  await run('tar', ['-xzf', tarball, '-C', webq, '--strip-components=1']);
  // webq's dependencies, where an install would put them, and the consumer's own type packages:
  // linked from this checkout (no network).
  const deps = Object.keys((JSON.parse(readFileSync(join(webq, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies);
  for (const dep of new Set([...deps, '@types/node', '@webgpu/types'])) {
    await mkdir(dirname(join(app, 'node_modules', dep)), { recursive: true });
    await symlink(join(ROOT, 'node_modules', dep), join(app, 'node_modules', dep), 'dir');
  }
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { webq: `file:${tarball}` } }, null, 2));
  await writeFile(join(app, 'api.ts'), API_TS);
  await writeFile(join(app, 'browser.ts'), BROWSER_TS);
  await writeFile(join(app, 'gpu.ts'), GPU_TS);
  await writeFile(join(app, 'deno.ts'), DENO_TS);
}, 300_000);

it('deno check: a Deno script on the packed package (npm install layout) type-checks', async () => {
  const deno = join(ROOT, 'node_modules', '.bin', 'deno');
  const r = await run(deno, ['check', '--quiet', 'deno.ts'], { cwd: app, env: { ...process.env, NO_COLOR: '1' }, maxBuffer: 16 << 20 }).then(
    () => ({ code: 0, out: '' }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: `${e.stdout}${e.stderr}` }),
  );
  expect(r.out).toBe('');
  expect(r.code).toBe(0);
}, 120_000);

describe("a consumer's tsc against the packed package", () => {
  for (const [alias, { major }] of Object.entries(TYPESCRIPTS)) {
    describe(alias, () => {
      it('is the TypeScript it names', async () => {
        const { stdout } = await run(process.execPath, [tsc(alias), '--version']);
        const got = Number(/Version (\d+)\./.exec(stdout)?.[1]);
        if (major !== null) expect(got).toBe(major);
        else expect(got).toBeGreaterThanOrEqual(7);
      });

      // lib DOM brings WebGPU's types from TypeScript 6 on: the DOM builds also name them (gpu.ts).
      const domHasWebGpu = major !== 5;
      for (const [res, resOptions] of Object.entries(RESOLUTIONS)) {
        for (const [lib, libOptions] of Object.entries(LIBS)) {
          const withGpu = lib === 'dom' && domHasWebGpu;
          it(`compiles under ${res} with ${lib === 'dom' ? 'lib DOM' : '@types/node and no lib DOM'}${withGpu ? ', naming its WebGPU types,' : ''} without skipLibCheck`, async () => {
            const files = withGpu ? ['api.ts', 'browser.ts', 'gpu.ts'] : ['api.ts', 'browser.ts'];
            const r = await compile(alias, await writeProject(`${alias}.${res}.${lib}`, files, { ...resOptions, ...libOptions }));
            expect(r.out).toBe('');
            expect(r.code).toBe(0);
          }, 60_000);
        }
      }

      if (!domHasWebGpu) {
        it('gives WebGPU\'s own types to a consumer with @webgpu/types', async () => {
          const project = await writeProject(`${alias}.webgpu`, ['gpu.ts'], { ...RESOLUTIONS.nodenext, lib: ['ES2022', 'DOM'], types: ['@webgpu/types'] });
          const r = await compile(alias, project);
          expect(r.out).toBe('');
          expect(r.code).toBe(0);
        }, 60_000);
      }
    });
  }
});
