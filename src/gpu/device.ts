/**
 * One WebGPU device for every runtime: the browser's and Deno's `navigator.gpu`, or Dawn through the
 * `webgpu` npm package in Node (imported lazily so a browser bundle never pulls it in).
 *
 * The device records what the adapter can do, asks for the adapter's largest buffer and workgroup
 * limits (a device otherwise gets the small spec defaults), and turns device loss and uncaptured
 * errors into a rejected promise that every wait races against, so nothing hangs.
 */
import { GPUDeviceError, WebGPUUnavailableError, WebqError } from '../errors.ts';
import { detectRuntime, getEnv, type Runtime } from '../env.ts';
import type { GPU, GPUDevice, GPUPowerPreference } from './webgpu-types.ts';

export interface Capabilities {
  runtime: Runtime;
  /** 'vendor architecture description', for logs and benchmark tables. */
  adapter: string;
  /** Adapter is a CPU emulation (lavapipe, SwiftShader): useful to interpret timings. */
  software: boolean;
  f16: boolean;
  subgroups: boolean;
  /** The subgroup size when the adapter has one fixed size (8 on lavapipe with AVX2), else 0. */
  subgroupSize: number;
  /**
   * Kernel family for the float and quantized GEMMs: 'cpu' (subgroup-shuffle kernels written for
   * CPU-emulated adapters, where per-lane loads are the cost) on a software adapter with fixed-size
   * subgroups, else 'gpu' (workgroup-memory tiles). DeviceOptions.kernels overrides it.
   */
  kernels: 'gpu' | 'cpu';
  /** The decode GEMVs' settings (DeviceOptions.gemv); wg / nr undefined: the kernels' defaults. */
  gemv: GemvSettings;
  /** The gpu family's vec4 GEMM (DeviceOptions.gemm). */
  gemm: GemmSettings;
  timestamps: boolean;
  /** WGSL language feature packed_4x8_integer_dot_product (dot4I8Packed). */
  dot4I8: boolean;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
  maxStorageBuffersPerShaderStage: number;
  minStorageBufferOffsetAlignment: number;
  /**
   * Dawn's bounds clamping of shader buffer accesses: false when webq turned it off (Node, where
   * every kernel guards its own bounds: see DeviceOptions.robustness), true when on, null where
   * the runtime decides and does not say (browsers, Deno: their own settings).
   */
  robustness: boolean | null;
  /** The Dawn device toggles webq set (Node), or null where webq cannot set any. */
  dawnToggles: { enabled: string[]; disabled: string[] } | null;
}

/**
 * How the decode GEMVs of both kernel families (gemv4*.wgsl, qgemv4*.wgsl) run, for M <= 4:
 *   reduce 'auto' (default): subgroupAdd over TPR = the subgroup size where the device has one fixed
 *          power-of-two size, else 'workgroup';
 *          'workgroup': a workgroup-memory tree over TPR = 32 threads (what devices without fixed-
 *          size subgroups get; tests run it on lavapipe too);
 *          'off': the older gemv.wgsl / qgemv.wgsl (kernel lab);
 *   wg, nr (kernel lab): threads per workgroup (a power of two, 32..1024) and rows per thread (1..4);
 *   multi 'auto' (default): 2..8 rows of x (batched decode) in one workgroup per weight rows, each
 *          weight loaded and unpacked once for all of them (gemv4m*.wgsl, qgemv4m*.wgsl; needs
 *          reduce other than 'off'); 'off': a workgroup per row of x up to 4 rows, the GEMM above.
 */
export interface GemvSettings {
  reduce: 'auto' | 'workgroup' | 'off';
  multi?: 'auto' | 'off';
  wg?: number;
  nr?: number;
}

/**
 * The gpu family's tiled GEMM for B [N, K] with K % 4 == 0: subgroups 'auto' (default) takes
 * matmul_gpu_sg.wgsl where the device has one fixed subgroup size from 8 to 64; 'off' always runs
 * matmul.wgsl main4 (tests, kernel lab).
 */
export interface GemmSettings {
  subgroups: 'auto' | 'off';
}

