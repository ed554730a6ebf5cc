// What `npm pack` ships, packed as a fresh clone would be (scripts/pack.mjs: a clean copy of the
// sources whose "prepare" builds dist/): the built library, the CLI, the browser bundle, shaders and
// sources, and nothing else (no tests, benchmarks, demo, models, caches or tarballs). The tarball
// installs without running anything that downloads: webq has no install scripts and neither do its
// dependencies, but for Dawn's macOS-only postinstall, which touches no network.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/browser.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const run = promisify(execFile);
const tmp = useTempDir('webq-package-pack-');

interface PackReport {
  tarball: string;
  size: number;
  unpackedSize: number;
  files: { path: string; size: number }[];
}
interface PackageJson {
  name: string;
  main?: string;
  types?: string;
  bin?: Record<string, string>;
  exports?: Record<string, string | Record<string, string>>;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
}

let report: PackReport;
let paths: string[];
let pkg: PackageJson;
let installed: string; // the tarball unpacked as node_modules/webq of a consumer

beforeAll(async () => {
  const { stdout } = await run(process.execPath, [join(ROOT, 'scripts/pack.mjs'), join(tmp.dir, 'out'), '--json'], { cwd: ROOT, maxBuffer: 64 << 20 });
  report = JSON.parse(stdout) as PackReport;
  paths = report.files.map((f) => f.path).sort();
  console.log(`${report.tarball.split('/').pop()}: ${report.files.length} files, ${(report.size / 1024).toFixed(0)} KiB packed, ${(report.unpackedSize / 1024).toFixed(0)} KiB unpacked`);
  installed = join(tmp.dir, 'consumer', 'node_modules', 'webq');
  await mkdir(installed, { recursive: true });
  await run('tar', ['-xzf', report.tarball, '-C', installed, '--strip-components=1']);
  pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as PackageJson;
  // Its dependencies as an install would place them: the ones this checkout already has.
  for (const dep of Object.keys(pkg.dependencies ?? {})) {
    await mkdir(dirname(join(tmp.dir, 'consumer', 'node_modules', dep)), { recursive: true });
    await symlink(join(ROOT, 'node_modules', dep), join(tmp.dir, 'consumer', 'node_modules', dep), 'dir');
  }
}, 180_000);

