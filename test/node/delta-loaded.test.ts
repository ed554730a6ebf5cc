// applyDelta on loaded models: a BertModel or LlmModel moves to the version a `webq diff` delta
// makes without a reload. After it, outputs equal a fresh load of the patched folder bit for bit;
// only the groups touching a changed unit were uploaded (the rest are the same GPU objects); calls
// started before finish on the old version; the guard rolls a bad update back; bad deltas change
// nothing; and dispose() leaves no GPU buffer behind.
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { main } from '../../src/cli/main.ts';
import { WeightVersions } from '../../src/delta/loaded-versions.ts';
import { openDelta } from '../../src/delta/format.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import type { GpuObject } from '../../src/models/upload.ts';
import { editCheckpoint } from '../../fixtures/checkpoint-edit.ts';
import { WebqWorker, WorkerBertModel } from '../../src/worker/index.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { writeOutlierBert } from '../helpers/quantize-fixtures.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-delta-loaded-');
const TEXTS = ['the cat sat on the mat', 'hello world', 'a longer sentence about the weather and the sea'];

async function cli(...argv: string[]): Promise<void> {
  let err = '';
  const code = await main(argv, { stdout: () => undefined, stderr: (t) => void (err += t) });
  expect(err).toBe('');
  expect(code).toBe(0);
}

/** The GPU objects a model's current weights hold, by key (a look inside, for the reuse checks). */
function objectsOf(m: BertModel | LlmModel): ReadonlyMap<string, GpuObject> {
  return (m as unknown as { weights: { current: { objects: ReadonlyMap<string, GpuObject> } } }).weights.current.objects;
}

/** Buffers `ctx` keeps for itself once a model has run (placeholders): what a disposed model leaves. */
async function ctxBuffers(ctx: GpuContext, load: () => Promise<BertModel | LlmModel>): Promise<number> {
  const m = await load();
  if (m instanceof BertModel) await m.embed(TEXTS);
  else await m.generate('hello', { maxTokens: 2, temperature: 0 });
  m.dispose();
  return ctx.stats().ownedBuffers;
}

async function rejects(p: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const e = await p.then(() => null, (x: unknown) => x as { code?: string; message: string });
  expect(e, 'expected a rejection').not.toBeNull();
  expect(e!.message).toMatch(message);
  expect(e!.code).toBe(code);
}

let ctx: GpuContext;
beforeAll(async () => {
  ctx = await GpuContext.create();
});
afterAll(() => ctx?.dispose());

describe('WeightVersions', () => {
  it('frees an object when the last live version holding it goes, after that version\'s last user', () => {
    const freed: string[] = [];
    const obj = (n: string): GpuObject => ({ dispose: () => void freed.push(n) });
    const [a, b, b2, c] = [obj('a'), obj('b'), obj('b2'), obj('c')];
    const v = new WeightVersions({ objects: new Map([['a', a], ['b', b]]) });
    const call = v.use();
    v.replace({ objects: new Map([['a', a], ['b', b2]]) });
    expect(freed).toEqual([]); // v1 still has a user
    call.release();
    expect(freed).toEqual(['b']);
    const rejected = { objects: new Map([['a', a], ['c', c]]) };
    v.discard(rejected);
    expect(freed).toEqual(['b', 'c']);
    v.dispose();
    expect(freed.sort()).toEqual(['a', 'b', 'b2', 'c']);
  });
});