export interface DeviceOptions {
  /** Use shader-f16 when the adapter has it (default true). false forces the f32 paths. */
  f16?: boolean;
  /** Use dot4I8Packed when the WGSL feature exists (default true); false takes the emulated path. */
  dot4I8?: boolean;
  /** GEMM kernel family ('gpu' or 'cpu', see Capabilities.kernels); default by adapter. 'cpu' needs fixed-size subgroups. */
  kernels?: 'gpu' | 'cpu';
  /** Decode GEMV kernel choice (see GemvSettings); default { reduce: 'auto' }. */
  gemv?: Partial<GemvSettings>;
  /** The gpu family's GEMM choice (see GemmSettings); default { subgroups: 'auto' }. */
  gemm?: Partial<GemmSettings>;
  /** Request timestamp-query when available (default true); false makes timing a no-op. */
  timestamps?: boolean;
  powerPreference?: GPUPowerPreference;
  /**
   * Node (Dawn): keep Dawn's robustness, the bounds clamping it injects into every buffer access
   * of every shader. Default false, as onnxruntime sets up its Dawn device: webq's kernels guard
   * their own bounds (the kernel cases with sizes that are not multiples of tiles, groups or
   * vector widths pass both ways), so the clamps only cost time. Turn it on when running kernels
   * you do not trust or hunting a bug (also WEBQ_ROBUSTNESS=1, `webq --robustness`). Browsers and
   * Deno keep their own setting; a page cannot change it.
   */
  robustness?: boolean;
  /** A GPU object to use instead of navigator.gpu / Dawn (tests, embedding). */
  gpu?: GPU;
}

/**
 * The Dawn toggles of webq's Node devices, as onnxruntime's WebGPU context sets them: robustness
 * off (unless asked for), no lazy zero-clearing of new buffers (webq writes every buffer before
 * a kernel reads it; the test suite passes with Dawn filling new buffers with non-zero bytes), and
 * exact timestamps (quantizing them is a browser defence against timing attacks). WEBQ_DAWN_ENABLE
 * and WEBQ_DAWN_DISABLE (comma-separated toggle names) add to them, for checks such as
 * nonzero_clear_resources_on_creation_for_testing.
 */
export function dawnToggles(robustness: boolean): { enabled: string[]; disabled: string[] } {
  const list = (v: string | undefined) => (v ?? '').split(',').map((t) => t.trim()).filter(Boolean);
  return {
    enabled: [...(robustness ? [] : ['disable_robustness']), ...list(getEnv('WEBQ_DAWN_ENABLE'))],
    disabled: ['lazy_clear_resource_on_first_use', 'timestamp_quantization', ...list(getEnv('WEBQ_DAWN_DISABLE'))],
  };
}

/** DeviceOptions.gemv / gemm with defaults, or a BAD_OPTION error naming the field. */
function kernelSettings(options: DeviceOptions): { gemv: GemvSettings; gemm: GemmSettings } {
  const bad = (field: string, want: string, got: unknown) => new WebqError('BAD_OPTION', `${field} must be ${want}, got ${JSON.stringify(got)}`);
  const g = options.gemv ?? {};
  const reduce = g.reduce ?? 'auto';
  if (reduce !== 'auto' && reduce !== 'workgroup' && reduce !== 'off') throw bad('gemv.reduce', "'auto', 'workgroup' or 'off'", reduce);
  if (g.wg !== undefined && !(Number.isInteger(g.wg) && g.wg >= 32 && g.wg <= 1024 && (g.wg & (g.wg - 1)) === 0)) throw bad('gemv.wg', 'a power of two from 32 to 1024', g.wg);
  if (g.nr !== undefined && !(Number.isInteger(g.nr) && g.nr >= 1 && g.nr <= 4)) throw bad('gemv.nr', 'an integer from 1 to 4', g.nr);
  if (g.multi !== undefined && g.multi !== 'auto' && g.multi !== 'off') throw bad('gemv.multi', "'auto' or 'off'", g.multi);
  const subgroups = options.gemm?.subgroups ?? 'auto';
  if (subgroups !== 'auto' && subgroups !== 'off') throw bad('gemm.subgroups', "'auto' or 'off'", subgroups);
  return { gemv: { reduce, ...(g.wg !== undefined && { wg: g.wg }), ...(g.nr !== undefined && { nr: g.nr }), ...(g.multi !== undefined && { multi: g.multi }) }, gemm: { subgroups } };
}

