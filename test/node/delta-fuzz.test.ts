// Fuzzing deltas, seeded: a real delta mutated as an attacker who controls its URL would mutate it
// (any field of the manifest set to hostile values, keys renamed or dropped, side files shipped
// under hostile names, tensors added, dropped or damaged; the header checksum always recomputed and
// the target version often), then applied each way webq applies deltas: a folder in place, a loaded
// model's update (the checks and reads that precede an upload), and the download cache. Every case
// ends in a typed error or a valid model; a refusal leaves everything as it was; nothing outside
// the model folder is touched; no case hangs. Set WEBQ_FUZZ_SEED to replay a run.
import { cp, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareUpdate, type LoadedModel } from '../../src/delta/loaded-update.ts';
import { patchModelFolder } from '../../src/delta/patch-disk.ts';
import { updateCachedModel } from '../../src/delta/patch-cache.ts';
import { WebqError } from '../../src/errors.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { parseModelConfig } from '../../src/models/config.ts';
import { readPrequantInfo } from '../../src/quant/prequantized.ts';
import { readModelVersion } from '../../src/quant/versions.ts';
import { makeDeltaFixtures, snapshot, type DeltaFixtures } from '../helpers/delta-fixtures.ts';
import { encodeRaw, readRawDelta, revise, shipFile, type RawDelta } from '../helpers/delta-forge.ts';
import { serveStatic, type StaticServer } from '../helpers/static-server.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const SEED = Number(process.env.WEBQ_FUZZ_SEED ?? 20261207);
const CASE_MS = 10_000;
const tmp = useTempDir('webq-delta-fuzz-');
let fx: DeltaFixtures;
let pristine: RawDelta;

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PATHS = ['../victim.txt', '../../x', '/etc/passwd', 'C:\\x', 'a\\..\\b', '.webq-patch/COMMIT.json', 'model.safetensors', 'config.json', '1_Pooling/config.json', 'vocab.txt', 'sub/../config.json', './config.json', 'x'.repeat(600), 'con\u0000fig.json', '__proto__', 'evil.json', ''];
const VALUES = (): unknown[] => [
  null, true, false, 0, -1, 1.5, 2 ** 31, 2 ** 53 - 1, 1e308, '', 'x'.repeat(20_000), ...PATHS, 'constructor', 'toString', 'file:x',
  [], {}, [null], JSON.parse('{"__proto__":{"x":1}}'), JSON.parse(`${'['.repeat(40)}1${']'.repeat(40)}`), Array.from({ length: 2000 }, (_, i) => i),
  { from: 'base', name: '__proto__' }, { from: 'delta' }, '0'.repeat(16), 'f'.repeat(64), ['64,8'], [1e9, 1e9],
];

type Json = Record<string, unknown> | unknown[];

/** Every (container, key) in a JSON tree. */
function slots(root: Json): [Json, string | number][] {
  const out: [Json, string | number][] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach((x, i) => (out.push([v, i]), walk(x)));
    else if (v && typeof v === 'object') for (const k of Object.keys(v)) out.push([v as Json, k]), walk((v as Record<string, unknown>)[k]);
  };
  walk(root);
  return out;
}