describe('BertModel.applyDelta', () => {
  let v1: string, q1: string, p12: string, pBig: string;
  let d12: string, dBig: string, dOther: string, dConfig: string, dFlip: string;
  // Layer 1's key projection (one of three stacked rows: q|k|v) and its FFN input.
  const CHANGED = ['encoder.layer.1.attention.self.key.weight', 'encoder.layer.1.intermediate.dense.weight'];

  beforeAll(async () => {
    v1 = (await writeOutlierBert(join(tmp.dir, 'v1'), { hidden: 64, heads: 2, intermediate: 128, layers: 2, seed: 3 })).dir;
    const v2 = await editCheckpoint(v1, join(tmp.dir, 'v2'), { nudge: /^encoder\.layer\.1\.(attention\.self\.key|intermediate\.dense)\.weight$/ });
    const vBig = await editCheckpoint(v1, join(tmp.dir, 'vbig'), { nudge: /^encoder\.layer\.\d\.(attention|intermediate|output)\..*weight$/, by: 2, seed: 5 });
    const v3 = await editCheckpoint(v2, join(tmp.dir, 'v3'), { nudge: /^encoder\.layer\.0\.output\.dense\.weight$/ });
    const vConfig = await editCheckpoint(v1, join(tmp.dir, 'vconfig'), { config: (c) => void (c.layer_norm_eps = 1e-5) });
    q1 = join(tmp.dir, 'q1');
    await cli('quantize', v1, '--dtype', 'q4', '--out', q1);
    d12 = join(tmp.dir, 'd12.safetensors');
    dBig = join(tmp.dir, 'dbig.safetensors');
    dOther = join(tmp.dir, 'd23.safetensors');
    dConfig = join(tmp.dir, 'dconfig.safetensors');
    await cli('diff', q1, v2, '--out', d12);
    await cli('diff', q1, vBig, '--out', dBig);
    await cli('diff', q1, vConfig, '--out', dConfig);
    p12 = join(tmp.dir, 'p12');
    pBig = join(tmp.dir, 'pbig');
    await cli('patch', q1, d12, '--out', p12);
    await cli('patch', q1, dBig, '--out', pBig);
    await cli('diff', p12, v3, '--out', dOther);
    const bytes = Buffer.from(await readFile(d12));
    bytes[bytes.length - 10] ^= 0x40;
    dFlip = join(tmp.dir, 'flip.safetensors');
    await writeFile(dFlip, bytes);
  }, 180_000);

  it('gives the embeddings of a fresh load of the patched folder, bit for bit, uploading only the changed groups', async () => {
    const m = await BertModel.load(q1, { context: ctx });
    const fresh = await BertModel.load(p12, { context: ctx });
    try {
      const old = await m.embed(TEXTS);
      const before = new Map(objectsOf(m));
      const v0 = m.version;
      const r = await m.applyDelta(d12);
      expect(r.from).toBe(v0);
      expect(r.to).toBe(fresh.version);
      expect(m.version).toBe(fresh.version);
      expect(r.units.sort()).toEqual(CHANGED);
      expect(await m.embed(TEXTS)).toEqual(await fresh.embed(TEXTS));
      expect(await m.embed(TEXTS)).not.toEqual(old);
      // Only layer 1's q|k|v weight and FFN input weight were uploaded (as BERT's q4 quantizes them:
      // bertQuantDefaults); every other object (their biases included) is the one the first load made.
      const after = objectsOf(m);
      const touched = [...after.keys()].filter((k) => CHANGED.some((u) => k.includes(u)));
      expect(touched.sort()).toEqual([
        `lin(q4,{}):encoder.layer.1.attention.self.query.weight@{"bits":4,"group":64,"symmetric":true}+encoder.layer.1.attention.self.key.weight@{"bits":4,"group":64,"symmetric":true}+encoder.layer.1.attention.self.value.weight@{"bits":4,"group":64,"symmetric":true}`,
        `lin(q4,{}):encoder.layer.1.intermediate.dense.weight@{"bits":4,"group":64,"symmetric":true}`,
      ].sort());
      for (const [k, x] of after) {
        if (touched.includes(k)) expect(x).not.toBe(before.get(k));
        else expect(x).toBe(before.get(k));
      }
      expect(after.size).toBe(before.size);
      expect(r.uploadedBytes).toBe(touched.reduce((s, k) => s + (after.get(k)!.bytes ?? 0), 0));
      expect(r.uploadedBytes).toBeLessThan(m.weightBytes / 5);
      expect(m.weightBytes).toBe(fresh.weightBytes);
      // The model is now at the target: the same delta again is refused.
      await rejects(m.applyDelta(d12), 'DELTA_BASE', /is already version/);
    } finally {
      m.dispose();
      fresh.dispose();
    }
  }, 60_000);

  it('a call started before applyDelta returns the old version\'s result, and the old weights live until it ends; one started after gets the new one\'s', async () => {
    const own = await GpuContext.create();
    const m = await BertModel.load(q1, { context: own });
    const fresh = await BertModel.load(p12, { context: ctx });
    try {
      const old = await m.embed(TEXTS);
      const want = await fresh.embed(TEXTS);
      const steady = own.stats().ownedBuffers;
      // Hold one call at its read-back (its forward already submitted) until after the swap.
      let reached!: () => void, open!: () => void;
      const atGate = new Promise<void>((r) => (reached = r));
      const gate = new Promise<void>((r) => (open = r));
      const readFloat = own.readFloat.bind(own);
      own.readFloat = async (t) => {
        own.readFloat = readFloat;
        reached();
        await gate;
        return readFloat(t);
      };
      const early = m.embed(TEXTS);
      await atGate;
      const held = own.stats().ownedBuffers;
      const update = m.applyDelta(new Uint8Array(await readFile(d12))); // as bytes
      const during = m.embed(TEXTS);
      await update;
      // The new layer-1 weights are up, and the old ones are still there for `early`.
      expect(own.stats().ownedBuffers).toBeGreaterThan(held);
      const late = m.embed(TEXTS);
      open();
      expect(await early).toEqual(old);
      expect([old, want]).toContainEqual(await during); // one version or the other, never a mix
      expect(await late).toEqual(want);
      expect(own.stats().ownedBuffers).toBe(steady); // the old-only weights went with `early`
    } finally {
      m.dispose();
      fresh.dispose();
      own.dispose();
    }
  }, 60_000);

  it('reads unchanged siblings from the model\'s files even when they were patched on disk after the load', async () => {
    const dir = join(tmp.dir, 'inplace');
    await cp(q1, dir, { recursive: true });
    const m = await BertModel.load(dir, { context: ctx });
    const fresh = await BertModel.load(p12, { context: ctx });
    try {
      await cli('patch', dir, d12);
      await m.applyDelta(d12);
      expect(await m.embed(TEXTS)).toEqual(await fresh.embed(TEXTS));
    } finally {
      m.dispose();
      fresh.dispose();
    }
  }, 60_000);

  it('the guard rolls back an update whose embeddings move past maxError, and lets a permissive one through', async () => {
    const own = await GpuContext.create();
    const idle = await ctxBuffers(own, () => BertModel.load(q1, { context: own }));
    const m = await BertModel.load(q1, { context: own });
    const fresh = await BertModel.load(pBig, { context: ctx });
    try {
      const old = await m.embed(TEXTS);
      const v0 = m.version;
      const buffers = own.stats().ownedBuffers;
      await rejects(m.applyDelta(dBig, { check: { texts: TEXTS, maxError: 1e-6 } }), 'DELTA_GUARD', /1 - cosine .* exceeds maxError 0\.000001; rolled back, the model stays on version/);
      expect(m.version).toBe(v0);
      expect(await m.embed(TEXTS)).toEqual(old);
      expect(own.stats().ownedBuffers).toBe(buffers); // the new weights were freed
      const r = await m.applyDelta(dBig, { check: { texts: TEXTS, maxError: 0.5 } });
      expect(r.error).toBeGreaterThan(1e-6);
      expect(r.error).toBeLessThanOrEqual(0.5);
      expect(m.version).toBe(fresh.version);
      expect(await m.embed(TEXTS)).toEqual(await fresh.embed(TEXTS));
      expect(own.stats().ownedBuffers).toBe(buffers); // the old version's replaced weights were freed
      m.dispose();
      expect(own.stats().ownedBuffers).toBe(idle);
    } finally {
      m.dispose();
      fresh.dispose();
      own.dispose();
    }
  }, 60_000);

  it('refuses a damaged delta, one for another version, one that changes config.json and a float model, changing nothing', async () => {
    const own = await GpuContext.create();
    const idle = await ctxBuffers(own, () => BertModel.load(q1, { context: own }));
    const m = await BertModel.load(q1, { context: own });
    try {
      const old = await m.embed(TEXTS);
      const v0 = m.version;
      const buffers = own.stats().ownedBuffers;
      await rejects(m.applyDelta(dFlip), 'DELTA_CORRUPT', /does not match its hash in the manifest \(damaged delta\); the model stays on version/);
      await rejects(m.applyDelta(dOther), 'DELTA_BASE', /applies to version [0-9a-f]{16} \(a bert model\), but .* is version [0-9a-f]{16}: a delta for another model or version/);
      await rejects(m.applyDelta(dConfig), 'DELTA_RELOAD', /changes config\.json, which a loaded model cannot take in place/);
      await rejects(m.applyDelta(join(tmp.dir, 'missing.safetensors')), 'DELTA_MISSING', /cannot read the delta/);
      await rejects(m.applyDelta(d12, { check: { texts: [], maxError: 0.1 } }), 'BAD_OPTION', /check\.texts/);
      expect(m.version).toBe(v0);
      expect(await m.embed(TEXTS)).toEqual(old);
      expect(own.stats().ownedBuffers).toBe(buffers);
      // An opened Delta works as well as a path, and is left open for its owner.
      const d = await openDelta(d12);
      await m.applyDelta(d);
      expect(d.store.tensors.length).toBeGreaterThan(0);
      await d.close();
      m.dispose();
      expect(own.stats().ownedBuffers).toBe(idle);
    } finally {
      m.dispose();
      own.dispose();
    }
    const float = await BertModel.load(v1, { context: ctx, dtype: 'q4' });
    try {
      expect(float.version).toBeNull();
      await rejects(float.applyDelta(d12), 'DELTA_BASE', /has no model version/);
    } finally {
      float.dispose();
    }
  }, 60_000);

  it('WorkerBertModel forwards applyDelta (the delta as bytes) and keeps its version and weight bytes current', async () => {
    const worker = await WebqWorker.start({ worker: await inProcessWorker() });
    const fresh = await BertModel.load(p12, { context: ctx });
    try {
      const m = await WorkerBertModel.load(q1, { worker, warmup: false });
      const v0 = m.version;
      expect(v0).toMatch(/^[0-9a-f]{16}$/);
      const r = await m.applyDelta(new Uint8Array(await readFile(d12)));
      expect(r.from).toBe(v0);
      expect(m.version).toBe(fresh.version);
      expect(r.units.sort()).toEqual(CHANGED);
      expect(await m.embed(TEXTS)).toEqual(await fresh.embed(TEXTS));
      const e = await m.applyDelta(new Uint8Array(await readFile(d12))).catch((x: { code: string; message: string }) => x);
      expect(e).toMatchObject({ code: 'DELTA_BASE', message: expect.stringMatching(/is already version/) });
      await m.dispose();
    } finally {
      fresh.dispose();
      worker.terminate();
    }
  }, 60_000);
});

