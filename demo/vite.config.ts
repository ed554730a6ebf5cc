// `npm run demo` (vite demo): the pages live in demo/ but import webq from ../src, so the dev
// server must be allowed to serve the whole repository, not only its root folder.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const repo = fileURLToPath(new URL('..', import.meta.url));
const page = (name: string) => fileURLToPath(new URL(name, import.meta.url));

export default defineConfig({
  server: { fs: { allow: [repo] } },
  // webq's modules use top-level await; WebGPU browsers all run ES2022. Two pages: embeddings and chat.
  build: { target: 'es2022', outDir: 'dist', emptyOutDir: true, rolldownOptions: { input: { index: page('index.html'), chat: page('chat.html') } } },
  // The pages run their models in a module worker (src/worker/worker.ts): bundle it as an ES module too.
  worker: { format: 'es' },
});