/** One hostile edit of `d`; returns what it did, for the failure message. */
async function mutate(d: RawDelta, r: () => number): Promise<string> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const m = d.manifest;
  const op = Math.floor(r() * 9);
  if (op <= 2) {
    const [c, k] = pick(slots(m));
    const v = pick(VALUES());
    (c as Record<string | number, unknown>)[k] = v;
    return `set ${String(k).slice(0, 30)} = ${JSON.stringify(v)?.slice(0, 40)}`;
  }
  if (op === 3) {
    const objs = slots(m).filter(([c]) => !Array.isArray(c));
    const [c, k] = pick(objs) as [Record<string, unknown>, string];
    const to = pick(PATHS);
    const v = c[k];
    delete c[k];
    if (r() < 0.7) c[to] = v;
    return `key ${k.slice(0, 30)} -> ${to.slice(0, 30)}`;
  }
  if (op === 4) {
    const arrs = slots(m).filter(([c]) => Array.isArray(c));
    if (!arrs.length) return 'nothing';
    const [c, k] = pick(arrs) as [unknown[], number];
    const n = pick([1, 2, 100, 5000]);
    c.splice(k, 0, ...Array.from({ length: n }, () => structuredClone(c[k])));
    return `duplicate item ${k} x${n}`;
  }
  if (op === 5) {
    // Inside the recorded units/files (JSON in the metadata), with the version recomputed.
    const key = pick(['webq.tensors', 'webq.files']);
    const o = JSON.parse(m.target.metadata[key]);
    const names = Object.keys(o);
    const name = pick(names);
    if (r() < 0.5) o[pick(PATHS)] = o[name];
    else o[name] = pick(VALUES());
    m.target.metadata[key] = JSON.stringify(o);
    await revise(d);
    return `edit ${key}`;
  }
  if (op === 6) {
    const p = pick(PATHS);
    await shipFile(d, p, new TextEncoder().encode(pick(['pwned', '{}', JSON.stringify({ model_type: 'bert', num_hidden_layers: 2147483648 })])));
    if (r() < 0.5) m.filesRemoved = [...(Array.isArray(m.filesRemoved) ? m.filesRemoved : []), pick(PATHS)];
    return `ship ${p.slice(0, 30)}`;
  }
  if (op === 7) {
    const i = Math.floor(r() * d.tensors.length);
    const t = d.tensors[i];
    const what = pick(['drop', 'dtype', 'shape', 'flip', 'add']);
    if (what === 'drop') d.tensors.splice(i, 1);
    else if (what === 'dtype') t.dtype = pick(['F32', 'U8', 'F16', 'I64'] as const);
    else if (what === 'shape') t.shape = [t.data.byteLength];
    else if (what === 'flip') {
      const b = new Uint8Array(t.data.buffer.slice(0), t.data.byteOffset, t.data.byteLength);
      b[Math.floor(r() * b.length)] ^= 0x10;
      t.data = b;
    } else d.tensors.push({ name: pick(PATHS) || 'x', dtype: 'U8', shape: [3], data: new Uint8Array(3) });
    return `tensor ${what} ${t.name.slice(0, 30)}`;
  }
  // Drop a top-level or nested key.
  const objs = slots(m).filter(([c]) => !Array.isArray(c));
  const [c, k] = pick(objs) as [Record<string, unknown>, string];
  delete c[k];
  return `delete ${k.slice(0, 30)}`;
}

/** A mutated copy of the real delta's bytes, with what was done. */
async function fuzzCase(seed: number, i: number): Promise<{ bytes: Uint8Array; what: string }> {
  const r = rng(seed * 1_000_003 + i);
  const d: RawDelta = { manifest: structuredClone(pristine.manifest), tensors: pristine.tensors.map((t) => ({ ...t })) };
  const steps: string[] = [];
  for (let k = 1 + Math.floor(r() * 3); k > 0; k--) {
    // An edit that an earlier one made impossible (the field is gone) is skipped.
    steps.push(await mutate(d, r).catch(() => 'skipped'));
  }
  if (r() < 0.5) await revise(d);
  let bytes: Uint8Array;
  try {
    bytes = await encodeRaw(d);
  } catch {
    bytes = await encodeRaw({ manifest: d.manifest, tensors: pristine.tensors }); // a tensor edit the writer cannot encode
  }
  return { bytes, what: steps.join('; ') };
}

function timeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([p, new Promise<T>((_, no) => (timer = setTimeout(() => no(new Error(`hung for ${CASE_MS} ms: ${what}`)), CASE_MS)))]).finally(() => clearTimeout(timer));
}

/** A refusal must be typed (a WebqError with a code) and one line. */
function expectTyped(e: unknown, at: string): string {
  expect(e, `${at}: an untyped error: ${(e as Error)?.stack}`).toBeInstanceOf(WebqError);
  const err = e as WebqError;
  expect(err.code, at).toMatch(/^[A-Z_]+$/);
  expect(err.message.includes('\n'), `${at}: ${err.message}`).toBe(false);
  return err.code;
}

/** A model folder after a successful patch: webq's reader opens it as the delta's target. */
async function expectValidModel(dir: string, at: string): Promise<void> {
  const st = await SafetensorsFile.open(join(dir, 'model.safetensors'));
  try {
    expect(readModelVersion(st.metadata, dir), at).not.toBeNull();
    expect(readPrequantInfo(st), at).not.toBeNull();
  } finally {
    await st.close();
  }
  const files = await openModelFiles(dir);
  parseModelConfig(await files.readJson('config.json'), `${dir}/config.json`);
}

function tally(codes: Map<string, number>, code: string): void {
  codes.set(code, (codes.get(code) ?? 0) + 1);
}

beforeAll(async () => {
  fx = await makeDeltaFixtures(join(tmp.dir, 'fx'));
  // A delta that also changes a side file, so side-file paths are in play.
  pristine = await readRawDelta(join(fx.served, 'delta.safetensors'));
  const config = JSON.parse(await (await openModelFiles(fx.v1)).readText('config.json'));
  await shipFile(pristine, 'config.json', new TextEncoder().encode(JSON.stringify({ ...config, classifier_dropout: 0.2 }, null, 2)));
}, 120_000);

