/**
 * The soak run behind `npm run bench -- soak` and test/node/soak.test.ts: many calls of varied
 * shapes and options on one device, sampling what the process holds every `every` calls:
 *
 *   generate  LlmModel.generate: prompt lengths, maxTokens, greedy / sampled, stops, readEvery,
 *             streamed or whole, some aborted after their first chunk
 *   embed     BertModel.embed / classify-free batches of 1..32 texts of varied lengths, pooling and
 *             normalization varied
 *   chat      conversations on a small context (truncation 'auto'): they fill it and drop old turns
 *   load      load / dispose cycles of both models, on the shared context and on their own
 *
 * A sample holds the GPU bytes (pooled intermediates, tensors the models own: weights, KV caches,
 * sampler state; uniform buffers), the bind groups and uniforms cached and how many were created
 * since the last sample (churn), the JS heap and the RSS, after a forced garbage collection so the
 * heap is what is live. Each phase's slope is a least-squares line through its samples after the
 * warm-up, in percent of the phase's mean per 1,000 calls. After each dispose() the model's bytes
 * must be gone: a shared context back at its bytes before the load, a model's own context at zero.
 *
 * The shapes cycle through fixed lists (coprime lengths), so the warm-up meets every shape and a
 * flat run has nothing left to create.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { CHATML } from '../../test/helpers/llm-fixture.ts';
import { writeTinyBert, writeTinyLlama } from '../../fixtures/index.ts';

export type Phase = 'generate' | 'embed' | 'chat' | 'load';
export const PHASES: readonly Phase[] = ['generate', 'embed', 'chat', 'load'];

export interface SoakOptions {
  /** Calls per phase. */
  counts: Record<Phase, number>;
  /** Sample every this many calls of a phase. */
  every: number;
  /** Calls of each phase left out of its slope (shapes first met, caches filling). */
  warmup: number;
  /** Where the tiny checkpoints are written. */
  dir: string;
  onSample?: (s: SoakSample) => void;
}

export interface SoakSample {
  phase: Phase;
  /** Calls of this phase so far. */
  calls: number;
  pool_bytes: number;
  owned_bytes: number;
  uniform_bytes: number;
  gpu_bytes: number;
  bind_groups: number;
  uniforms: number;
  /** Created since the previous sample of this phase. */
  bind_groups_created: number;
  uniforms_created: number;
  heap_bytes: number;
  rss_bytes: number;
  /** Wall time of the calls since the previous sample. */
  ms: number;
}

export interface PhaseSummary {
  phase: Phase;
  calls: number;
  /** Percent of the phase's mean per 1,000 calls, from the samples after the warm-up (null: too few). */
  gpu_slope_pct: number | null;
  rss_slope_pct: number | null;
  heap_slope_pct: number | null;
  /** Bind groups and uniforms created after the warm-up. */
  bind_groups_created_after_warmup: number;
  uniforms_created_after_warmup: number;
  ms_per_call: number;
}

export interface SoakReport {
  adapter: string;
  options: { counts: Record<Phase, number>; every: number; warmup: number };
  samples: SoakSample[];
  phases: PhaseSummary[];
  /** load/dispose: cycles checked, and the largest count of bytes left behind by a disposed model. */
  dispose: { checked: number; max_bytes_left: number };
}

/** The collector, exposed at run time (node --expose-gc without the flag on the command line). */
function gcFunction(): () => void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/** Least-squares slope of y over x, as percent of mean(y) per 1,000 x; null under 3 points. */
export function slopePct(xs: readonly number[], ys: readonly number[]): number | null {
  const n = xs.length;
  if (n < 3) return null;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  if (sxx === 0 || my === 0) return 0;
  return ((sxy / sxx) * 1000 * 100) / my;
}

const WORDS = 'the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches in the old town square'.split(' ');
const text = (n: number, k: number) => Array.from({ length: n }, (_, i) => WORDS[(i * 7 + k) % WORDS.length]).join(' ');

/** The i-th generate call's prompt and options: lists of coprime lengths, so every pairing recurs. */
function generateCall(i: number): { prompt: string; opts: Record<string, unknown>; stream: boolean; abort: boolean } {
  const words = [2, 9, 23, 41, 5, 60, 14][i % 7];
  const maxTokens = [1, 4, 16, 32, 8][i % 5];
  const sampled = i % 3 === 1;
  return {
    prompt: text(words, i),
    opts: {
      maxTokens, readEvery: [1, 4, 8, 3][i % 4], ignoreEos: i % 2 === 0, seed: i,
      ...(sampled ? { temperature: 0.8, topK: 40, topP: 0.9, repetitionPenalty: 1.1 } : { temperature: 0 }),
      ...(i % 11 === 5 && { stop: ['the', '\n'] }),
    },
    stream: i % 2 === 1,
    abort: i % 13 === 7,
  };
}

function embedCall(i: number): { texts: string[]; opts: Record<string, unknown> } {
  const batch = [1, 2, 3, 5, 8, 13, 32][i % 7];
  const words = [3, 11, 30, 6, 50][i % 5];
  return {
    texts: Array.from({ length: batch }, (_, k) => text(1 + ((words + k * 3) % 50), i + k)),
    opts: { pooling: i % 2 ? 'mean' : 'cls', normalize: i % 3 === 0 },
  };
}

