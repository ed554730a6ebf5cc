// A quiet, consistent CLI: no Dawn adapter notices on a normal run's stderr (kept under
// WEBQ_DEBUG), `webq info` on hub ids like the other commands.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DawnNoticeFilter } from '../../src/cli/dawn-notices.ts';
import { main } from '../../src/cli/main.ts';
import { serveFakeHub, type FakeHub } from '../helpers/fake-hub.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const run = promisify(execFile);
const repo = resolve(import.meta.dirname, '../..');
const tmp = useTempDir('webq-cli-quiet-');
const NOTICES = [
  'Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n',
  'Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.\n',
];

let plain: string;
let hub: FakeHub;
const repos = new Map<string, string>();

beforeAll(async () => {
  plain = (await writeTinyBert(join(tmp.dir, 'plain'), { sharded: true })).dir;
  repos.set('webq/tiny', plain);
  hub = await serveFakeHub(repos);
});
afterAll(() => hub?.close());

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t) });
  return { code, out, err };
}

describe('DawnNoticeFilter', () => {
  const text = `downloaded config.json (600 B)\n${NOTICES.join('')}webq: warning: text 1 was cut\n`;
  const want = 'downloaded config.json (600 B)\nwebq: warning: text 1 was cut\n';

  it('drops the two notices however the stream is cut into pieces', () => {
    for (const size of [1, 2, 3, 7, 19, 64, text.length]) {
      const f = new DawnNoticeFilter();
      let out = '';
      for (let i = 0; i < text.length; i += size) out += f.push(text.slice(i, i + size));
      expect(out + f.end(), `pieces of ${size}`).toBe(want);
    }
  });

  it('passes a line drawn in place at once, and keeps every other line', () => {
    const f = new DawnNoticeFilter();
    expect(f.push('\r\x1b[Kmodel.safetensors  [###---]  50%')).toBe('\r\x1b[Kmodel.safetensors  [###---]  50%');
    expect(f.push(NOTICES[0])).toBe('');
    expect(f.push('Warning: something else\n')).toBe('Warning: something else\n');
    expect(f.push('(node:1) Warning: x\nWarn')).toBe('(node:1) Warning: x\n');
    expect(f.end()).toBe('Warn');
  });
});

