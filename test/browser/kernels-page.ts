// Runs the shared kernel cases in the browser on whatever adapter it has (SwiftShader in headless
// Chromium: no shader-f16, so the f32 path) and publishes the results for the puppeteer test.
import { GpuContext } from '../../src/gpu/context.ts';
import { runKernelCases } from '../kernels/cases.ts';
import { runQuantCases } from '../kernels/qcases.ts';

declare global {
  interface Window {
    __webq?:
      | {
          adapter: string;
          f16: boolean;
          dot4I8: boolean;
          /** The kernel family picked by default, and what asking for 'cpu' kernels gave. */
          kernels: string;
          subgroupSize: number;
          cpuKernels: string;
          results: { precision: string; name: string; ok: boolean; detail: string }[];
        }
      | { error: string };
  }
}

async function main(): Promise<void> {
  const ctx = await GpuContext.create();
  const results: { precision: string; name: string; ok: boolean; detail: string }[] = [];
  try {
    const precisions = ctx.caps.f16 ? (['f32', 'f16'] as const) : (['f32'] as const);
    for (const p of precisions) {
      for (const { name, result } of [...(await runKernelCases(ctx, p)), ...(await runQuantCases(ctx, p))]) {
        results.push({ precision: p, name, ok: result.ok, detail: result.mismatches.join('; ') });
      }
    }
    let cpuKernels: string;
    try {
      const c = await GpuContext.create({ kernels: 'cpu' });
      cpuKernels = `ok: ${c.caps.kernels}`;
      c.dispose();
    } catch (e) {
      cpuKernels = `${(e as Error).name}: ${(e as Error).message}`;
    }
    window.__webq = { adapter: ctx.caps.adapter, f16: ctx.caps.f16, dot4I8: ctx.caps.dot4I8, kernels: ctx.caps.kernels, subgroupSize: ctx.caps.subgroupSize, cpuKernels, results };
  } finally {
    ctx.dispose();
  }
  document.getElementById('log')!.textContent = `${results.filter((r) => r.ok).length}/${results.length} passed`;
}

main().catch((e: Error) => {
  window.__webq = { error: `${e.name}: ${e.message}` };
});
