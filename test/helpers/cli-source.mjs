#!/usr/bin/env node
// Runs the CLI from src/ (no build) in a child process: `node test/helpers/cli-source.mjs <command> ...`.
// For tests that must kill a real process mid-command (crash safety); the module runner is
// bench/run.mjs's, the exit code is main()'s.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
process.env.XDG_RUNTIME_DIR ??= '/tmp';
const { createServer, createServerModuleRunner } = await import('vite');
const server = await createServer({
  root, configFile: false, logLevel: 'warn', appType: 'custom',
  server: { middlewareMode: true, hmr: false, ws: false, watch: null },
  optimizeDeps: { noDiscovery: true, include: [] },
});
let code = 1;
try {
  const runner = createServerModuleRunner(server.environments.ssr, { hmr: false });
  try {
    const { main } = await runner.import(join(root, 'src/cli/main.ts'));
    code = await main(process.argv.slice(2), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) });
  } finally {
    await runner.close();
  }
} finally {
  await server.close();
}
process.exitCode = code;
