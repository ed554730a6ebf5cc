// Several models on one device (one shared GpuContext) with their calls interleaved: a BERT and a
// LLaMA, and two different LLaMAs, called at once through Promise.all. The context's pools,
// uniforms and queue are shared, so a model that wrote into another's buffers, or reused a
// bind group or uniform of another's shapes, would change an output. Each output must equal
// exactly (token for token, bit for bit) what the same model gives run alone on its own context.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { GREEDY, RUNTIME_PROMPT, SEEDED, TINY_CHAT_LLAMA } from '../helpers/llm-fixture.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-concurrency-');
const TEXTS = Array.from({ length: 12 }, (_, i) => `text ${i}: ${'the quick brown fox jumps '.repeat(1 + (i % 3))}`);
const PROMPTS = [RUNTIME_PROMPT, 'The cat sat', 'In a galaxy far away'];

let llamaA: string;
let llamaB: string;
let bertDir: string;

beforeAll(async () => {
  llamaA = (await writeTinyLlama(join(tmp.dir, 'llama-a'), TINY_CHAT_LLAMA)).dir;
  // Another model: other weights, another width and depth, so its buffers and pipelines differ.
  llamaB = (await writeTinyLlama(join(tmp.dir, 'llama-b'), { ...TINY_CHAT_LLAMA, hidden: 96, layers: 3, seed: 77 })).dir;
  bertDir = (await writeTinyBert(join(tmp.dir, 'bert'), { layers: 2, maxPositions: 64 })).dir;
}, 120_000);

const LLM_OPTS = { dtype: 'q4', kv: 'f32' } as const;

/** Each prompt's greedy and seeded tokens, one call at a time. */
async function llmAlone(dir: string): Promise<number[][]> {
  const m = await LlmModel.load(dir, LLM_OPTS);
  try {
    const out: number[][] = [];
    for (const p of PROMPTS) {
      out.push((await m.generate(p, GREEDY)).tokens);
      out.push((await m.generate(p, SEEDED)).tokens);
    }
    return out;
  } finally {
    m.dispose();
  }
}

/** The same calls as llmAlone, all started at once. */
function llmCalls(m: LlmModel): Promise<number[]>[] {
  return PROMPTS.flatMap((p) => [m.generate(p, GREEDY).then((r) => r.tokens), m.generate(p, SEEDED).then((r) => r.tokens)]);
}

/** Embeddings as plain arrays: toEqual then compares every float exactly. */
const plain = (v: Float32Array[]) => v.map((row) => Array.from(row));

async function bertAlone(): Promise<number[][][]> {
  const m = await BertModel.load(bertDir, { dtype: 'q8' });
  try {
    return [plain(await m.embed(TEXTS)), plain(await m.embed(TEXTS.slice(0, 5))), plain(await m.embed(TEXTS.slice(7)))];
  } finally {
    m.dispose();
  }
}

function bertCalls(m: BertModel): Promise<number[][]>[] {
  return [m.embed(TEXTS), m.embed(TEXTS.slice(0, 5)), m.embed(TEXTS.slice(7))].map((p) => p.then(plain));
}

describe('models sharing one GpuContext, calls interleaved', () => {
  let ctx: GpuContext;
  let wantA: number[][];
  let wantB: number[][];
  let wantBert: number[][][];

  beforeAll(async () => {
    wantA = await llmAlone(llamaA);
    wantB = await llmAlone(llamaB);
    wantBert = await bertAlone();
    ctx = await GpuContext.create();
  }, 300_000);

  afterAll(() => ctx?.dispose());

  it('a BERT and a LLaMA: embed batches and generations at once give what each gives alone', async () => {
    const llm = await LlmModel.load(llamaA, { ...LLM_OPTS, context: ctx });
    const bert = await BertModel.load(bertDir, { dtype: 'q8', context: ctx });
    try {
      const gen = llmCalls(llm);
      const emb = bertCalls(bert);
      // Interleave: a generation, an embed batch, the next generation, ... all in flight together.
      const all = await Promise.all(gen.flatMap((g, i) => (i < emb.length ? [g, emb[i]] : [g])));
      const gotGen = all.filter((_, i) => !(i % 2 === 1 && (i - 1) / 2 < emb.length)) as number[][];
      const gotEmb = all.filter((_, i) => i % 2 === 1 && (i - 1) / 2 < emb.length) as number[][][];
      expect(gotGen).toEqual(wantA);
      expect(gotEmb).toEqual(wantBert);
      // The other order of starts, and a chat turn among them.
      const [e2, g2, c2] = await Promise.all([bert.embed(TEXTS).then(plain), llm.generate(PROMPTS[1], SEEDED), llm.chat.completions.create({ messages: [{ role: 'user', content: PROMPTS[2] }], ...GREEDY })]);
      expect(e2).toEqual(wantBert[0]);
      expect(g2.tokens).toEqual(wantA[3]);
      expect(typeof c2.choices[0].message.content).toBe('string');
    } finally {
      bert.dispose();
      llm.dispose();
    }
    expect(ctx.stats().ownedBytes).toBeLessThanOrEqual(64); // both disposed: the context's own placeholders at most
  }, 300_000);

  it('two different LLaMAs (and a BERT) at once: each generation equals its model alone', async () => {
    const a = await LlmModel.load(llamaA, { ...LLM_OPTS, context: ctx });
    const b = await LlmModel.load(llamaB, { ...LLM_OPTS, context: ctx });
    const bert = await BertModel.load(bertDir, { dtype: 'q8', context: ctx });
    try {
      const [gotA, gotB, gotBert] = await Promise.all([Promise.all(llmCalls(a)), Promise.all(llmCalls(b)), Promise.all(bertCalls(bert))]);
      expect(gotA).toEqual(wantA);
      expect(gotB).toEqual(wantB);
      expect(gotBert).toEqual(wantBert);
      expect(gotB).not.toEqual(gotA); // two models that really differ
      // Streams of both models read chunk by chunk in alternation.
      const streams = [a.generate(PROMPTS[0], { ...GREEDY, stream: true }), b.generate(PROMPTS[0], { ...GREEDY, stream: true })];
      const its = streams.map((s) => s[Symbol.asyncIterator]());
      const chunks = [0, 0];
      for (const done = [false, false]; !done[0] || !done[1]; ) {
        for (const k of [0, 1]) {
          if (done[k]) continue;
          const r = await its[k].next();
          if (r.done) done[k] = true;
          else chunks[k]++;
        }
      }
      expect(chunks[0]).toBeGreaterThan(1);
      expect((await streams[0].result).tokens).toEqual(wantA[0]);
      expect((await streams[1].result).tokens).toEqual(wantB[0]);
    } finally {
      bert.dispose();
      b.dispose();
      a.dispose();
    }
    expect(ctx.stats().ownedBytes).toBeLessThanOrEqual(64);
  }, 300_000);
});
