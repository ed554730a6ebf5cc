// Crafted deltas, as an attacker who controls a delta's URL would make them (the header checksum
// recomputed, and the target's version where that matters): each is refused with one typed line,
// touches nothing outside the model folder and leaves the folder as it was. Then signed deltas:
// `webq keygen`, `webq diff --sign`, and every way of applying one with a public key.
import { mkdir, readFile, symlink, writeFile, cp, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { DeltaError } from '../../src/delta/errors.ts';
import { openDelta } from '../../src/delta/format.ts';
import { prepareUpdate } from '../../src/delta/loaded-update.ts';
import { patchModelFolder } from '../../src/delta/patch-disk.ts';
import { generateDeltaKeys } from '../../src/delta/sign.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { readModelVersion } from '../../src/quant/versions.ts';
import { makeDeltaFixtures, snapshot, type DeltaFixtures } from '../helpers/delta-fixtures.ts';
import { readRawDelta, revise, shipFile, writeRaw, type RawDelta } from '../helpers/delta-forge.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-delta-sec-');
let fx: DeltaFixtures;
let delta: string;
/** The sandbox: `box/model` (the quantized v1) beside files an attacker would like to reach. */
let box: string;
let model: string;
let before: Record<string, string>;
let n = 0;

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

beforeAll(async () => {
  fx = await makeDeltaFixtures(join(tmp.dir, 'fx'));
  delta = join(fx.served, 'delta.safetensors');
  box = join(tmp.dir, 'box');
  model = join(box, 'model');
  await cp(fx.v1, model, { recursive: true });
  await writeFile(join(box, 'victim.txt'), 'keep me');
  await mkdir(join(box, 'sub'));
  await writeFile(join(box, 'sub', 'victim2.txt'), 'keep me too');
  before = await snapshot(box);
}, 120_000);

/** A crafted delta: the real one, edited by `edit`, checksum recomputed (and the version, with `rev`). */
async function craft(edit: (d: RawDelta) => void | Promise<void>, rev = false): Promise<string> {
  const d = await readRawDelta(delta);
  await edit(d);
  if (rev) await revise(d);
  return writeRaw(join(tmp.dir, `crafted-${n++}.safetensors`), d);
}

/** `webq patch` refuses `file` with one line matching `pattern`; the library with a DeltaError; nothing changed. */
async function refused(file: string, pattern: RegExp, code?: string): Promise<void> {
  const r = await cli('patch', model, file);
  expect(r.code, r.err).toBe(1);
  expect(r.err.trim().split('\n'), r.err).toHaveLength(1);
  expect(r.err).toMatch(pattern);
  const e = await patchModelFolder(model, file).then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(DeltaError);
  if (code) expect((e as DeltaError).code).toBe(code);
  expect(await snapshot(box)).toEqual(before);
}

