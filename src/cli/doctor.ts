/**
 * `webq doctor`: what WebGPU this machine gives webq (runtime, adapter, features, limits), then a
 * small matmul on the GPU checked against the CPU on each float path the device has.
 */
import { GpuContext } from '../gpu/context.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../io/safetensors/half.ts';
import { matmul } from '../ops/matmul.ts';
import { refMatmul } from '../reference/ops.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';

function seeded(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

export const doctorCommand: Command = {
  summary: 'show the WebGPU adapter, features and limits, and check a kernel against the CPU',
  usage:
    'usage: webq doctor [--json]\n\nPrints the runtime, adapter, features and limits webq uses, the Dawn toggles it set (Node: robustness off unless `webq --robustness` or WEBQ_ROBUSTNESS=1), then runs a 67x45x129 matmul on each float path (f32, and f16 when the device has shader-f16) and compares it with the CPU.',
  async run(args, io) {
    const json = args.includes('--json');
    const unknown = args.filter((a) => a !== '--json');
    if (unknown.length) throw new UsageError(`doctor: unknown argument ${JSON.stringify(unknown[0])}`);
    const ctx = await GpuContext.create();
    try {
      const [M, N, K] = [67, 45, 129];
      const checks: { path: string; maxAbsError: number; ok: boolean }[] = [];
      for (const p of ctx.caps.f16 ? (['f32', 'f16'] as const) : (['f32'] as const)) {
        let a = seeded(M * K, 1), b = seeded(N * K, 2);
        if (p === 'f16') [a, b] = [f16ArrayToF32(f32ArrayToF16(a)), f16ArrayToF32(f32ArrayToF16(b))];
        const ta = ctx.uploadFloat(a, [M, K], p), tb = ctx.uploadFloat(b, [N, K], p);
        const rec = ctx.record();
        const tc = matmul(ctx, rec, ta, tb);
        await rec.submit();
        const got = await ctx.readFloat(tc);
        const ref = refMatmul(a, b, 1, M, N, K, { transB: true, bShared: true });
        let maxAbs = 0;
        for (let i = 0; i < ref.length; i++) maxAbs = Math.max(maxAbs, Math.abs(got[i] - ref[i]));
        const tol = p === 'f32' ? 1e-4 : 5e-2; // |values| ~ 6; f16 stores ~3 significant digits
        checks.push({ path: p, maxAbsError: maxAbs, ok: maxAbs <= tol });
        ta.dispose(); tb.dispose(); tc.dispose();
      }
      const report = { ...ctx.caps, checks };
      if (json) io.stdout(`${JSON.stringify(report, null, 2)}\n`);
      else {
        const c = ctx.caps;
        const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;
        io.stdout(
          [
            `runtime      ${c.runtime}`,
            `adapter      ${c.adapter}${c.software ? ' (software)' : ''}`,
            `features     shader-f16=${c.f16} subgroups=${c.subgroups}${c.subgroupSize ? ` (size ${c.subgroupSize})` : ''} timestamp-query=${c.timestamps} dot4I8Packed=${c.dot4I8}`,
            `kernels      ${c.kernels}${c.kernels === 'cpu' ? ' (subgroup kernels for CPU-emulated adapters)' : ''}`,
            `robustness   ${c.robustness === null ? "the runtime's own (not settable here)" : c.robustness ? 'on (Dawn clamps every buffer access)' : 'off (kernels guard their own bounds)'}`,
            ...(c.dawnToggles ? [`dawn toggles enabled: ${c.dawnToggles.enabled.join(', ') || 'none'}; disabled: ${c.dawnToggles.disabled.join(', ') || 'none'}`] : []),
            `limits       storage binding ${mib(c.maxStorageBufferBindingSize)}, buffer ${mib(c.maxBufferSize)}, workgroup storage ${c.maxComputeWorkgroupStorageSize} B, ${c.maxComputeInvocationsPerWorkgroup} invocations`,
            ...checks.map((k) => `matmul ${k.path.padEnd(5)} ${k.ok ? 'ok' : 'MISMATCH'} (max |error| ${k.maxAbsError.toExponential(2)})`),
          ].join('\n') + '\n',
        );
      }
      return checks.every((k) => k.ok) ? 0 : 1;
    } finally {
      ctx.dispose();
    }
  },
};
