// `npm run demo` (vite demo): the page lives in demo/ but imports webq from ../src, so the dev
// server must be allowed to serve the whole repository, not only its root folder.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const repo = fileURLToPath(new URL('..', import.meta.url));

export default defineConfig({
  server: { fs: { allow: [repo] } },
  // webq's modules use top-level await; WebGPU browsers all run ES2022.
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true },
});
