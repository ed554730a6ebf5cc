// `webq embed` and `webq classify`: in-process through main(), and once through the built bin,
// on tiny BERT folders and on a fake hub (WEBQ_HUB_URL) with the download cache.
import { execFile } from 'node:child_process';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BertModel, DEFAULT_EMBED_MODEL } from '../../src/api/bert.ts';
import { formatBytes } from '../../src/cli/info.ts';
import { main, type CliIO } from '../../src/cli/main.ts';
import { looksLikeModel } from '../../src/cli/model-args.ts';
import { DownloadBar } from '../../src/cli/progress.ts';
import { hubKeySegment } from '../../src/io/hub/hub.ts';
import { serveFakeHub, type FakeHub } from '../helpers/fake-hub.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const tmp = useTempDir('webq-cli-embed-');
const TEXTS = ['hello world', 'a second text'];
const H = 32;

let plain: string;
let classifier: string;
let hub: FakeHub;
const repos = new Map<string, string>();

beforeAll(async () => {
  plain = (await writeTinyBert(join(tmp.dir, 'plain'))).dir;
  classifier = (await writeTinyBert(join(tmp.dir, 'cls'), { prefix: 'bert.', labels: ['neg', 'neutral', 'pos'], seed: 99 })).dir;
  repos.set('webq/tiny-bert', plain).set(DEFAULT_EMBED_MODEL, plain);
  hub = await serveFakeHub(repos);
});
afterAll(() => hub?.close());

async function cli(argv: string[], extra: Partial<CliIO> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), ...extra });
  return { code, out, err };
}

function expectOneErrorLine(err: string, ...fragments: string[]): void {
  expect(err.endsWith('\n')).toBe(true);
  expect(err.trimEnd().split('\n')).toHaveLength(1);
  expect(err.startsWith('webq: ')).toBe(true);
  for (const f of fragments) expect(err).toContain(f);
}

function parseEmbeddings(out: string, rows: number): number[][] {
  const j = JSON.parse(out) as { dims: number; embeddings: number[][] };
  expect(Object.keys(j)).toEqual(['dims', 'embeddings']);
  expect(j.dims).toBe(H);
  expect(j.embeddings).toHaveLength(rows);
  for (const row of j.embeddings) {
    expect(row).toHaveLength(H);
    expect(row.every(Number.isFinite)).toBe(true);
  }
  return j.embeddings;
}

const norm = (v: number[]) => Math.hypot(...v);
const maxDiff = (a: number[][], b: ArrayLike<number>[]) => Math.max(...a.flatMap((row, i) => row.map((x, k) => Math.abs(x - b[i][k]))));