function robustnessOption(options: DeviceOptions): boolean {
  if (options.robustness !== undefined) {
    if (typeof options.robustness !== 'boolean') throw new WebqError('BAD_OPTION', `robustness must be true or false, got ${JSON.stringify(options.robustness)}`);
    return options.robustness;
  }
  return /^(1|true|on|yes)$/i.test(getEnv('WEBQ_ROBUSTNESS') ?? '');
}

const LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/**
 * One Dawn instance per set of toggles, kept for the process: creating and dropping an instance
 * per device made Dawn crash intermittently at teardown, and a kept instance does not hold the
 * process open once its devices are destroyed. Dawn applies an instance's toggles to the devices
 * made from it, so devices with and without robustness need an instance each (the benches' A/B
 * mode runs both in one process). (Its first requestAdapter() prints "Warning: maxDynamic...
 * BuffersPerPipelineLayout artificially reduced ..." to stderr on Vulkan drivers such as
 * lavapipe, whatever limits are requested later; the CLI filters it, see src/cli/dawn-notices.ts,
 * and a script run with `node --import webq/quiet-dawn` too, see src/quiet-dawn.ts.)
 */
const dawn = new Map<string, Promise<GPU>>();

async function loadDawn(toggles: { enabled: string[]; disabled: string[] }): Promise<GPU> {
  let mod: { create(flags: string[]): GPU; globals: Record<string, unknown> };
  try {
    const name = 'webgpu'; // a variable specifier keeps bundlers from following it
    mod = await import(/* @vite-ignore */ name);
  } catch (e) {
    throw new WebGPUUnavailableError('NO_WEBGPU', "WebGPU is not available in Node: install the 'webgpu' package (npm install webgpu).", { cause: e });
  }
  // GPUBufferUsage, GPUMapMode, ... are globals in browsers; Dawn ships them separately.
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const flags: string[] = [];
  if (toggles.enabled.length) flags.push(`enable-dawn-features=${toggles.enabled.join(',')}`);
  if (toggles.disabled.length) flags.push(`disable-dawn-features=${toggles.disabled.join(',')}`);
  return mod.create(flags);
}

async function findGPU(runtime: Runtime, toggles: { enabled: string[]; disabled: string[] }): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (runtime === 'node') {
    const key = JSON.stringify(toggles);
    let gpu = dawn.get(key);
    if (!gpu) {
      dawn.set(key, (gpu = loadDawn(toggles)));
      gpu.catch(() => dawn.delete(key)); // a failed load may be retried after installing the package
    }
    return gpu;
  }
  const hint =
    runtime === 'deno'
      ? 'Deno exposes navigator.gpu only with a Vulkan/Metal/DX12 driver; on Linux without a GPU install Mesa (mesa-vulkan-drivers).'
      : 'use a browser with WebGPU enabled (Chrome/Edge 113+, Safari 26+, Firefox 141+) over https or localhost.';
  throw new WebGPUUnavailableError('NO_WEBGPU', `WebGPU is not available (navigator.gpu is missing): ${hint}`);
}

/** How long a failed GPU wait waits for device.lost to say whether the device went (see race()). */
const LOST_WAIT_MS = 2000;

export class WebqDevice {
  readonly gpu: GPUDevice;
  readonly caps: Capabilities;
  /**
   * What the device was made with: GpuContext.recover() asks for a new one the same way; a test
   * or the kernel lab makes a sibling with one option changed.
   */
  readonly options: Readonly<DeviceOptions>;
  private failure: Error | null = null;
  private lostListeners: Array<(e: Error) => void> = [];
  /**
   * The waits in progress (race, settled), told when the device fails. A set rather than racing
   * each wait against one long-lived pending promise: every Promise.race with it would add a
   * reaction to that promise that is never removed (a few hundred bytes per GPU wait, forever).
   */
  private waiters = new Set<(e: Error) => void>();
  private disposers: Array<() => void> = [];
  private disposed = false;