describe(`delta fuzz (seed ${SEED})`, () => {
  it('a model folder patched in place: typed error or valid model, nothing outside touched, a refusal changes nothing', async () => {
    const box = join(tmp.dir, 'disk');
    const model = join(box, 'model');
    await mkdir(box);
    await cp(fx.v1, model, { recursive: true });
    await writeFile(join(box, 'victim.txt'), 'keep me');
    const start = await snapshot(box);
    const codes = new Map<string, number>();
    const N = 1500;
    for (let i = 0; i < N; i++) {
      const { bytes, what } = await fuzzCase(SEED, i);
      const at = `seed ${SEED} case ${i} (${what})`;
      const file = join(tmp.dir, 'case.safetensors');
      await writeFile(file, bytes);
      const e = await timeout(patchModelFolder(model, file), at).then(() => undefined, (x: unknown) => x);
      if (e === undefined) {
        tally(codes, 'applied');
        await expectValidModel(model, at);
        const now = await snapshot(box);
        expect(now['victim.txt'], at).toBe(start['victim.txt']);
        expect(Object.keys(now).every((k) => k === 'victim.txt' || k.startsWith('model/')), at).toBe(true);
        await rm(model, { recursive: true });
        await cp(fx.v1, model, { recursive: true });
      } else {
        tally(codes, expectTyped(e, at));
        expect(await snapshot(box), at).toEqual(start);
      }
    }
    console.log(`delta fuzz, folder: ${N} cases, seed ${SEED}: ${JSON.stringify(Object.fromEntries(codes))}`);
    expect(codes.get('applied') ?? 0).toBeLessThan(N); // the fuzzer reached the checks
  }, 180_000);

  it("a loaded model's update (checks and every read an upload makes): typed error or a readable target", async () => {
    const files = await openModelFiles(fx.v1);
    const st = await files.checkpoint();
    const loaded: LoadedModel = { describe: fx.v1, version: readModelVersion(st.metadata, fx.v1), files, dtype: 'q8' };
    await st.close();
    const start = await snapshot(tmp.dir.replace(/\/?$/, '/fx'));
    const codes = new Map<string, number>();
    const N = 600;
    for (let i = 0; i < N; i++) {
      const { bytes, what } = await fuzzCase(SEED + 1, i);
      const at = `seed ${SEED + 1} case ${i} (${what})`;
      const run = async () => {
        const u = await prepareUpdate(loaded, bytes);
        try {
          for (const t of u.store.tensors) await u.store.readBytes(t.name);
          await u.verifyRest();
        } finally {
          await u.close();
        }
      };
      const e = await timeout(run(), at).then(() => undefined, (x: unknown) => x);
      tally(codes, e === undefined ? 'applied' : expectTyped(e, at));
    }
    expect(await snapshot(join(tmp.dir, 'fx'))).toEqual(start);
    console.log(`delta fuzz, loaded model: ${N} cases, seed ${SEED + 1}: ${JSON.stringify(Object.fromEntries(codes))}`);
  }, 180_000);

  describe('the download cache', () => {
    let server: StaticServer;
    afterAll(async () => server?.close());

    it('updateCachedModel: typed error or valid cached model; a refusal leaves the cache as it was', async () => {
      server = await serveStatic({ '/': fx.served });
      const url = `${server.url}/model/`;
      const clean = join(tmp.dir, 'cache-clean');
      const files = await openModelFiles(url, { cacheDir: clean });
      for (const f of ['config.json', 'tokenizer.json', 'vocab.txt']) if (await files.exists(f)) await files.readText(f);
      await (await files.checkpoint()).close();
      const cacheDir = join(tmp.dir, 'cache');
      await cp(clean, cacheDir, { recursive: true });
      const start = await snapshot(cacheDir);
      const codes = new Map<string, number>();
      const N = 400;
      for (let i = 0; i < N; i++) {
        const { bytes, what } = await fuzzCase(SEED + 2, i);
        const at = `seed ${SEED + 2} case ${i} (${what})`;
        const e = await timeout(updateCachedModel(url, bytes, { cacheDir }), at).then(() => undefined, (x: unknown) => x);
        if (e === undefined) {
          tally(codes, 'applied');
          const st = await (await openModelFiles(url, { cacheDir, offline: true })).checkpoint();
          expect(readPrequantInfo(st), at).not.toBeNull();
          await st.close();
          await rm(cacheDir, { recursive: true });
          await cp(clean, cacheDir, { recursive: true });
        } else {
          tally(codes, expectTyped(e, at));
          expect(await snapshot(cacheDir), at).toEqual(start);
        }
      }
      expect((await stat(join(tmp.dir, 'fx', 'served', 'model', 'model.safetensors'))).isFile()).toBe(true);
      console.log(`delta fuzz, cache: ${N} cases, seed ${SEED + 2}: ${JSON.stringify(Object.fromEntries(codes))}`);
    }, 180_000);
  });
});
