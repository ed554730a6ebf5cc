// Versioned models and deltas on disk: `webq quantize` records versions and hashes, `webq diff`
// ships only what changed, `webq patch` (in place or --out) gives files byte-identical to a fresh
// quantization, deltas merge, and every bad delta is refused with the model untouched.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { sha256Hex, sha256PlainHex } from '../../src/quant/hash.ts';
import { readModelVersion } from '../../src/quant/versions.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { editCheckpoint } from '../../fixtures/checkpoint-edit.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { writeOutlierBert } from '../helpers/quantize-fixtures.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-delta-');
const run = promisify(execFile);

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

/** Every file under `dir` by relative path, with its sha256. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(await readFile(p)).digest('hex');
    }
  };
  await walk(dir);
  return out;
}

async function quantize(src: string, out: string, dtype = 'q4'): Promise<string> {
  const r = await cli('quantize', src, '--dtype', dtype, '--out', out);
  expect(r.err).toBe('');
  expect(r.code).toBe(0);
  return out;
}

let v1: string, v2: string, v3: string, other: string;
let q1: string, q2: string, q3: string;
let d12: string, d23: string;

beforeAll(async () => {
  v1 = (await writeOutlierBert(join(tmp.dir, 'v1'), { hidden: 64, heads: 2, intermediate: 128, layers: 2, seed: 3 })).dir;
  // v2: a fine-tune of layer 1's feed-forward weights.
  v2 = await editCheckpoint(v1, join(tmp.dir, 'v2'), { nudge: /^encoder\.layer\.1\.(intermediate|output)\.dense\.weight$/ });
  // v3: every tensor renamed (a task model's `bert.` prefix), a classifier added, config edited.
  v3 = await editCheckpoint(v2, join(tmp.dir, 'v3'), {
    rename: (n) => `bert.${n}`,
    add: [
      { name: 'classifier.weight', dtype: 'F32', shape: [2, 64], data: new Float32Array(128).map((_, i) => Math.sin(i) * 0.1) },
      { name: 'classifier.bias', dtype: 'F32', shape: [2], data: new Float32Array([0.1, -0.1]) },
    ],
    config: (c) => {
      c.architectures = ['BertForSequenceClassification'];
      c.id2label = { 0: 'no', 1: 'yes' };
      c.label2id = { no: 0, yes: 1 };
    },
  });
  other = (await writeOutlierBert(join(tmp.dir, 'other'), { hidden: 64, heads: 2, intermediate: 128, layers: 2, seed: 9 })).dir;
  q1 = await quantize(v1, join(tmp.dir, 'q1'));
  q2 = await quantize(v2, join(tmp.dir, 'q2'));
  q3 = await quantize(v3, join(tmp.dir, 'q3'));
  d12 = join(tmp.dir, 'd12.safetensors');
  d23 = join(tmp.dir, 'd23.safetensors');
  expect((await cli('diff', q1, v2, '--out', d12)).code).toBe(0);
  expect((await cli('diff', q2, v3, '--out', d23)).code).toBe(0);
}, 120_000);

describe('hashes', () => {
  it('WebCrypto and the plain SHA-256 agree (empty, one block, many blocks, odd tails)', async () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 1000, 4099]) {
      const b = new Uint8Array(n).map((_, i) => (i * 31 + 7) & 255);
      expect(sha256PlainHex(b)).toBe(await sha256Hex(b));
    }
    expect(sha256PlainHex(new TextEncoder().encode('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('versioned models', () => {
  it('webq quantize records a version, per-unit source/quantized hashes and options; the same checkpoint gives the same version', async () => {
    const st = await SafetensorsFile.open(join(q1, 'model.safetensors'));
    const v = readModelVersion(st.metadata, 'q1')!;
    await st.close();
    expect(v.version).toMatch(/^[0-9a-f]{16}$/);
    const ffn = v.tensors['encoder.layer.1.intermediate.dense.weight'];
    expect(ffn.as).toEqual({ bits: 4, group: 64, symmetric: true }); // BERT's q4 default: symmetric groups of 64 (bertQuantDefaults)
    expect(v.tensors['encoder.layer.0.attention.output.LayerNorm.weight'].as).toBe('F16');
    expect(Object.keys(v.files)).toContain('config.json');
    // Recomputed hash of a stored tensor equals the recorded one, through the unit hash.
    const again = await quantize(v1, join(tmp.dir, 'q1-again'));
    expect(await snapshot(again)).toEqual(await snapshot(q1));
    const q2v = readModelVersion((await SafetensorsFile.open(join(q2, 'model.safetensors'))).metadata, 'q2')!;
    expect(q2v.version).not.toBe(v.version);
    expect(q2v.tensors['encoder.layer.0.intermediate.dense.weight']).toEqual(v.tensors['encoder.layer.0.intermediate.dense.weight']);
    expect(q2v.tensors['encoder.layer.1.intermediate.dense.weight'].source).not.toBe(ffn.source);
  }, 60_000);

  it('webq info shows the version and each unit', async () => {
    const r = await cli('info', join(q1, 'model.safetensors'));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/version: [0-9a-f]{16} \(\d+ units/);
    expect(r.out).toMatch(/encoder\.layer\.1\.output\.dense\.weight\s+int4 group 64\s+[0-9a-f]{12}\s+[0-9a-f]{12}/);
    const j = JSON.parse((await cli('info', '--json', join(q1, 'model.safetensors'))).out);
    expect(j.version.version).toMatch(/^[0-9a-f]{16}$/);
  });
});

describe('diff and patch', () => {
  it('a one-layer fine-tune: the delta holds only that layer, and patching gives the fresh quantization byte for byte', async () => {
    const st = await SafetensorsFile.open(d12);
    const names = st.tensors.map((t) => t.name).sort();
    const m = JSON.parse(st.metadata['webq.delta']);
    await st.close();
    expect(m.changed.sort()).toEqual(['encoder.layer.1.intermediate.dense.weight', 'encoder.layer.1.output.dense.weight']);
    expect(m.added).toEqual([]);
    expect(m.removed).toEqual([]);
    expect(names.every((n) => n.startsWith('encoder.layer.1.'))).toBe(true);
    const out = join(tmp.dir, 'p12');
    const r = await cli('patch', q1, d12, '--out', out);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/version [0-9a-f]{16} -> [0-9a-f]{16} \(2 changed/);
    expect(await snapshot(out)).toEqual(await snapshot(q2));
  }, 60_000);

  it('renames cost nothing, new tensors and changed side files travel in the delta, and the result equals a fresh quantization', async () => {
    const st = await SafetensorsFile.open(d23);
    const m = JSON.parse(st.metadata['webq.delta']);
    const names = st.tensors.map((t) => t.name).sort();
    await st.close();
    expect(m.added.sort()).toEqual(['bert.classifier.weight', 'bert.classifier.bias', 'classifier.bias', 'classifier.weight'].filter((n) => m.added.includes(n)).sort());
    expect(m.added.length).toBe(2);
    expect(m.renamed.length).toBeGreaterThan(20);
    expect(m.files['config.json']).toBe('delta');
    expect(names.some((n) => n.startsWith('bert.encoder'))).toBe(false); // renames carry no data
    const out = join(tmp.dir, 'p23');
    expect((await cli('patch', q2, d23, '--out', out)).code).toBe(0);
    expect(await snapshot(out)).toEqual(await snapshot(q3));
  }, 60_000);

  it('diff --merge folds consecutive deltas; the merged delta patches v1 into v3 exactly', async () => {
    const merged = join(tmp.dir, 'd13.safetensors');
    const r = await cli('diff', '--merge', d12, d23, '--out', merged);
    expect(r.code).toBe(0);
    const out = join(tmp.dir, 'p13');
    expect((await cli('patch', q1, merged, '--out', out)).code).toBe(0);
    expect(await snapshot(out)).toEqual(await snapshot(q3));
    // Out of order: refused.
    const bad = await cli('diff', '--merge', d23, d12, '--out', join(tmp.dir, 'd-bad.safetensors'));
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/applies to version [0-9a-f]{16}, but the delta before it makes version/);
  }, 60_000);

  it('in place: the folder becomes the new model (byte for byte) and a second apply is refused', async () => {
    const dir = await quantize(v1, join(tmp.dir, 'inplace'));
    expect((await cli('patch', dir, d12)).code).toBe(0);
    expect(await snapshot(dir)).toEqual(await snapshot(q2));
    const again = await cli('patch', dir, d12);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/is already version/);
  }, 60_000);
});

describe('bad deltas change nothing', () => {
  let target: string;
  let before: Record<string, string>;
  beforeAll(async () => {
    target = await quantize(v1, join(tmp.dir, 'victim'));
    before = await snapshot(target);
  }, 60_000);

  const refuse = async (delta: string, pattern: RegExp, extra: string[] = []) => {
    const r = await cli('patch', target, delta, ...extra);
    expect(r.code).toBe(1);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(pattern);
    expect(await snapshot(target)).toEqual(before);
  };

  it('a delta for another version', async () => refuse(d23, /applies to version [0-9a-f]{16} \(a bert model\), but .* is version/));

  it('a delta for another model', async () => {
    const qo = await quantize(other, join(tmp.dir, 'qo'));
    const vo = await editCheckpoint(other, join(tmp.dir, 'other2'), { nudge: /layer\.0\.output\.dense\.weight/ });
    const d = join(tmp.dir, 'd-other.safetensors');
    expect((await cli('diff', qo, vo, '--out', d)).code).toBe(0);
    await refuse(d, /a delta for another model or version/);
  }, 60_000);

  it('a truncated delta', async () => {
    const bytes = await readFile(d12);
    const p = join(tmp.dir, 'trunc.safetensors');
    await writeFile(p, bytes.subarray(0, bytes.length - 100));
    await refuse(p, /not a complete webq delta \(truncated or damaged\)/);
  });

  it('flipped bytes in the data', async () => {
    const bytes = Buffer.from(await readFile(d12));
    bytes[bytes.length - 10] ^= 0x40;
    const p = join(tmp.dir, 'flip-data.safetensors');
    await writeFile(p, bytes);
    await refuse(p, /does not match its hash in the manifest \(damaged delta\)/);
  });

  it('flipped bytes in the header', async () => {
    const bytes = Buffer.from(await readFile(d12));
    const text = bytes.toString('latin1');
    const at = text.indexOf('changed') + 2; // inside the manifest
    bytes[at] ^= 0x01;
    const p = join(tmp.dir, 'flip-head.safetensors');
    await writeFile(p, bytes);
    await refuse(p, /header checksum mismatch/);
  });

  it('a manifest whose hashes do not match its data (checksum recomputed)', async () => {
    const { encodeDelta, openDelta } = await import('../../src/delta/format.ts');
    const d = await openDelta(d12);
    const m = structuredClone(d.manifest);
    const unit = m.changed[0];
    const meta = JSON.parse(m.target.metadata['webq.tensors']);
    meta[unit].quantized = 'f'.repeat(64);
    m.target.metadata['webq.tensors'] = JSON.stringify(meta);
    // Keep the target's version self-consistent so only the data check can catch it.
    const { versionOf } = await import('../../src/quant/versions.ts');
    const files = JSON.parse(m.target.metadata['webq.files']);
    m.target.version = await versionOf(meta, files);
    m.target.metadata['webq.version'] = m.target.version;
    const tensors = [];
    for (const t of d.store.tensors) tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await d.store.readBytes(t.name) });
    await d.close();
    const p = join(tmp.dir, 'forged.safetensors');
    await writeFile(p, Buffer.concat(await encodeDelta(m, tensors)));
    await refuse(p, /data of .* does not match its hash/);
  });

  it('not a delta, a missing delta, and an output folder that exists', async () => {
    await refuse(join(q2, 'model.safetensors'), /has no webq\.delta manifest: it is not a webq delta/);
    await refuse(join(tmp.dir, 'nope.safetensors'), /cannot read the delta/);
    await refuse(d12, /already exists; choose a new output folder/, ['--out', q2]);
    const r = await cli('diff', q1, v2, '--out', d12);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/already exists; choose a new name for the delta/);
  });

  it('a calibrated model refuses deltas with the reason', async () => {
    const r = await cli('diff', join(tmp.dir, 'v1'), v2, '--out', join(tmp.dir, 'd-float.safetensors'));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/has no model version|not a webq quantized model/);
  });
});

describe('crash safety of an in-place patch', () => {
  const bin = join(process.cwd(), 'test', 'helpers', 'cli-source.mjs');
  for (const step of ['staged', 'committed', 'moved-one']) {
    it(`killed at "${step}": the next open finds the old model or the new one, whole`, async () => {
      const dir = await quantize(v2, join(tmp.dir, `crash-${step}`));
      const old = await snapshot(dir);
      const fresh = await snapshot(q3);
      const r = await run(process.execPath, [bin, 'patch', dir, d23], { env: { ...process.env, WEBQ_CRASH_AT: step } }).then(
        () => ({ code: 0 }),
        (e: { code: number }) => ({ code: e.code }),
      );
      expect(r.code).toBe(86); // it died where asked
      // Opening the folder completes (after the commit point) or discards (before it) the update.
      const files = await openModelFiles(dir); // what BertModel.load, webq embed ... do first
      await (await files.checkpoint()).close();
      const now = await snapshot(dir);
      expect([JSON.stringify(old), JSON.stringify(fresh)]).toContain(JSON.stringify(now));
      expect(now).toEqual(step === 'staged' ? old : fresh);
      expect(await stat(join(dir, '.webq-patch')).catch(() => null)).toBeNull();
    }, 60_000);
  }
});

describe('LLaMA-family models take deltas too', () => {
  it('a changed MLP in one layer of a tied LLaMA: patch equals a fresh q8 quantization', async () => {
    const l1 = (await writeTinyLlama(join(tmp.dir, 'l1'), { tokenizer: 'llama2', tied: true, hidden: 64, intermediate: 128, layers: 2, seed: 7 })).dir;
    const l2 = await editCheckpoint(l1, join(tmp.dir, 'l2'), { nudge: /layers\.1\.mlp\.(gate|up)_proj\.weight$/ });
    const lq1 = await quantize(l1, join(tmp.dir, 'lq1'), 'q8');
    const lq2 = await quantize(l2, join(tmp.dir, 'lq2'), 'q8');
    const d = join(tmp.dir, 'ld.safetensors');
    expect((await cli('diff', lq1, l2, '--out', d)).code).toBe(0);
    const m = JSON.parse((await SafetensorsFile.open(d)).metadata['webq.delta']);
    expect(m.changed.sort()).toEqual(['model.layers.1.mlp.gate_proj.weight', 'model.layers.1.mlp.up_proj.weight']);
    expect((await cli('patch', lq1, d)).code).toBe(0);
    expect(await snapshot(lq1)).toEqual(await snapshot(lq2));
  }, 90_000);
});
