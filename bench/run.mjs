#!/usr/bin/env node
// Benchmark runner: `node bench/run.mjs <suite> [args...]` runs bench/<suite>.ts, which exports
// `run(args, io) => Promise<number>` (the exit code).
//
// Node 20 cannot run TypeScript, and the suites import src/ (not dist/) so that a benchmark
// always measures the working tree, including ops not exported from the package yet. Vite (a
// devDependency) loads them: its server-side module runner transpiles .ts on the fly, resolves
// the `.ts` import specifiers, and externalizes node_modules (Dawn's native `webgpu` package), the
// same way vitest loads the tests. No extra loader, no build step to forget.
//
// stdout belongs to the suite (e.g. `--json` writes only JSON there); everything else, including
// Vite's own messages, goes to stderr.
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const suites = [...readdirSync(here).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)), 'gpu-check'].sort();
const usage = `usage: npm run bench -- <suite> [options]   (suites: ${suites.join(', ')}; '<suite> --help' for options)\n`;

const [suite, ...args] = process.argv.slice(2);
if (!suite || suite === '--help' || suite === '-h') {
  process.stderr.write(usage);
  process.exit(suite ? 0 : 2);
}
// gpu-check is a shell script (it sets up node, Vulkan and node_modules on a GPU machine before any
// suite runs): hand it the arguments and its exit code.
if (suite === 'gpu-check') {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync('bash', [join(here, '..', 'scripts', 'gpu-check.sh'), ...args], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
if (!/^[a-z][a-z0-9-]*$/.test(suite) || !existsSync(join(here, `${suite}.ts`))) {
  process.stderr.write(`bench: unknown suite ${JSON.stringify(suite)}\n${usage}`);
  process.exit(2);
}

// Lavapipe logs to stderr and wants XDG_RUNTIME_DIR; the test config sets the same.
process.env.XDG_RUNTIME_DIR ??= '/tmp';
// Shaders are bundled into src/gpu/shaders.generated.ts (git-ignored); regenerate it so a fresh
// clone and edited shaders both work. The script only rewrites the file when its content changes.
await import('../scripts/gen-shaders.mjs');

const { createServer, createServerModuleRunner } = await import('vite');
const server = await createServer({
  root,
  configFile: false,
  logLevel: 'warn',
  appType: 'custom',
  // No HTTP server, no websocket, no file watcher: the runner only transforms files once.
  server: { middlewareMode: true, hmr: false, ws: false, watch: null },
  optimizeDeps: { noDiscovery: true, include: [] },
});

let code = 1;
try {
  const runner = createServerModuleRunner(server.environments.ssr, { hmr: false });
  try {
    const mod = await runner.import(join(here, `${suite}.ts`));
    if (typeof mod.run !== 'function') throw new Error(`bench/${suite}.ts does not export run(args, io)`);
    const io = { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) };
    code = await mod.run(args, io);
  } finally {
    await runner.close();
  }
} catch (e) {
  process.stderr.write(`bench ${suite}: ${e?.stack ?? e}\n`);
  code = 1;
} finally {
  await server.close();
}
process.exitCode = typeof code === 'number' ? code : 1;
