// The kernel cases in headless Chromium on SwiftShader: real WGSL through a browser's WebGPU,
// with no shader-f16, so the f32 path that feature detection picks there.
import type { Browser } from 'puppeteer-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, startServer } from '../helpers/browser.ts';

let server: ViteDevServer;
let base: string;
let browser: Browser;

beforeAll(async () => {
  ({ server, base } = await startServer());
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('chromium', () => {
  it('runs every kernel and quantized-matmul case on the browser adapter and matches the CPU reference', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${base}/test/browser/kernels.html`);
    await page.waitForFunction(() => window.__webq !== undefined, { timeout: 240_000 });
    const res = await page.evaluate(() => window.__webq!);
    expect(errors).toEqual([]);
    if ('error' in res) throw new Error(`page failed: ${res.error}`);
    expect(res.adapter.length).toBeGreaterThan(0);
    expect(res.results.length).toBeGreaterThanOrEqual(100);
    const failed = res.results.filter((r) => !r.ok).map((r) => `${r.precision} ${r.name}: ${r.detail}`);
    expect(failed).toEqual([]);
    // SwiftShader has no shader-f16: the run must have taken the f32 path (and only it).
    if (!res.f16) expect(new Set(res.results.map((r) => r.precision))).toEqual(new Set(['f32']));
    // The subgroup kernel family needs one fixed subgroup size from 8 to 64; without it the default
    // is the tiled family and asking for 'cpu' is a clear error, not a broken device.
    if (res.subgroupSize >= 8 && res.subgroupSize <= 64) expect(res.cpuKernels).toBe('ok: cpu');
    else {
      expect(res.kernels).toBe('gpu');
      expect(res.cpuKernels).toMatch(/WebGPUUnavailableError: kernels: 'cpu' needs the subgroups feature with one fixed subgroup size from 8 to 64/);
    }
    console.log(`chromium: ${res.results.length} cases on ${res.adapter}, f16=${res.f16}, dot4I8=${res.dot4I8}, kernels=${res.kernels} (subgroup size ${res.subgroupSize})`);
  }, 300_000);
});