describe('webq embed (in-process)', () => {
  let library: Float32Array[];
  beforeAll(async () => {
    const m = await BertModel.load(plain, { dtype: 'f32' });
    library = await m.embed(TEXTS);
    m.dispose();
  });

  it('prints {"dims", "embeddings"} with --json, equal to BertModel.embed', async () => {
    const r = await cli(['embed', plain, '--json', '--dtype', 'f32', ...TEXTS]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const rows = parseEmbeddings(r.out, 2);
    expect(maxDiff(rows, library)).toBeLessThanOrEqual(1e-6);
    expect(rows[0]).not.toEqual(rows[1]);
  });

  it('--normalize gives unit vectors; --pooling cls differs from mean', async () => {
    const n = parseEmbeddings((await cli(['embed', plain, '--json', '--dtype=f32', '--normalize', ...TEXTS])).out, 2);
    for (const row of n) expect(norm(row)).toBeCloseTo(1, 5);
    const cls = parseEmbeddings((await cli(['embed', '--model', plain, '--json', '--dtype', 'f32', '--pooling', 'cls', ...TEXTS])).out, 2);
    expect(maxDiff(cls, library)).toBeGreaterThan(1e-3);
  });

  it('prints a summary and the cosine matrix without --json', async () => {
    const r = await cli(['embed', plain, '--dtype', 'q4', 'hello world', 'hello there', 'the cat sat']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^model .*: 2 layers, hidden 32, q4 weights \(.+\), int8 activations, mean pooling\n/);
    const f = await cli(['embed', plain, '--dtype', 'q4', '--activations', 'float', 'hello world']);
    expect(f.out).toMatch(/^model .*: 2 layers, hidden 32, q4 weights \(.+\), float activations, mean pooling\n/);
    expect(r.out).toMatch(/\[1\]\s+norm \d+\.\d{4}\s+\[.*, \.\.\.\]\s+"hello world"/);
    expect(r.out).toContain('cosine similarity:');
    const matrix = r.out.split('cosine similarity:\n')[1].trim().split('\n');
    expect(matrix).toHaveLength(4);
    expect(matrix[1]).toMatch(/^\[1\]\s+1\.0000\s+-?\d\.\d{4}\s+-?\d\.\d{4}$/);
    // One text: no matrix.
    expect((await cli(['embed', plain, 'hello'])).out).not.toContain('cosine');
  });

  it('reads texts from stdin for "-" and takes --model / -m', async () => {
    const stdin = async () => 'hello world\n\r\n a second text\r\n';
    const r = await cli(['embed', '-m', plain, '--json', '--dtype', 'f32', '-'], { readStdin: stdin });
    expect(r.err).toBe('');
    const rows = parseEmbeddings(r.out, 2);
    // " a second text" keeps its leading space; the tokenizer strips it.
    expect(maxDiff(rows, library)).toBeLessThanOrEqual(1e-6);
  });

  it('tells a model argument from a text', async () => {
    expect(await looksLikeModel(plain)).toBe(true);
    expect(await looksLikeModel('org/name')).toBe(true);
    expect(await looksLikeModel('org/name@v1.0')).toBe(true);
    expect(await looksLikeModel('https://example.com/m/')).toBe(true);
    expect(await looksLikeModel('./not-there')).toBe(true);
    expect(await looksLikeModel('hello world')).toBe(false);
    expect(await looksLikeModel('hello')).toBe(false);
    expect(await looksLikeModel('a/b c')).toBe(false);
  });

  it('uses the default model, from the hub, when the first argument is a text', async () => {
    vi.stubEnv('WEBQ_HUB_URL', hub.url);
    vi.stubEnv('WEBQ_CACHE_DIR', join(tmp.dir, 'cache-default'));
    try {
      const r = await cli(['embed', '--json', '--dtype', 'f32', ...TEXTS]);
      expect(r.code).toBe(0);
      expect(maxDiff(parseEmbeddings(r.out, 2), library)).toBeLessThanOrEqual(1e-6);
      // Not a TTY: one line per downloaded file.
      expect(r.err).toContain('downloaded model.safetensors (');
      expect(r.err).toContain('downloaded config.json (');
      expect(r.err).not.toContain('\r');
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('reports errors as one line and exit code 1', async () => {
    const missing = join(tmp.dir, 'no-such-model');
    const m = await cli(['embed', missing, 'hello']);
    expect(m.code).toBe(1);
    expect(m.out).toBe('');
    expectOneErrorLine(m.err, missing);
    expectOneErrorLine((await cli(['embed', plain, '--dtype', 'q3', 'hello'])).err, '"q3"', 'f32, f16, q8, q4, w8a8, w4a8');
    expectOneErrorLine((await cli(['embed', plain, '--activations', 'f16', 'hello'])).err, '--activations "f16": expected float (weight-only) or int8');
    expectOneErrorLine((await cli(['classify', plain, '--activations', 'x', 'hello'])).err, '--activations "x"');
    expectOneErrorLine((await cli(['embed', plain, '--dtype', 'f32', '--activations', 'int8', 'hello'])).err, "dtype f32", "runs float activations by definition, not 'int8'");
    expectOneErrorLine((await cli(['embed', plain])).err, 'no texts', plain, '--model');
    expectOneErrorLine((await cli(['embed'])).err, 'no texts');
    expectOneErrorLine((await cli(['embed', plain, '--pooling', 'max', 'x'])).err, '--pooling "max"');
    expectOneErrorLine((await cli(['embed', plain, '--bogus', 'x'])).err, '"--bogus"');
    expectOneErrorLine((await cli(['embed', plain, '--dtype'])).err, '--dtype needs a value');
    expect((await cli(['embed', plain, '--dtype', 'q3', 'x'])).code).toBe(1);
  });

  it('prints usage for --help', async () => {
    const r = await cli(['embed', '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('usage: webq embed [<model>]');
    expect(r.out).toContain(DEFAULT_EMBED_MODEL);
    expect((await cli(['--help'])).out).toMatch(/embed\s+embed texts/);
  });
});

describe('webq classify (in-process)', () => {
  it('prints the top label and score per text; --json has every score', async () => {
    const r = await cli(['classify', classifier, '--dtype', 'f32', '--json', ...TEXTS]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.out) as { text: string; label: string; score: number; scores: { label: string; score: number }[] }[];
    expect(rows.map((x) => x.text)).toEqual(TEXTS);
    for (const row of rows) {
      expect(['neg', 'neutral', 'pos']).toContain(row.label);
      expect(row.scores.map((s) => s.label).sort()).toEqual(['neg', 'neutral', 'pos']);
      expect(row.scores[0]).toEqual({ label: row.label, score: row.score });
      expect(row.scores.reduce((s, x) => s + x.score, 0)).toBeCloseTo(1, 5);
    }
    const text = await cli(['classify', classifier, '--dtype', 'f32', ...TEXTS]);
    expect(text.out.trimEnd().split('\n')).toEqual(rows.map((x) => expect.stringMatching(new RegExp(`^${x.label}\\s+${x.score.toFixed(4)}\\s+"${x.text}"$`))));
  });

  it('needs a classifier checkpoint, a model and texts', async () => {
    const r = await cli(['classify', plain, 'hello']);
    expect(r.code).toBe(1);
    expectOneErrorLine(r.err, 'BertForSequenceClassification');
    expectOneErrorLine((await cli(['classify'])).err, 'expected a model and texts');
    expectOneErrorLine((await cli(['classify', classifier])).err, 'no texts');
    expectOneErrorLine((await cli(['classify', classifier, '--dtype', 'int3', 'x'])).err, '"int3"');
  });
});

describe('download progress', () => {
  const events = [
    { file: 'config.json', loaded: 0, total: 600 },
    { file: 'config.json', loaded: 600, total: 600 },
    { file: 'model.safetensors', loaded: 0, total: 4096 },
    { file: 'model.safetensors', loaded: 4096, total: 4096 },
    { file: 'vocab.txt', loaded: 0 },
    { file: 'vocab.txt', loaded: 2048 },
  ];
  it('prints one line per file when stderr is not a terminal', () => {
    let err = '';
    const bar = new DownloadBar({ stdout: () => {}, stderr: (t) => void (err += t) });
    for (const e of events) bar.onProgress(e);
    bar.finish(true);
    expect(err).toBe('downloaded config.json (600 B)\ndownloaded model.safetensors (4.00 KiB)\ndownloaded vocab.txt (2.00 KiB)\n');
  });
  it('draws a bar in place on a terminal', () => {
    let err = '';
    const bar = new DownloadBar({ stdout: () => {}, stderr: (t) => void (err += t), stderrIsTTY: true });
    bar.onProgress({ file: 'model.safetensors', loaded: 1024, total: 4096 });
    expect(err).toBe('\r\x1b[Kmodel.safetensors  [######------------------]  25%  1.00 KiB / 4.00 KiB');
    bar.onProgress({ file: 'model.safetensors', loaded: 4096, total: 4096 });
    expect(err.endsWith('\r\x1b[Kdownloaded model.safetensors (4.00 KiB)\n')).toBe(true);
  });
});

describe('bin/webq.js embed (spawned)', () => {
  beforeAll(async () => {
    await run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json')], { cwd: repo });
  }, 120_000);

  const bin = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [join(repo, 'bin/webq.js'), ...args], { cwd: repo, env: { ...process.env, ...env } }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );
  // Dawn prints "Warning: ... artificially reduced ..." to stderr when it opens a device; that is
  // the native library talking, not webq, so it is left out when counting webq's lines.
  const webqLines = (stderr: string) => stderr.split('\n').filter((l) => l !== '' && !l.startsWith('Warning: '));

  it('embeds a local folder: JSON on stdout', async () => {
    const r = await bin(['embed', plain, '--json', '--dtype', 'f32', ...TEXTS]);
    expect(webqLines(r.stderr)).toEqual([]);
    expect(r.code).toBe(0);
    parseEmbeddings(r.stdout, 2);
  });

  it('embeds a hub id through WEBQ_HUB_URL into WEBQ_CACHE_DIR', async () => {
    const cacheDir = join(tmp.dir, 'cache-bin');
    await mkdir(cacheDir);
    const env = { WEBQ_HUB_URL: hub.url, WEBQ_CACHE_DIR: cacheDir };
    const r = await bin(['embed', 'webq/tiny-bert', '--json', '--dtype', 'f32', '--normalize', ...TEXTS], env);
    expect(r.code).toBe(0);
    for (const row of parseEmbeddings(r.stdout, 2)) expect(norm(row)).toBeCloseTo(1, 5);
    const size = (await stat(join(plain, 'model.safetensors'))).size;
    expect(webqLines(r.stderr)).toContain(`downloaded model.safetensors (${formatBytes(size)})`);
    const cached = (await readdir(join(cacheDir, 'hubs', hubKeySegment(hub.url), 'webq', 'tiny-bert', 'main'))).sort();
    expect(cached).toEqual(['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']);
  });

  it('exits 1 with one webq line for a missing folder, an unknown dtype and no texts', async () => {
    const missing = join(tmp.dir, 'missing');
    for (const [args, fragment] of [
      [['embed', missing, 'hello'], missing],
      [['embed', plain, '--dtype', 'q3', 'hello'], '"q3"'],
      [['embed', plain], 'no texts'],
      [['classify', plain, 'hello'], 'BertForSequenceClassification'],
    ] as const) {
      const r = await bin([...args]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      const lines = webqLines(r.stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^webq: /);
      expect(lines[0]).toContain(fragment);
    }
  });
});
