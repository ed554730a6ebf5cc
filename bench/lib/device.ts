/**
 * The benchmark's GpuContext. In Node it brings its own Dawn instance, made with timestamp
 * quantization off: Dawn by default rounds timestamps down to multiples of 65.5 us (a browser
 * defence against timing attacks), which is coarser than a decode GEMV on a real GPU. webq's
 * device.ts keeps one default instance per process; the bench never asks it for one, so this is
 * still the only instance in the process.
 */
import { GpuContext } from '../../src/gpu/context.ts';

export interface BenchContext {
  ctx: GpuContext;
  /** False when the default instance had to be used and timestamps may be quantized. */
  exactTimestamps: boolean;
}

// Module scope on purpose: Dawn aborts the process when its instance is collected while a device
// made from it is still in use.
let gpu: GPU | undefined;

/** `kernels` picks the GEMM family (see Capabilities.kernels); default: the adapter's. `dot4I8: false` emulates dot4I8Packed. */
export async function createBenchContext(opts: { kernels?: 'gpu' | 'cpu'; dot4I8?: boolean } = {}): Promise<BenchContext> {
  try {
    const mod = (await import('webgpu')) as { create(flags: string[]): GPU; globals: object };
    // GPUBufferUsage, GPUMapMode, ... are globals in browsers; Dawn ships them separately.
    for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    gpu ??= mod.create(['disable-dawn-features=timestamp_quantization']);
  } catch {
    gpu = undefined; // not Dawn (or not installed): let webq find WebGPU and report what is missing
  }
  return { ctx: await GpuContext.create({ ...(gpu ? { gpu } : {}), kernels: opts.kernels, dot4I8: opts.dot4I8 }), exactTimestamps: !!gpu };
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
