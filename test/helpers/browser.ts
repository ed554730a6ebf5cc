/**
 * Headless Chromium (Debian's, through puppeteer-core) against pages that a Vite dev server
 * serves from 127.0.0.1: navigator.gpu exists only in a secure context, and localhost is one.
 */
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import puppeteer, { type Browser } from 'puppeteer-core';
import { createServer, type ViteDevServer } from 'vite';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export function chromiumPath(): string {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter(Boolean) as string[];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`no Chromium found (tried ${candidates.join(', ')}); install it: apt-get install chromium, or set CHROMIUM_PATH`);
  return found;
}

export async function startServer(): Promise<{ server: ViteDevServer; base: string }> {
  const server = await createServer({
    root: ROOT,
    configFile: false,
    logLevel: 'error',
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null },
    optimizeDeps: { noDiscovery: true, include: [] },
  });
  await server.listen();
  const addr = server.httpServer!.address() as AddressInfo;
  return { server, base: `http://127.0.0.1:${addr.port}` };
}

export async function launchChromium(): Promise<Browser> {
  return puppeteer.launch({
    executablePath: chromiumPath(),
    headless: true,
    // Software WebGPU can keep a page's main thread busy for minutes on a loaded CI machine; a
    // protocol call that waits on it should fail by the test's own timeout, not puppeteer's 180 s.
    protocolTimeout: 600_000,
    args: [
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
}
