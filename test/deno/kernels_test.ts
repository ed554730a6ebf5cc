/// <reference lib="deno.ns" />
// Runs the shared kernel cases on Deno's built-in WebGPU (wgpu), both precisions when the adapter
// has shader-f16. `npm test` runs this through test/node/deno.test.ts.
import assert from 'node:assert/strict';
import { GpuContext } from '../../src/gpu/context.ts';
import { runKernelCases } from '../kernels/cases.ts';
import { runQuantCases } from '../kernels/qcases.ts';

Deno.test('kernels and quantized matmuls match the CPU reference on Deno WebGPU', async () => {
  const ctx = await GpuContext.create();
  try {
    assert.equal(ctx.caps.runtime, 'deno');
    const precisions = ctx.caps.f16 ? (['f32', 'f16'] as const) : (['f32'] as const);
    const failed: string[] = [];
    let count = 0;
    for (const p of precisions) {
      for (const { name, result } of [...(await runKernelCases(ctx, p)), ...(await runQuantCases(ctx, p))]) {
        count++;
        if (!result.ok) failed.push(`${p} ${name}: ${result.mismatches.join('; ')}`);
      }
    }
    console.log(`deno: ${count} kernel cases on ${ctx.caps.adapter} (${precisions.join(', ')})`);
    assert.deepEqual(failed, [], `kernel mismatches:\n${failed.join('\n')}`);
    assert.ok(count >= 150, `only ${count} cases ran`);
  } finally {
    ctx.dispose();
  }
});
