import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { writeSafetensorsFile } from '../../src/io/safetensors/writer.ts';
import { craft, useTempDir } from '../helpers/safetensors-helpers.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const tmp = useTempDir('webq-cli-');

let model: string;
let sharded: string;
let broken: string;

beforeAll(async () => {
  model = join(tmp.dir, 'model.safetensors');
  await writeSafetensorsFile(
    model,
    [
      { name: 'embed.weight', dtype: 'F16', shape: [32, 16], data: new Uint16Array(512) },
      { name: 'norm.weight', dtype: 'F32', shape: [16], data: new Float32Array(16) },
      { name: 'step', dtype: 'I64', shape: [], data: new BigInt64Array(1) },
    ],
    { format: 'pt', note: 'line1\nline2' },
  );
  sharded = join(tmp.dir, 'sharded');
  await mkdir(sharded);
  await writeSafetensorsFile(join(sharded, 's1.safetensors'), [{ name: 'a', dtype: 'F32', shape: [4], data: new Float32Array(4) }]);
  await writeSafetensorsFile(join(sharded, 's2.safetensors'), [{ name: 'b', dtype: 'BF16', shape: [2, 2], data: new Uint16Array(4) }]);
  await writeFile(join(sharded, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors', b: 's2.safetensors' } }));
  broken = join(tmp.dir, 'broken.safetensors');
  await writeFile(broken, craft({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4)));
});

/** Runs main() in-process, capturing output. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

function expectOneErrorLine(err: string, ...fragments: string[]): void {
  expect(err.endsWith('\n')).toBe(true);
  expect(err.trimEnd().split('\n')).toHaveLength(1);
  expect(err.startsWith('webq: ')).toBe(true);
  expect(err).not.toMatch(/\n\s+at /);
  for (const f of fragments) expect(err).toContain(f);
}

describe('webq info (in-process)', () => {
  it('prints a table with sizes, metadata and totals', async () => {
    const { code, out, err } = await cli('info', model);
    expect(err).toBe('');
    expect(code).toBe(0);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^NAME\s+DTYPE\s+SHAPE\s+SIZE$/);
    expect(out).toMatch(/embed\.weight\s+F16\s+\[32, 16\]\s+1\.00 KiB/);
    expect(out).toMatch(/norm\.weight\s+F32\s+\[16\]\s+64 B/);
    expect(out).toMatch(/step\s+I64\s+\[\]\s+8 B/);
    expect(out).toContain('metadata:\n  format: pt\n  note: "line1\\nline2"\n');
    expect(out).toContain('total: 3 tensors, 529 parameters (529), 1.07 KiB (1,096 bytes)');
  });

  it('prints JSON with --json', async () => {
    const { code, out } = await cli('info', '--json', model);
    expect(code).toBe(0);
    const j = JSON.parse(out);
    expect(j.source).toBe(model);
    expect(j.sharded).toBe(false);
    expect(j.metadata).toEqual({ format: 'pt', note: 'line1\nline2' });
    expect(j.tensors).toContainEqual({ name: 'embed.weight', dtype: 'F16', shape: [32, 16], bytes: 1024 });
    expect(j.totals).toEqual({ tensors: 3, parameters: 529, bytes: 1096 });
  });

  it('lists shards for a sharded folder', async () => {
    const { code, out } = await cli('info', sharded);
    expect(code).toBe(0);
    expect(out.split('\n')[0]).toMatch(/SIZE\s+SHARD$/);
    expect(out).toMatch(/b\s+BF16\s+\[2, 2\]\s+8 B\s+s2\.safetensors/);
    expect(out).toContain('shards: 2 (s1.safetensors, s2.safetensors)');
    const j = JSON.parse((await cli('info', sharded, '--json')).out);
    expect(j.sharded).toBe(true);
    expect(j.shards).toEqual(['s1.safetensors', 's2.safetensors']);
  });

  it('reports errors as one line and exit code 1', async () => {
    const bad = await cli('info', broken);
    expect(bad.code).toBe(1);
    expect(bad.out).toBe('');
    expectOneErrorLine(bad.err, broken, '"w"');
    expectOneErrorLine((await cli('info', join(tmp.dir, 'nope.safetensors'))).err, 'nope.safetensors', 'no such file');
    expectOneErrorLine((await cli('info')).err, 'expected one file');
    expectOneErrorLine((await cli('info', 'a', 'b')).err, 'got 2');
    expectOneErrorLine((await cli('info', '--bogus', model)).err, '--bogus');
    expectOneErrorLine((await cli('frobnicate')).err, 'unknown command "frobnicate"');
    expect((await cli('frobnicate')).code).toBe(1);
  });

  it('prints usage for --help; with no command, on stderr with exit code 2', async () => {
    for (const argv of [['--help'], ['-h']]) {
      const r = await cli(...argv);
      expect(r.code).toBe(0);
      expect(r.out).toContain('usage: webq <command>');
      expect(r.out).toContain('info');
    }
    const none = await cli();
    expect(none).toMatchObject({ code: 2, out: '' });
    expect(none.err).toContain('usage: webq <command>');
    const r = await cli('info', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toContain('usage: webq info');
  });
});

describe('bin/webq.js (spawned)', () => {
  // The bin runs the compiled dist/: build it exactly as `npm run build` (and `npm install`) does.
  let buildDir: string;
  beforeAll(async () => {
    buildDir = await mkdtemp(join(tmpdir(), 'webq-cli-build-'));
    await run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json')], { cwd: repo });
  }, 120_000);
  afterAll(() => rm(buildDir, { recursive: true, force: true }));

  const bin = (...args: string[]) =>
    run(process.execPath, [join(repo, 'bin/webq.js'), ...args], { cwd: repo }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  it('prints the table and JSON', async () => {
    const r = await bin('info', model);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/embed\.weight\s+F16\s+\[32, 16\]/);
    expect(r.stdout).toContain('total: 3 tensors');
    const j = await bin('info', '--json', model);
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout).totals.tensors).toBe(3);
  });

  it('exits 1 with one stderr line and no stack for a bad file', async () => {
    const r = await bin('info', broken);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expectOneErrorLine(r.stderr, broken);
  });

  it('doctor reports the adapter and checks a kernel on each float path', async () => {
    const r = await bin('doctor', '--json');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
    expect(report.runtime).toBe('node');
    expect(report.checks.map((c: { path: string }) => c.path)).toEqual(report.f16 ? ['f32', 'f16'] : ['f32']);
    for (const c of report.checks) expect(c.ok).toBe(true);
    // lavapipe: fixed 8-wide subgroups, so the subgroup ('cpu') kernel family.
    expect([report.subgroupSize, report.kernels]).toEqual([8, 'cpu']);
  });

  it('prints usage on stderr and exits 2 with no arguments', async () => {
    const r = await bin();
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('usage: webq');
  });

  it('hints at `npm run build` when dist is missing', async () => {
    const copy = join(buildDir, 'pkg');
    await mkdir(join(copy, 'bin'), { recursive: true });
    await writeFile(join(copy, 'package.json'), '{"type":"module"}');
    await copyFile(join(repo, 'bin/webq.js'), join(copy, 'bin/webq.js'));
    const r = await run(process.execPath, [join(copy, 'bin/webq.js'), 'info', model]).catch((e: { code: number; stderr: string }) => e);
    expect(r).toMatchObject({ code: 1 });
    expectOneErrorLine((r as { stderr: string }).stderr, 'npm run build');
  });
});
