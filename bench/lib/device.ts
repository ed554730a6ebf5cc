/**
 * The benchmark's GpuContext: webq's own device, so a benchmark measures what users get. In Node,
 * webq's Dawn device has timestamp quantization off (Dawn otherwise rounds timestamps down to
 * multiples of 65.5 us, a browser defence against timing attacks, coarser than a decode GEMV on a
 * real GPU) and robustness off unless asked for (`robustness`: the A/B mode runs both).
 */
import { GpuContext } from '../../src/gpu/context.ts';

export interface BenchContext {
  ctx: GpuContext;
  /** False where timestamps may be quantized (not webq's own Dawn device). */
  exactTimestamps: boolean;
}

/** `kernels` picks the GEMM family (see Capabilities.kernels); default: the adapter's. `dot4I8: false` emulates dot4I8Packed. */
export async function createBenchContext(opts: { kernels?: 'gpu' | 'cpu'; robustness?: boolean; dot4I8?: boolean; gemvMulti?: 'auto' | 'off' } = {}): Promise<BenchContext> {
  const ctx = await GpuContext.create({ kernels: opts.kernels, robustness: opts.robustness, dot4I8: opts.dot4I8, ...(opts.gemvMulti && { gemv: { multi: opts.gemvMulti } }) });
  return { ctx, exactTimestamps: ctx.caps.dawnToggles?.disabled.includes('timestamp_quantization') ?? false };
}

/**
 * The --ab option of the suites: which device setting to compare: robustness, or gemv-multi (the
 * multi-row decode GEMV for 2..8 rows, DeviceOptions.gemv.multi 'auto' against 'off').
 */
export function parseAb(v: unknown): 'robustness' | 'gemv-multi' | undefined {
  if (v === undefined) return undefined;
  if (v !== 'robustness' && v !== 'gemv-multi') throw new Error(`--ab must be robustness or gemv-multi, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * Runs `fn` inside validation and out-of-memory error scopes and throws what they caught. Without
 * them a GPU-side error (say, a kernel under development that fails to compile) would be
 * uncaptured, which marks the whole device failed and sinks every later case with it.
 */
export async function withErrorScopes<T>(ctx: GpuContext, fn: () => Promise<T>): Promise<T> {
  const gpu = ctx.dev.gpu;
  gpu.pushErrorScope('out-of-memory');
  gpu.pushErrorScope('validation');
  let result: { value: T } | null = null;
  let thrown: unknown = null;
  try {
    result = { value: await fn() };
  } catch (e) {
    thrown = e;
  }
  const errors = (await Promise.all([gpu.popErrorScope(), gpu.popErrorScope()])).filter((e): e is GPUError => e !== null);
  if (errors.length) throw new Error(`GPU error: ${errors.map((e) => e.message.split('\n')[0]).join('; ')}`);
  if (!result) throw thrown;
  return result.value;
}

/** The --kernels option of the suites: undefined (the adapter's default), 'gpu' or 'cpu'. */
export function parseKernels(v: unknown): 'gpu' | 'cpu' | undefined {
  if (v === undefined) return undefined;
  if (v !== 'gpu' && v !== 'cpu') throw new Error(`--kernels must be gpu or cpu, got ${JSON.stringify(v)}`);
  return v;
}