  constructor(device: GPUDevice, caps: Capabilities, options: DeviceOptions = {}) {
    this.gpu = device;
    this.caps = caps;
    this.options = Object.freeze({ ...options });
    device.lost.then((info) => {
      if (this.disposed && info.reason === 'destroyed') return;
      this.fail(new GPUDeviceError('DEVICE_LOST', `WebGPU device lost (${info.reason}): ${info.message || 'no message'}`));
    });
    device.addEventListener('uncapturederror', (ev) => {
      const err = (ev as GPUUncapturedErrorEvent).error;
      this.fail(new GPUDeviceError('GPU_ERROR', `WebGPU error: ${err.message}`));
    });
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const w of [...this.waiters]) w(e);
    this.waiters.clear();
    for (const fn of this.lostListeners) fn(e);
    this.lostListeners = [];
  }

  /** The error that broke the device (lost, or an uncaptured error), or null while it works. */
  get error(): Error | null {
    return this.failure;
  }

  /** Calls `fn` once when the device is lost or fails (not when webq disposes it). */
  onFailure(fn: (e: Error) => void): void {
    if (this.failure) queueMicrotask(() => fn(this.failure!));
    else this.lostListeners.push(fn);
  }

  /** Throws the error that broke the device, if any. Ops call this before recording work. */
  check(): void {
    if (this.failure) throw this.failure;
    if (this.disposed) throw new GPUDeviceError('DISPOSED', 'this webq device was disposed');
  }

  /**
   * Awaits `p`, but rejects as soon as the device is lost or reports an error. A `p` that rejects
   * because the device went (a mapAsync aborted by destroy()) does so before device.lost resolves
   * (in Chromium the loss is reported by the GPU process, a while later): its error then waits up
   * to LOST_WAIT_MS for the device's and gives way to it, so the caller sees one GPUDeviceError
   * and recover() knows the device is gone.
   */
  race<T>(p: Promise<T>): Promise<T> {
    this.check();
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const onFail = (e: Error) => {
        done = true;
        reject(e);
      };
      this.waiters.add(onFail);
      p.then(
        (v) => {
          this.waiters.delete(onFail);
          if (!done) resolve(v);
        },
        async (e: unknown) => {
          await this.settled(); // a failure meanwhile rejects through onFail first
          this.waiters.delete(onFail);
          if (!done) reject(this.failure ?? e);
        },
      );
    });
  }

  /** Resolves once the device is known lost or failed, or after `ms`: for whoever destroyed it on purpose. */
  settled(ms = LOST_WAIT_MS): Promise<void> {
    if (this.failure) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.waiters.delete(end);
        resolve();
      };
      const timer = setTimeout(end, ms);
      this.waiters.add(end);
    });
  }

  /** Waits until the queue has finished all submitted work. */
  sync(): Promise<void> {
    return this.race(this.gpu.queue.onSubmittedWorkDone());
  }

  /** Registers cleanup run by dispose() (pools, caches). */
  onDispose(fn: () => void): void {
    this.disposers.push(fn);
  }

  /** Frees every buffer and pipeline webq made on this device, then destroys the device. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.lostListeners = [];
    for (const fn of this.disposers.reverse()) fn();
    this.disposers = [];
    this.gpu.destroy();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }
}

export async function createDevice(options: DeviceOptions = {}): Promise<WebqDevice> {
  if (options.kernels !== undefined && options.kernels !== 'gpu' && options.kernels !== 'cpu') {
    throw new WebqError('BAD_OPTION', `kernels must be 'gpu' or 'cpu', got ${JSON.stringify(options.kernels)}`);
  }
  const runtime = detectRuntime();
  const robustness = robustnessOption(options);
  const { gemv, gemm } = kernelSettings(options);
  const toggles = dawnToggles(robustness);
  // Toggles are webq's to set only on a Dawn it made itself (Node without navigator.gpu).
  const own = options.gpu === undefined && runtime === 'node' && !(globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const gpu = options.gpu ?? (await findGPU(runtime, toggles));
  const adapter = await gpu.requestAdapter(options.powerPreference ? { powerPreference: options.powerPreference } : {});
  if (!adapter) {
    throw new WebGPUUnavailableError(
      'NO_ADAPTER',
      runtime === 'browser'
        ? 'WebGPU found no adapter: enable hardware acceleration or WebGPU in the browser settings.'
        : 'WebGPU found no adapter: install a Vulkan driver (on Debian without a GPU: mesa-vulkan-drivers from bookworm-backports, Mesa >= 24).',
    );
  }
  const wantF16 = options.f16 !== false && adapter.features.has('shader-f16');
  const features: GPUFeatureName[] = [];
  if (wantF16) features.push('shader-f16');
  if (adapter.features.has('subgroups')) features.push('subgroups' as GPUFeatureName);
  if (options.timestamps !== false && adapter.features.has('timestamp-query')) features.push('timestamp-query');
  const requiredLimits: Record<string, number> = {};
  for (const k of LIMITS) requiredLimits[k] = (adapter.limits as unknown as Record<string, number>)[k];
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: features, requiredLimits, label: 'webq' });
  } catch (e) {
    throw new WebGPUUnavailableError('NO_DEVICE', `WebGPU adapter refused to create a device: ${(e as Error).message}`, { cause: e });
  }
  const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  const adapterName = [info?.vendor, info?.architecture, info?.description].filter(Boolean).join(' ') || 'unknown adapter';
  const lim = device.limits;
  const software = /swiftshader|llvmpipe|lavapipe|cpu|software|warp/i.test(adapterName) || info?.architecture === 'software';
  const subgroups = device.features.has('subgroups');
  const sgInfo = info as (GPUAdapterInfo & { subgroupMinSize?: number; subgroupMaxSize?: number }) | undefined;
  const subgroupSize = subgroups && sgInfo?.subgroupMinSize && sgInfo.subgroupMinSize === sgInfo.subgroupMaxSize ? sgInfo.subgroupMinSize : 0;
  // The *_sg kernels share values within aligned groups of 8 lanes and pack 64 / size subgroups per workgroup.
  const cpuKernelsFit = subgroupSize >= 8 && subgroupSize <= 64;
  if (options.kernels === 'cpu' && !cpuKernelsFit) {
    device.destroy();
    throw new WebGPUUnavailableError('NO_SUBGROUPS', `kernels: 'cpu' needs the subgroups feature with one fixed subgroup size from 8 to 64; this adapter (${adapterName}) has ${subgroups ? 'subgroup sizes ' + sgInfo?.subgroupMinSize + '..' + sgInfo?.subgroupMaxSize : 'no subgroups'}`);
  }
  const caps: Capabilities = {
    runtime,
    adapter: adapterName,
    software,
    f16: device.features.has('shader-f16'),
    subgroups,
    subgroupSize,
    kernels: options.kernels ?? (software && cpuKernelsFit ? 'cpu' : 'gpu'),
    gemv,
    gemm,
    timestamps: device.features.has('timestamp-query'),
    // Deno's GPU type (wgpu) lacks wgslLanguageFeatures; absent means no dot4I8Packed.
    dot4I8: options.dot4I8 !== false && ((gpu as { wgslLanguageFeatures?: ReadonlySet<string> }).wgslLanguageFeatures?.has('packed_4x8_integer_dot_product') ?? false),
    maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
    maxBufferSize: lim.maxBufferSize,
    maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: lim.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupsPerDimension: lim.maxComputeWorkgroupsPerDimension,
    maxStorageBuffersPerShaderStage: lim.maxStorageBuffersPerShaderStage,
    minStorageBufferOffsetAlignment: lim.minStorageBufferOffsetAlignment,
    robustness: own ? robustness : null,
    dawnToggles: own ? toggles : null,
  };
  return new WebqDevice(device, caps, options);
}