/**
 * src/worker/worker.ts run in this process behind a Worker-shaped object: messages are cloned both
 * ways as postMessage would, so WorkerBertModel's requests take the real path (no browser needed).
 */
async function inProcessWorker(): Promise<Worker> {
  const g = globalThis as unknown as { addEventListener?: unknown; postMessage?: unknown };
  let toWorker!: (ev: { data: unknown }) => void;
  const page = new EventTarget() as EventTarget & { postMessage(m: unknown): void; terminate(): void };
  page.postMessage = (m) => queueMicrotask(() => toWorker({ data: structuredClone(m) }));
  page.terminate = () => undefined;
  g.addEventListener = (type: string, fn: (ev: { data: unknown }) => void) => void (type === 'message' && (toWorker = fn));
  g.postMessage = (m: unknown) => queueMicrotask(() => page.dispatchEvent(Object.assign(new Event('message'), { data: structuredClone(m) })));
  await import('../../src/worker/worker.ts');
  delete g.addEventListener;
  return page as unknown as Worker;
}

describe('LlmModel.applyDelta', () => {
  let lq1: string, lp: string, dl: string;
  const PROMPT = 'Once upon a time';
  const GREEDY = { maxTokens: 12, temperature: 0, ignoreEos: true } as const;

  beforeAll(async () => {
    const l1 = (await writeTinyLlama(join(tmp.dir, 'l1'), { tokenizer: 'llama2', tied: true, hidden: 64, intermediate: 128, layers: 2, seed: 7 })).dir;
    // Layer 1's k (stacked with q and v) and gate (stacked with up).
    const l2 = await editCheckpoint(l1, join(tmp.dir, 'l2'), { nudge: /layers\.1\.(self_attn\.k_proj|mlp\.gate_proj)\.weight$/, by: 0.5 });
    lq1 = join(tmp.dir, 'lq1');
    await cli('quantize', l1, '--dtype', 'q8', '--out', lq1);
    dl = join(tmp.dir, 'dl.safetensors');
    await cli('diff', lq1, l2, '--out', dl);
    lp = join(tmp.dir, 'lp');
    await cli('patch', lq1, dl, '--out', lp);
  }, 180_000);

  it('gives the logits and greedy tokens of a fresh load of the patched folder; a generation started before finishes on the old version', async () => {
    const own = await GpuContext.create();
    const idle = await ctxBuffers(own, () => LlmModel.load(lq1, { context: own, kv: 'f32' }));
    const m = await LlmModel.load(lq1, { context: own, kv: 'f32' });
    const fresh = await LlmModel.load(lp, { context: ctx, kv: 'f32' });
    try {
      const old = await m.generate(PROMPT, GREEDY);
      const oldLogits = (await m.logits(PROMPT)).logits;
      const before = new Map(objectsOf(m));
      const buffers = own.stats().ownedBuffers;
      const early = m.generate(PROMPT, GREEDY); // queued before the swap: the old version
      const r = await m.applyDelta(dl);
      const late = m.generate(PROMPT, GREEDY);
      expect((await early).tokens).toEqual(old.tokens);
      const want = await fresh.generate(PROMPT, GREEDY);
      expect((await late).tokens).toEqual(want.tokens);
      expect((await m.logits(PROMPT)).logits).toEqual((await fresh.logits(PROMPT)).logits);
      expect((await m.logits(PROMPT)).logits).not.toEqual(oldLogits);
      expect(r.units.sort()).toEqual(['model.layers.1.mlp.gate_proj.weight', 'model.layers.1.self_attn.k_proj.weight']);
      expect(m.version).toBe(fresh.version);
      const after = objectsOf(m);
      const touched = [...after.keys()].filter((k) => after.get(k) !== before.get(k));
      expect(touched).toHaveLength(2); // layer 1's q|k|v and gate|up
      expect(touched.every((k) => k.includes('model.layers.1.'))).toBe(true);
      expect(r.uploadedBytes).toBeLessThan(m.weightBytes / 4);
      expect(own.stats().ownedBuffers).toBe(buffers);
      m.dispose();
      expect(own.stats().ownedBuffers).toBe(idle);
    } finally {
      m.dispose();
      fresh.dispose();
      own.dispose();
    }
  }, 90_000);

  it('drops the cached prefix at the swap: a repeated prompt is run again on the new weights', async () => {
    const m = await LlmModel.load(lq1, { context: ctx, kv: 'f32' });
    try {
      await m.generate(PROMPT, GREEDY);
      await m.applyDelta(dl);
      expect((await m.generate(PROMPT, GREEDY)).usage.cachedTokens).toBe(0);
    } finally {
      m.dispose();
    }
  }, 60_000);

  it('the guard compares next-token distributions (mean KL per token) and rolls back past maxError', async () => {
    const m = await LlmModel.load(lq1, { context: ctx, kv: 'f32' });
    try {
      const old = await m.generate(PROMPT, GREEDY);
      const v0 = m.version;
      await rejects(m.applyDelta(dl, { check: { texts: [PROMPT, 'The weather'], maxError: 1e-9 } }), 'DELTA_GUARD', /mean KL\(old \|\| new\) per token .* exceeds maxError 1e-9/);
      expect(m.version).toBe(v0);
      expect((await m.generate(PROMPT, GREEDY)).tokens).toEqual(old.tokens);
      const r = await m.applyDelta(dl, { check: { texts: [PROMPT, 'The weather'], maxError: 10 } });
      expect(r.error).toBeGreaterThan(1e-9);
      expect(m.version).not.toBe(v0);
    } finally {
      m.dispose();
    }
  }, 60_000);
});
