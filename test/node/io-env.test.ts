// src/env.ts: the runtime and its environment, for io/ and gpu/ alike (io/ imports nothing from
// gpu/); Deno without --allow-env says once that WEBQ_HUB_URL and the cache folder are unreadable.
import { spawnSync } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { detectRuntime, envFlag, getEnv } from '../../src/env.ts';
import * as gpuEnv from '../../src/gpu/env.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const repo = resolve(import.meta.dirname, '../..');
const tmp = useTempDir('webq-io-env-');
afterEach(() => vi.unstubAllEnvs());

describe('env module', () => {
  it('io/ does not import gpu/', async () => {
    const dir = join(repo, 'src', 'io');
    const offenders: string[] = [];
    for (const f of await readdir(dir)) {
      const text = await readFile(join(dir, f), 'utf8');
      for (const line of text.split('\n')) if (/from '\.\.\/gpu/.test(line)) offenders.push(`${f}: ${line}`);
    }
    expect(offenders).toEqual([]);
    expect(gpuEnv.detectRuntime).toBe(detectRuntime);
    expect(gpuEnv.getEnv).toBe(getEnv);
  });

  it('reads variables and on/off flags in Node', () => {
    expect(detectRuntime()).toBe('node');
    vi.stubEnv('WEBQ_TEST_VAR', 'x');
    expect(getEnv('WEBQ_TEST_VAR')).toBe('x');
    for (const [v, on] of [['1', true], ['TRUE', true], ['yes', true], ['0', false], ['', false], ['off', false]] as const) {
      vi.stubEnv('WEBQ_OFFLINE', v);
      expect(envFlag('WEBQ_OFFLINE')).toBe(on);
    }
  });

  it('Deno without --allow-env warns once and uses the defaults; with it, reads WEBQ_HUB_URL', async () => {
    const script = join(tmp.dir, 'env-check.ts');
    const src = (p: string) => pathToFileURL(join(repo, 'src', p)).href;
    await writeFile(
      script,
      `import { hubBaseUrl } from '${src('io/hub/hub.ts')}';\n` +
        `import { defaultCacheDir } from '${src('io/hub/cache.ts')}';\n` +
        `console.log(hubBaseUrl('a/b', 'main').href, String(defaultCacheDir()), hubBaseUrl('c/d', 'main').origin);\n`,
    );
    const deno = (...flags: string[]) =>
      spawnSync(process.execPath, [join(repo, 'node_modules/deno/bin.cjs'), 'run', '--no-prompt', ...flags, script], {
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1', WEBQ_HUB_URL: 'http://hub.test', WEBQ_CACHE_DIR: '/tmp/webq-cache-test' },
        timeout: 60_000,
      });
    const denied = deno();
    expect(denied.status, denied.stderr).toBe(0);
    expect(denied.stdout.trim()).toBe('https://huggingface.co/a/b/resolve/main/ undefined https://huggingface.co');
    const warnings = denied.stderr.split('\n').filter((l) => l.startsWith('webq:'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('Deno refused to read the environment variable WEBQ_HUB_URL (no --allow-env)');
    expect(warnings[0]).toContain('the cache folder (WEBQ_CACHE_DIR, HOME: nothing is cached on disk)');

    const allowed = deno('--allow-env');
    expect(allowed.status, allowed.stderr).toBe(0);
    expect(allowed.stdout.trim()).toBe('http://hub.test/a/b/resolve/main/ /tmp/webq-cache-test http://hub.test');
    expect(allowed.stderr).not.toContain('webq:');
  });
});