describe('npm pack', () => {
  it('ships the build, the CLI, the bundle, shaders and sources, and nothing else', () => {
    const top = new Set(paths.map((p) => p.split('/')[0]));
    expect([...top].filter((t) => !['package.json', 'README.md', 'LICENSE', 'LICENSE.md', 'bin', 'dist', 'shaders', 'src'].includes(t))).toEqual([]);
    for (const p of ['package.json', 'README.md', 'bin/webq.js', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/webq.browser.js', 'src/index.ts']) {
      expect(paths, p).toContain(p);
    }
    const shaders = readdirSync(join(ROOT, 'shaders')).filter((f) => f.endsWith('.wgsl'));
    expect(paths.filter((p) => p.startsWith('shaders/'))).toEqual(shaders.map((f) => `shaders/${f}`).sort());
    // No test data, caches, logs or tarballs anywhere in it.
    const stray = paths.filter((p) => /(^|\/)(test|tests|__tests__|bench|node_modules|\.[^/]+)\/|\.(tgz|log|safetensors|gguf|onnx)$|(^|\/)tokenizer(_config)?\.json$/.test(p));
    expect(stray).toEqual([]);
    // 8.4 MiB before the constraint engine (dist/webq.xgrammar.js, 1.1 MiB, loaded on first use) came.
    expect(report.unpackedSize).toBeLessThan(12 << 20);
  });

  it('has no build output without a source (a stale dist/ file)', () => {
    const sources = new Set(paths.filter((p) => p.startsWith('src/') && p.endsWith('.ts')).map((p) => p.slice(4, -3)));
    const outputs = paths.filter((p) => p.startsWith('dist/') && p.endsWith('.js') && !['dist/webq.browser.js', 'dist/webq.worker.js', 'dist/webq.xgrammar.js'].includes(p));
    expect(outputs.filter((p) => !sources.has(p.slice(5, -3)))).toEqual([]);
  });

  it('points main, types, exports and bin at files it ships', () => {
    const targets = [pkg.main, pkg.types, ...Object.values(pkg.bin ?? {})];
    for (const e of Object.values(pkg.exports ?? {})) targets.push(...(typeof e === 'string' ? [e] : Object.values(e)));
    for (const t of targets) expect(paths, String(t)).toContain(String(t).replace(/^\.\//, ''));
    const dot = pkg.exports?.['.'] as Record<string, string>;
    expect(Object.keys(dot)[0]).toBe('types'); // resolvers take the first matching condition
    expect(dot.browser).toBe('./dist/webq.browser.js');
  });

  it('resolves to the browser bundle under the browser condition (as bundlers for the web do), else to the Node build', async () => {
    const resolveWebq = async (...flags: string[]) =>
      (await run(process.execPath, [...flags, '--input-type=module', '-e', "process.stdout.write(import.meta.resolve('webq'))"], { cwd: join(tmp.dir, 'consumer') })).stdout;
    expect(await resolveWebq('--conditions=browser')).toBe(pathToFileURL(join(installed, 'dist/webq.browser.js')).href);
    expect(await resolveWebq()).toBe(pathToFileURL(join(installed, 'dist/index.js')).href);
  });

  it('installs without install scripts or downloads', () => {
    expect(Object.keys(pkg.scripts ?? {}).filter((s) => /^(pre|post)?install$/.test(s))).toEqual([]);
    // Every production dependency, transitively, as npm would run its scripts (or node-gyp).
    const found = new Map<string, string[]>();
    const visit = (name: string, from: string) => {
      let dir = from;
      while (!existsSync(join(dir, 'node_modules', name, 'package.json'))) {
        if (dirname(dir) === dir) throw new Error(`${name} is not installed`);
        dir = dirname(dir);
      }
      const at = join(dir, 'node_modules', name);
      if (found.has(at)) return;
      const p = JSON.parse(readFileSync(join(at, 'package.json'), 'utf8')) as PackageJson;
      const scripts = Object.entries(p.scripts ?? {}).filter(([s]) => /^(pre|post)?install$/.test(s)).map(([s, c]) => `${s}: ${c}`);
      if (existsSync(join(at, 'binding.gyp'))) scripts.push('node-gyp rebuild');
      found.set(at, scripts.map((s) => `${p.name} ${s}`));
      for (const d of Object.keys(p.dependencies ?? {})) visit(d, at);
    };
    for (const d of Object.keys(pkg.dependencies ?? {})) visit(d, ROOT);
    expect([...found.values()].flat()).toEqual(['webgpu postinstall: node build/postinstall.js']);
    // Dawn ships its binaries in the package; the postinstall only clears macOS's quarantine flag.
    const post = readFileSync(join(ROOT, 'node_modules/webgpu/build/postinstall.js'), 'utf8');
    expect(post).toContain('com.apple.quarantine');
    expect(post).not.toMatch(/https?:|fetch\(|download|require\(['"]https?['"]\)|from ['"](node:)?https?['"]/i);
  });

  it('runs from the unpacked tarball: the CLI, the Node entry and the browser bundle with the same exports', async () => {
    const usage = await run(process.execPath, [join(installed, 'bin/webq.js'), '--help'], { cwd: join(tmp.dir, 'consumer') });
    expect(usage.stdout).toContain('usage: webq');
    const node = (await import(pathToFileURL(join(installed, 'dist/index.js')).href)) as Record<string, unknown>;
    const browser = (await import(pathToFileURL(join(installed, 'dist/webq.browser.js')).href)) as Record<string, unknown>;
    for (const name of ['BertModel', 'LlmModel', 'GpuContext', 'cosineSimilarity', 'WebqError']) expect(typeof node[name], name).toBe('function');
    expect(Object.keys(browser).sort()).toEqual(Object.keys(node).sort());
  });

  it('leaves no tarball in the working tree', () => {
    expect(readdirSync(ROOT).filter((f) => f.endsWith('.tgz'))).toEqual([]);
  });
});