describe('crafted deltas are refused before anything is written', () => {
  it('removing a file outside the model folder (filesRemoved: ["../victim.txt"])', async () => {
    await refused(await craft((d) => void (d.manifest.filesRemoved = ['../victim.txt'])), /filesRemoved\[0\]: "\.\.\/victim\.txt" has an empty, "\." or "\.\." segment: it must stay inside the model folder/, 'DELTA_CORRUPT');
  });

  it('writing a side file outside the folder (../escape.txt, ../../escape2.txt), also with --out', async () => {
    for (const p of ['../escape.txt', '../../escape2.txt', '/tmp/abs.txt', 'a\\..\\..\\b.txt', 'C:/x.txt', '.webq-patch/COMMIT.json', 'con\u0000fig.json']) {
      const file = await craft((d) => shipFile(d, p, new TextEncoder().encode('pwned')));
      await refused(file, /manifest field .*(segment|backslash|absolute|webq's own|control characters)/, 'DELTA_CORRUPT');
      const out = join(box, 'out', 'patched');
      expect((await cli('patch', model, file, '--out', out)).code).toBe(1);
      expect(await stat(join(box, 'out')).catch(() => null)).toBeNull();
    }
    expect(await stat(join(tmp.dir, 'escape.txt')).catch(() => null)).toBeNull();
    expect(await stat(join(tmp.dir, '..', 'escape2.txt')).catch(() => null)).toBeNull();
  });

  it('a side file webq does not record, or the weights as a side file', async () => {
    await refused(await craft((d) => shipFile(d, 'evil.json', new Uint8Array([1]))), /"evil\.json" is not a side file webq records/);
    await refused(await craft((d) => shipFile(d, 'model.safetensors', new Uint8Array([1]))), /"model\.safetensors" is a weights file/);
  });

  it('deleting the weights or the config, and a target with no tensors', async () => {
    await refused(await craft((d) => void (d.manifest.filesRemoved = ['model.safetensors'])), /filesRemoved\[0\]: "model\.safetensors" is a weights file/);
    await refused(await craft((d) => {
      const files = JSON.parse(d.manifest.target.metadata['webq.files']);
      delete files['config.json'];
      d.manifest.target.metadata['webq.files'] = JSON.stringify(files);
      delete d.manifest.files['config.json'];
      d.manifest.filesRemoved = ['config.json'];
    }, true), /webq\.files has no config\.json: the patched model would have no config/);
    await refused(await craft((d) => void (d.manifest.target.entries = [])), /target\.entries: is empty/);
  });

  it('metadata the reader rejects, a shape that is not numbers, wrong types anywhere', async () => {
    await refused(await craft((d) => void (d.manifest.target.metadata['webq.bits'] = 4)), /target\.metadata\["webq\.bits"\]: expected a string/);
    await refused(await craft((d) => void (d.manifest.target.metadata['webq.bits'] = '5'), true), /webq's reader would refuse the patched file/);
    await refused(await craft((d) => void (d.manifest.target.entries[0].shape = ['64,8'])), /target\.entries\[0\]\.shape\[0\]: expected an integer >= 0, got "64,8"/);
    const cases: [(m: RawDelta['manifest']) => void, RegExp][] = [
      [(m) => (m.target.entries[0].name = 5), /target\.entries\[0\]\.name: expected a string, got 5/],
      [(m) => (m.target.version = 5), /target\.version: expected 16 lowercase hex digits/],
      [(m) => (m.units = 'x'), /units: expected an object/],
      [(m) => (m.base = null), /base: expected an object, got null/],
      [(m) => (m.renamed = [[1, 2]]), /renamed\[0\]\[0\]: expected a string/],
      [(m) => (m.changed = {}), /changed: expected an array/],
      [(m) => (m.extra = 1), /unknown key "extra"/],
      [(m) => (m.units[Object.keys(m.units)[0]] = { from: 'base', name: '__proto__' }), /base unit "__proto__" is not in base\.tensors/],
    ];
    for (const [edit, pattern] of cases) await refused(await craft((d) => edit(d.manifest)), pattern);
  });

  it('filesRemoved of every wrong shape is refused before the commit point; the folder opens as before', async () => {
    for (const v of [5, {}, -1, [null], 'model.safetensors', ['config.json', 'config.json']]) {
      await refused(await craft((d) => void (d.manifest.filesRemoved = v)), /manifest field filesRemoved/);
      expect(await stat(join(model, '.webq-patch')).catch(() => null)).toBeNull();
    }
  });

  it('huge manifests are refused in about the time it takes to read them', async () => {
    let t = performance.now();
    await refused(await craft((d) => void (d.manifest.filesRemoved = 'x'.repeat(1_000_000))), /filesRemoved: expected an array/);
    expect(performance.now() - t).toBeLessThan(10_000);
    t = performance.now();
    await refused(await craft((d) => void (d.manifest.target.entries = Array.from({ length: 100_000 }, () => d.manifest.target.entries[0]))), /target\.entries\[1\]\.name: .* is listed twice/);
    expect(performance.now() - t).toBeLessThan(10_000);
  }, 60_000);

  it('a tensor the manifest does not ship, and a unit that claims a base unit of another hash', async () => {
    await refused(await craft((d) => void d.tensors.push({ name: 'extra', dtype: 'F32', shape: [1], data: new Float32Array(1) })), /holds tensor "extra", which the manifest does not ship/);
    await refused(await craft((d) => {
      const m = d.manifest;
      const [a, b] = Object.keys(m.base.tensors);
      const reused = Object.keys(m.units).find((u) => m.units[u].from === 'base' && m.units[u].name === a)!;
      m.units[reused] = { from: 'base', name: b };
    }), /reuses base unit .* whose hash is not the one the target records/);
  });

  it('a new config.json that does not parse, or names another architecture', async () => {
    const config = JSON.parse(await readFile(join(model, 'config.json'), 'utf8'));
    await refused(await craft((d) => shipFile(d, 'config.json', new TextEncoder().encode('{ not json'))), /the new config\.json: not valid JSON/);
    await refused(await craft((d) => shipFile(d, 'config.json', new TextEncoder().encode(JSON.stringify({ ...config, model_type: 'llama' })))), /the new config\.json: is a llama model, but the delta says bert|new config\.json/);
  });

  it('a folder on the way that is a link out of the model, or a file: refused before the commit', async () => {
    const pooling = new TextEncoder().encode(JSON.stringify({ word_embedding_dimension: 64, pooling_mode_mean_tokens: true }));
    const file = await craft((d) => shipFile(d, '1_Pooling/config.json', pooling));
    await symlink(join(box, 'sub'), join(model, '1_Pooling'));
    const linked = await snapshot(box);
    let r = await cli('patch', model, file);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/1_Pooling: is a link, so the update cannot write inside it; nothing was changed/);
    expect(await snapshot(box)).toEqual(linked);
    expect(await stat(join(box, 'sub', 'config.json')).catch(() => null)).toBeNull();
    const { rm } = await import('node:fs/promises');
    await rm(join(model, '1_Pooling'));
    await writeFile(join(model, '1_Pooling'), 'a file');
    r = await cli('patch', model, file);
    expect(r.err).toMatch(/1_Pooling: is a file, so the update cannot write inside it/);
    await rm(join(model, '1_Pooling'));
    expect(await snapshot(box)).toEqual(before);
  });

  it('a journal webq did not write is discarded on the next open, and the model stays', async () => {
    for (const junk of ['{"moves":["../victim.txt"],"removes":["model.safetensors"]}', 'not json', '{"moves":5,"removes":[]}', JSON.stringify({ moves: ['model.safetensors'], removes: ['x'.repeat(100_000)] })]) {
      await mkdir(join(model, '.webq-patch'));
      await writeFile(join(model, '.webq-patch', 'COMMIT.json'), junk);
      const files = await openModelFiles(model); // every local open finishes or discards an update
      const st = await files.checkpoint();
      expect(readModelVersion(st.metadata, model)?.version).toBe(await baseVersion());
      await st.close();
      expect(await snapshot(box)).toEqual(before);
    }
  });
});

describe('a delta from a hostile server', () => {
  it('updateCachedModel stops a download past twice the model (a declared length, or an endless body)', async () => {
    const { createServer } = await import('node:http');
    const { serveStatic } = await import('../helpers/static-server.ts');
    const { updateCachedModel, maxDeltaBytes } = await import('../../src/delta/patch-cache.ts');
    const files = await serveStatic({ '/': fx.served });
    let sent = 0;
    const hostile = createServer((req, res) => {
      if (req.url === '/declared') {
        res.writeHead(200, { 'content-length': String(1e12) });
        res.write(new Uint8Array(1024));
        return;
      }
      res.writeHead(200); // chunked, no length: zeros until the client hangs up
      const chunk = new Uint8Array(1 << 20);
      const pump = () => {
        while (!res.destroyed && sent < 2 ** 31 && res.write(chunk)) sent += chunk.length;
        if (!res.destroyed) res.once('drain', pump);
      };
      res.on('close', () => undefined);
      pump();
    });
    await new Promise<void>((ok) => hostile.listen(0, '127.0.0.1', ok));
    const at = `http://127.0.0.1:${(hostile.address() as { port: number }).port}`;
    try {
      const cacheDir = join(tmp.dir, 'hostile-cache');
      const url = `${files.url}/model/`;
      const m = await openModelFiles(url, { cacheDir });
      await (await m.checkpoint()).close();
      const size = (await stat(join(fx.v1, 'model.safetensors'))).size;
      const cached = await snapshot(cacheDir);
      for (const path of ['/declared', '/endless']) {
        const e = await updateCachedModel(url, `${at}${path}`, { cacheDir }).then(() => undefined, (x: unknown) => x);
        expect(e, path).toBeInstanceOf(DeltaError);
        expect((e as DeltaError).code, path).toBe('DELTA_TOO_LARGE');
        expect((e as Error).message).toMatch(new RegExp(`at most ${maxDeltaBytes(size)}: twice the model and 64 MiB`));
        expect(await snapshot(cacheDir), path).toEqual(cached);
      }
      expect(sent).toBeLessThan(maxDeltaBytes(size) + 64 * 2 ** 20); // stopped soon after the bound
      // A model never cached is refused before anything is downloaded.
      const before = sent;
      await expect(updateCachedModel(`${files.url}/nothing/`, `${at}/endless`, { cacheDir })).rejects.toThrow(/has no cached model\.safetensors/);
      expect(sent).toBe(before);
    } finally {
      hostile.closeAllConnections();
      await new Promise((ok) => hostile.close(ok));
      await files.close();
    }
  }, 120_000);
});

async function baseVersion(): Promise<string> {
  const d = await openDelta(delta);
  await d.close();
  return d.manifest.base.version;
}

describe('signed deltas', () => {
  let key: string;
  let signed: string;
  let pubBase64: string;

  beforeAll(async () => {
    key = join(tmp.dir, 'keys', 'team');
    await mkdir(join(tmp.dir, 'keys'));
    const r = await cli('keygen', '--out', key);
    expect(r.code, r.err).toBe(0);
    pubBase64 = /public key ([A-Za-z0-9+/]{43}=)/.exec(r.out)![1];
    expect((await stat(key)).mode & 0o077).toBe(0); // the private key is its owner's alone
    signed = join(tmp.dir, 'signed.safetensors');
    const d = await cli('diff', fx.v1, join(tmp.dir, 'fx', 'f2'), '--out', signed, '--sign', key);
    expect(d.code, d.err).toBe(0);
    expect(d.out).toMatch(/; signed$/m);
  }, 60_000);

  it("a key made elsewhere (PKCS#8 / SPKI PEM, as openssl and node:crypto write them) signs and verifies", async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const k = generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    await writeFile(join(tmp.dir, 'keys', 'ext'), k.privateKey);
    await writeFile(join(tmp.dir, 'keys', 'ext.pub'), k.publicKey);
    const file = join(tmp.dir, 'signed-ext.safetensors');
    expect((await cli('diff', fx.v1, join(tmp.dir, 'fx', 'f2'), '--out', file, '--sign', join(tmp.dir, 'keys', 'ext'))).code).toBe(0);
    const out = join(tmp.dir, 'signed-ext-out');
    const r = await cli('patch', model, file, '--public-key', join(tmp.dir, 'keys', 'ext.pub'), '--out', out);
    expect(r.code, r.err).toBe(0);
    expect(await snapshot(out)).toEqual(await snapshot(fx.v2));
    const bad = await cli('diff', fx.v1, join(tmp.dir, 'fx', 'f2'), '--out', join(tmp.dir, 'never.safetensors'), '--sign', join(tmp.dir, 'keys', 'ext.pub'));
    expect(bad.err).toMatch(/expected an Ed25519 private key in PKCS#8 PEM/);
    expect(await stat(join(tmp.dir, 'never.safetensors')).catch(() => null)).toBeNull();
  });

  it('keygen refuses to overwrite a key', async () => {
    const r = await cli('keygen', '--out', key);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/already exists; choose another --out \(keys are never overwritten\)/);
  });

  it('webq patch --public-key applies a delta signed by that key (file or base64), in place and --out', async () => {
    const out = join(tmp.dir, 'signed-out');
    let r = await cli('patch', model, signed, '--public-key', `${key}.pub`, '--out', out);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/signature verified/);
    expect(await snapshot(out)).toEqual(await snapshot(fx.v2));
    const copy = join(tmp.dir, 'signed-inplace');
    await cp(fx.v1, copy, { recursive: true });
    r = await cli('patch', copy, signed, '--public-key', pubBase64);
    expect(r.code, r.err).toBe(0);
    expect(await snapshot(copy)).toEqual(await snapshot(fx.v2));
    expect(await snapshot(box)).toEqual(before);
  });

  it('with a public key: an unsigned delta, another key, an edited signed delta and a bad key are refused', async () => {
    const other = await generateDeltaKeys();
    const otherPub = join(tmp.dir, 'other.pub');
    await writeFile(otherPub, other.publicKey);
    const tampered = join(tmp.dir, 'signed-tampered.safetensors');
    // The manifest edited and the checksum recomputed, the signature kept: it no longer verifies.
    const raw = await readRawDelta(signed);
    raw.manifest.architecture = 'bert2';
    const { encodeDelta } = await import('../../src/delta/format.ts');
    const { SafetensorsFile } = await import('../../src/io/safetensors/reader.ts');
    const st = await SafetensorsFile.open(signed);
    const sig = st.metadata['webq.delta.signature'];
    await st.close();
    const chunks = await encodeDelta(raw.manifest, raw.tensors);
    // Re-insert the old signature into the new header (same key order as the writer's).
    const { encodeHeader, writeOrder } = await import('../../src/io/safetensors/writer.ts');
    const head = JSON.parse(new TextDecoder().decode(chunks[0].subarray(8)));
    const meta = { ...head.__metadata__, 'webq.delta.signature': sig };
    const order = writeOrder(raw.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape })));
    await writeFile(tampered, Buffer.concat([encodeHeader(order, meta), ...chunks.slice(1)]));
    for (const [file, pub, pattern] of [
      [delta, `${key}.pub`, /is not signed, and a public key was given/],
      [signed, otherPub, /its signature does not verify with the given public key \(it names signer key/],
      [tampered, `${key}.pub`, /its signature does not verify/],
      [signed, join(tmp.dir, 'fx', 'served', 'model', 'config.json'), /public key: not base64|expected an Ed25519 public key/],
    ] as [string, string, RegExp][]) {
      const r = await cli('patch', model, file, '--public-key', pub);
      expect(r.code, file).toBe(1);
      expect(r.err.trim().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(pattern);
      expect(await snapshot(box)).toEqual(before);
    }
    const e = await patchModelFolder(model, delta, { publicKey: pubBase64 }).then(() => undefined, (x: unknown) => x);
    expect((e as DeltaError).code).toBe('DELTA_UNSIGNED');
  });

  it('applyDelta and an opened Delta take the key too (the loaded-model path, checked without a GPU)', async () => {
    const files = await openModelFiles(model);
    const st = await files.checkpoint();
    const version = readModelVersion(st.metadata, model);
    await st.close();
    const loaded = { describe: model, version, files, dtype: 'q8' as const };
    const u = await prepareUpdate(loaded, signed, pubBase64);
    expect(u.target.version).toBe((await openDelta(signed).then(async (d) => (await d.close(), d))).manifest.target.version);
    await u.close();
    for (const [input, pattern] of [
      [delta, /is not signed/],
      [await openDelta(signed), /was opened without a public key/],
    ] as const) {
      const e = await prepareUpdate(loaded, input, pubBase64).then(() => undefined, (x: unknown) => x);
      expect(e).toBeInstanceOf(DeltaError);
      expect((e as Error).message).toMatch(pattern);
    }
    const opened = await openDelta(signed, undefined, { publicKey: pubBase64 });
    expect(opened.verified).toBe(true);
    const ok = await prepareUpdate(loaded, opened, pubBase64);
    await ok.close();
    await opened.close();
  });
});