async function generateOnce(m: LlmModel, i: number): Promise<void> {
  const c = generateCall(i);
  if (!c.stream) return void (await m.generate(c.prompt, c.opts));
  const ac = new AbortController();
  const s = m.generate(c.prompt, { ...c.opts, stream: true, signal: c.abort ? ac.signal : undefined });
  try {
    for await (const _ of s) if (c.abort) ac.abort();
  } catch (e) {
    if (!c.abort) throw e;
  }
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  // Whole sampling windows only: the warm-up ends on a sample.
  const o = { ...options, warmup: Math.ceil(options.warmup / options.every) * options.every };
  const gc = gcFunction();
  await mkdir(o.dir, { recursive: true });
  const llamaDir = (await writeTinyLlama(join(o.dir, 'llama'), { tokenizer: 'llama2', chatTemplate: CHATML, hidden: 64, layers: 2, maxPositions: 256, seed: 31 })).dir;
  const bertDir = (await writeTinyBert(join(o.dir, 'bert'), { maxPositions: 64 })).dir;
  const ctx = await GpuContext.create();
  const samples: SoakSample[] = [];
  const dispose = { checked: 0, max_bytes_left: 0 };
  let llm: LlmModel | null = null;
  let bert: BertModel | null = null;
  let chatModel: LlmModel | null = null;
  try {
    llm = await LlmModel.load(llamaDir, { dtype: 'q4', context: ctx });
    bert = await BertModel.load(bertDir, { dtype: 'q8', context: ctx });
    chatModel = await LlmModel.load(llamaDir, { dtype: 'q4', context: ctx, contextLength: 96 });
    const l = llm;
    const b = bert;
    const cm = chatModel;
    let messages: { role: string; content: string }[] = [];
    const calls: Record<Phase, (i: number) => Promise<void>> = {
      generate: (i) => generateOnce(l, i),
      embed: async (i) => void (await b.embed(embedCall(i).texts, embedCall(i).opts)),
      chat: async (i) => {
        // A conversation of 40 turns, then a new one: each fills the 96-token context and drops old turns.
        if (i % 40 === 0) messages = [{ role: 'system', content: 'You answer briefly.' }];
        messages.push({ role: 'user', content: text(4 + (i % 9), i) });
        const r = await cm.chat.completions.create({ messages: messages as never, max_tokens: 6 + (i % 5), temperature: 0, truncation: 'auto' });
        messages.push({ role: 'assistant', content: r.choices[0].message.content ?? '' });
      },
      load: async (i) => {
        // Even cycles on the shared context (its bytes must come back to where they were), odd ones
        // on the model's own (which dispose() must empty).
        const shared = i % 2 === 0;
        const before = ctx.stats().ownedBytes;
        const m = i % 4 < 2 ? await LlmModel.load(llamaDir, { dtype: 'q4', ...(shared && { context: ctx }) }) : await BertModel.load(bertDir, { dtype: 'q8', ...(shared && { context: ctx }) });
        if (m instanceof LlmModel) await m.generate('hello there', { maxTokens: 2, temperature: 0 });
        else await m.embed(['hello there']);
        const own = m.ctx;
        m.dispose();
        const held = shared ? ctx.stats().ownedBytes - before : own.bytes;
        dispose.checked++;
        dispose.max_bytes_left = Math.max(dispose.max_bytes_left, held);
      },
    };
    for (const phase of PHASES) {
      const n = o.counts[phase];
      let last = ctx.cacheCounters();
      let t = performance.now();
      for (let i = 0; i < n; i++) {
        await calls[phase](i);
        if ((i + 1) % o.every === 0 || i === n - 1) {
          gc();
          const s = ctx.stats();
          const c = ctx.cacheCounters();
          const mem = process.memoryUsage();
          const sample: SoakSample = {
            phase, calls: i + 1, pool_bytes: s.pooledBytes, owned_bytes: s.ownedBytes, uniform_bytes: s.uniformBytes, gpu_bytes: ctx.bytes,
            bind_groups: s.bindGroups, uniforms: s.uniformBuffers, bind_groups_created: c.bindGroupsCreated - last.bindGroupsCreated,
            uniforms_created: c.uniformsCreated - last.uniformsCreated, heap_bytes: mem.heapUsed, rss_bytes: mem.rss, ms: performance.now() - t,
          };
          samples.push(sample);
          o.onSample?.(sample);
          last = c;
          t = performance.now();
        }
      }
    }
  } finally {
    llm?.dispose();
    bert?.dispose();
    chatModel?.dispose();
  }
  const adapter = ctx.caps.adapter;
  ctx.dispose();
  return { adapter, options: { counts: o.counts, every: o.every, warmup: o.warmup }, samples, phases: summarize(samples, o.warmup), dispose };
}

function summarize(samples: readonly SoakSample[], warmup: number): PhaseSummary[] {
  return PHASES.filter((p) => samples.some((s) => s.phase === p)).map((phase) => {
    const all = samples.filter((s) => s.phase === phase);
    const steady = all.filter((s) => s.calls > warmup);
    const xs = steady.map((s) => s.calls);
    const slope = (k: 'gpu_bytes' | 'rss_bytes' | 'heap_bytes') => slopePct(xs, steady.map((s) => s[k]));
    const calls = all.at(-1)!.calls;
    return {
      phase, calls,
      gpu_slope_pct: slope('gpu_bytes'), rss_slope_pct: slope('rss_bytes'), heap_slope_pct: slope('heap_bytes'),
      bind_groups_created_after_warmup: steady.reduce((n, s) => n + s.bind_groups_created, 0),
      uniforms_created_after_warmup: steady.reduce((n, s) => n + s.uniforms_created, 0),
      ms_per_call: all.reduce((n, s) => n + s.ms, 0) / calls,
    };
  });
}
