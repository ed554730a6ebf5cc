// `webq serve` as a separate process (the CLI from src/ through test/helpers/cli-source.mjs),
// driven with curl by a shell script (test/helpers/serve-curl.sh), then stopped with SIGTERM.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';

let dir: string;
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('curl: models, chat (plain and SSE with usage and [DONE]), completions, embeddings, a wrong key, bad requests, health, metrics', async () => {
  expect(spawnSync('curl', ['--version']).status, 'curl must be installed (scripts/setup.sh installs it on Debian)').toBe(0);
  dir = await mkdtemp(join(tmpdir(), 'webq-serve-curl-'));
  const chat = await writeTinyLlama(join(dir, 'chat'), { modelType: 'qwen3', tokenizer: 'qwen3', hidden: 64, layers: 1, maxPositions: 128, seed: 9 });
  await writeTinyBert(join(dir, 'bert'), { seed: 2 });
  const child = spawn(process.execPath, ['test/helpers/cli-source.mjs', 'serve', `tiny=${chat.dir}`, `enc=${join(dir, 'bert')}`, '--port', '0', '--api-key', 'k-123'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (t: string) => {
        err += t;
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
        if (m) resolve(m[1]);
      });
      void exited.then((code) => reject(new Error(`serve exited with ${code}: ${err}`)));
    });
    const script = spawnSync('bash', ['test/helpers/serve-curl.sh', url, 'k-123', 'tiny', 'enc'], { encoding: 'utf8', timeout: 120_000 });
    expect(script.stderr).toBe('');
    expect(script.stdout).toContain('all curl checks passed');
    expect(script.stdout.match(/^ok: /gm)?.length).toBe(12);
    expect(script.status).toBe(0);
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
  expect(err).toMatch(/SIGTERM: finishing requests and shutting down/);
});