describe('webq info on a hub id', () => {
  it('reads the headers by range requests, as for a folder; offline, from the cache', async () => {
    vi.stubEnv('WEBQ_HUB_URL', hub.url);
    vi.stubEnv('WEBQ_CACHE_DIR', join(tmp.dir, 'cache'));
    try {
      const local = await cli(['info', plain]);
      expect(local.code).toBe(0);
      const from = hub.log.length;
      const r = await cli(['info', 'webq/tiny']);
      expect(r).toEqual(local);
      const gets = hub.log.slice(from).filter((q) => q.path.endsWith('.safetensors'));
      // HEADs for sizes, then ranged GETs of the headers: no whole download.
      expect(gets.filter((q) => q.method === 'GET').length).toBeGreaterThan(0);
      expect(gets.every((q) => q.method === 'HEAD' || q.range !== undefined)).toBe(true);
      const j = JSON.parse((await cli(['info', '--json', 'webq/tiny@main'])).out);
      expect(j.source).toBe(`${hub.url}/webq/tiny/resolve/main/model.safetensors.index.json`);
      expect(j.shards).toEqual(['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
      expect((await cli(['info', 'webq/tiny', '--revision', 'main'])).out).toBe(local.out);
      expect((await cli(['info', `${hub.url}/plain/tiny/`])).out).toBe(local.out);

      // Nothing was cached, so offline there is nothing to read; after a load, there is.
      const offline = await cli(['info', '--offline', 'webq/tiny']);
      expect(offline.code).toBe(1);
      expect(offline.err).toMatch(/^webq: .*offline mode.*\n$/);
      expect((await cli(['embed', 'webq/tiny', '--json', '--dtype', 'f32', 'hello'])).code).toBe(0);
      const before = hub.log.length;
      expect(await cli(['info', '--offline', 'webq/tiny'])).toEqual(local);
      vi.stubEnv('WEBQ_OFFLINE', '1');
      expect(await cli(['info', 'webq/tiny'])).toEqual(local);
      expect((await cli(['info', `${hub.url}/plain/tiny/`])).err).toMatch(/^webq: .*offline mode/);
      expect(hub.log.length).toBe(before);
      vi.stubEnv('WEBQ_OFFLINE', '');

      const missing = await cli(['info', 'webq/missing']);
      expect(missing.code).toBe(1);
      expect(missing.err).toContain(`${hub.url}/webq/missing/resolve/main/`);
      expect((await cli(['info', plain, '--revision', 'v1'])).err).toContain('--revision is for hub ids');
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe('bin/webq.js (spawned): quiet by default', () => {
  beforeAll(async () => {
    await run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', join(repo, 'tsconfig.build.json')], { cwd: repo });
  }, 120_000);

  const bin = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [join(repo, 'bin/webq.js'), ...args], { cwd: repo, env: { ...process.env, ...env } }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  it('doctor and embed print no Dawn notices; WEBQ_DEBUG shows them', async () => {
    const doctor = await bin(['doctor', '--json']);
    expect(doctor.stderr).toBe('');
    expect(doctor.code).toBe(0);
    const report = JSON.parse(doctor.stdout);
    const embed = await bin(['embed', plain, '--json', '--dtype', 'f32', 'hello world']);
    expect(embed.stderr).toBe('');
    expect(embed.code).toBe(0);
    expect(JSON.parse(embed.stdout).dims).toBe(32);

    const debug = await bin(['doctor'], { WEBQ_DEBUG: '1' });
    expect(debug.code).toBe(0);
    // lavapipe offers 1000000 dynamic buffers: Dawn says it cuts them to 16. Other adapters may say nothing.
    if (/llvmpipe/.test(report.adapter)) for (const n of NOTICES) expect(debug.stderr).toContain(n);
  });

  it('a library script prints the notices; run with --import webq/quiet-dawn it does not, unless WEBQ_DEBUG', async () => {
    // A user's script on the built package (dist/, as npm installs it): a device, its adapter on
    // stdout, a line of its own on stderr and an exit code of its own.
    const app = join(tmp.dir, 'app.mjs');
    await writeFile(app, [
      `import { GpuContext } from ${JSON.stringify(pathToFileURL(join(repo, 'dist/index.js')).href)};`,
      'const ctx = await GpuContext.create();',
      'process.stdout.write(ctx.caps.adapter);',
      "process.stderr.write('app: own line\\n');",
      'ctx.dispose();',
      'process.exitCode = 3;',
    ].join('\n'));
    // From the package folder, so that `webq/quiet-dawn` resolves as it does in a user's project.
    const node = (args: string[], env: Record<string, string> = {}) =>
      run(process.execPath, args, { cwd: repo, env: { ...process.env, WEBQ_DEBUG: '', ...env } }).then(
        ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
      );
    const plainRun = await node([app]);
    expect(plainRun.code).toBe(3);
    const lavapipe = /llvmpipe/.test(plainRun.stdout);
    if (lavapipe) for (const n of NOTICES) expect(plainRun.stderr).toContain(n);

    const quiet = await node(['--import', 'webq/quiet-dawn', app]);
    expect(quiet).toEqual({ code: 3, stdout: plainRun.stdout, stderr: 'app: own line\n' });

    const debug = await node(['--import', 'webq/quiet-dawn', app], { WEBQ_DEBUG: '1' });
    expect(debug.code).toBe(3);
    expect(debug.stdout).toBe(plainRun.stdout);
    expect(debug.stderr).toContain('app: own line\n');
    if (lavapipe) for (const n of NOTICES) expect(debug.stderr).toContain(n);
  });

  it('keeps the exit code and the error line of a failing command', async () => {
    const r = await bin(['embed', plain, '--no-truncate', '--dtype', 'f32', 'hello', '']);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toBe('webq: text 2 of 2 is empty or only whitespace: there is nothing in it to embed; leave it out\n');
  });
});
