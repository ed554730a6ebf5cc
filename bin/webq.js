#!/usr/bin/env node
// npm bin for `webq`. The CLI is TypeScript compiled to dist/ by `npm run build`, which npm runs on
// `npm install` through the "prepare" script; this file only finds it and sets the exit code.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);

if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('webq: dist/cli/main.js is missing; run `npm run build` in the webq package first\n');
  process.exitCode = 1;
} else {
  // `webq info big-model | head` closes the pipe early: that is not an error worth a stack trace.
  process.stdout.on('error', (e) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  const { main } = await import(entry.href);
  // exitCode rather than process.exit(): lets piped stdout finish flushing.
  process.exitCode = await main(process.argv.slice(2));
}
