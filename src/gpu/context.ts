/**
 * GpuContext: the device plus everything made once per device and reused: pipelines, the buffer
 * pool, uniform buffers (immutable, keyed by content, so repeated forwards reuse them), bind
 * groups and timing resources. dispose() frees all of it.
 *
 * A lost device (driver reset, a backgrounded mobile tab, device.destroy()) is survivable:
 * recover() asks for a new device as the first one was asked for and starts these caches afresh
 * on it, keeping the context object, so models that share it rebuild their own buffers on it
 * (LlmModel.recover, BertModel.recover). `generation` counts the devices the context has had.
 */
import { GPUDeviceError, WebqError } from '../errors.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../io/safetensors/half.ts';
import { BindingCache, type CacheCounters } from './binding-cache.ts';
import { createDevice, type DeviceOptions, WebqDevice } from './device.ts';
import { PipelineCache, type Kernel } from './pipelines.ts';
import { BufferPool, STORAGE_USAGE } from './pool.ts';
import { Recorder } from './recorder.ts';
import { align4, DTYPE_BYTES, numel, shapeStr, Tensor, type DType } from './tensor.ts';
import type { GPUBindGroup, GPUBindGroupEntry, GPUBuffer, GPUQuerySet } from './webgpu-types.ts';

const MAP_READ = 0x0001;
const COPY_DST = 0x0008;
/** Cached uniform buffers and bind groups (least recently used go first, see binding-cache.ts). */
const UNIFORM_CACHE = 8192;
const BIND_GROUP_CACHE = 16384;

export type HostArray = Float32Array | Uint16Array | Uint32Array | Int32Array;

/** What a context holds on its device; every count and byte total must stay flat over repeated calls. */
export interface ContextStats {
  pipelines: number;
  uniformBuffers: number;
  bindGroups: number;
  /** Pooled intermediate buffers, in use or free. */
  pooledBytes: number;
  /** Buffers owned by tensors (weights, KV caches, sampler state) and their bytes. */
  ownedBuffers: number;
  ownedBytes: number;
  uniformBytes: number;
}

export class GpuContext {
  private device!: WebqDevice;
  private pipelineCache!: PipelineCache;
  private bufferPool!: BufferPool;
  private bindings!: BindingCache;
  private owned = new Map<GPUBuffer, number>();
  private ownedTotal = 0;
  private placeholders = new Map<DType, Tensor>();
  private qs: GPUQuerySet | null = null;
  private qsResolve: GPUBuffer | null = null;
  private gen = 0;
  private recovering: Promise<boolean> | null = null;
  private failureListeners = new Set<(e: Error) => void>();
  /** Counters of devices before this one (recover() starts new caches). */
  private pastCounters: CacheCounters = { uniformsCreated: 0, uniformsEvicted: 0, bindGroupsCreated: 0, bindGroupsEvicted: 0, bindGroupsForgotten: 0 };

  constructor(dev: WebqDevice) {
    this.attach(dev);
  }

  private attach(dev: WebqDevice): void {
    this.device = dev;
    this.pipelineCache = new PipelineCache(dev.gpu);
    this.bufferPool = new BufferPool(dev.gpu);
    this.bindings = new BindingCache(dev.gpu, { uniforms: UNIFORM_CACHE, bindGroups: BIND_GROUP_CACHE });
    dev.onDispose(() => this.destroyResources());
    dev.onFailure((e) => {
      for (const fn of [...this.failureListeners]) fn(e);
    });
  }

  /** The current device (a new one after recover()). */
  get dev(): WebqDevice {
    return this.device;
  }

  get pipelines(): PipelineCache {
    return this.pipelineCache;
  }

  get pool(): BufferPool {
    return this.bufferPool;
  }

  /** How many times the device was replaced by recover(): buffers made before belong to a dead device. */
  get generation(): number {
    return this.gen;
  }

  static async create(options?: DeviceOptions): Promise<GpuContext> {
    return new GpuContext(await createDevice(options));
  }

  get caps() {
    return this.dev.caps;
  }

  /** Uploads host data as a new tensor that owns its buffer (weights, inputs). */
  upload(data: HostArray, shape: readonly number[], dtype: DType, label = 'webq:tensor'): Tensor {
    this.dev.check();
    if (dtype === 'f16' && !this.caps.f16) throw new WebqError('NO_F16', `cannot make an f16 tensor (${label}): this device has no shader-f16; use f32`);
    const n = numel(shape);
    const expected = dtype === 'f16' ? Uint16Array : dtype === 'f32' ? Float32Array : dtype === 'u32' ? Uint32Array : Int32Array;
    if (!(data instanceof expected)) throw new WebqError('UPLOAD_TYPE', `${label}: ${dtype} tensor needs a ${expected.name}, got ${data.constructor.name}`);
    if (data.length !== n) throw new WebqError('UPLOAD_SIZE', `${label}: shape ${shapeStr(shape)} needs ${n} elements, got ${data.length}`);
    const bytes = align4(n * DTYPE_BYTES[dtype]);
    if (bytes > this.caps.maxBufferSize) throw new WebqError('BUFFER_TOO_LARGE', `${label}: ${bytes} bytes exceeds this device's maxBufferSize ${this.caps.maxBufferSize}`);
    const buffer = this.dev.gpu.createBuffer({ size: bytes, usage: STORAGE_USAGE, label, mappedAtCreation: true });
    new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    buffer.unmap();
    this.owned.set(buffer, bytes);
    this.ownedTotal += bytes;
    return new Tensor(buffer, shape, dtype, 0, (b) => this.destroyOwned(b));
  }

  private destroyOwned(b: GPUBuffer): void {
    const bytes = this.owned.get(b);
    if (bytes !== undefined) {
      this.owned.delete(b);
      this.ownedTotal -= bytes;
    }
    this.bindings.forget(b);
    b.destroy();
  }

  /** Uploads f32 data as `dtype` ('f16' converts on the CPU). */
  uploadFloat(data: Float32Array, shape: readonly number[], dtype: 'f32' | 'f16', label?: string): Tensor {
    return this.upload(dtype === 'f16' ? f32ArrayToF16(data) : data, shape, dtype, label);
  }

  /**
   * Per-call inputs (token ids, masks): written into a pooled buffer with queue.writeBuffer, so
   * repeated calls reuse buffers (and the bind groups cached on them) instead of making new ones.
   */
  write(data: Uint32Array | Int32Array | Float32Array, shape: readonly number[], dtype: 'u32' | 'i32' | 'f32', label?: string): Tensor {
    if (data.length !== numel(shape)) throw new WebqError('UPLOAD_SIZE', `${label ?? 'input'}: shape ${shapeStr(shape)} needs ${numel(shape)} elements, got ${data.length}`);
    const t = this.empty(shape, dtype, label);
    // A byte view typed over ArrayBuffer: Deno's WebGPU types reject ArrayBufferLike here.
    if (data.length) this.dev.gpu.queue.writeBuffer(t.buffer, 0, new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength));
    return t;
  }

  /** An uninitialized pooled tensor; dispose() returns its buffer to the pool. */
  empty(shape: readonly number[], dtype: DType, label?: string): Tensor {
    this.dev.check();
    const buffer = this.pool.acquire(align4(numel(shape) * DTYPE_BYTES[dtype]), label);
    return new Tensor(buffer, shape, dtype, 0, (b) => this.pool.release(b));
  }

  /** Counts of what this context holds; a repeated forward must not grow any of them. */
  stats(): ContextStats {
    return {
      pipelines: this.pipelines.size, uniformBuffers: this.bindings.uniformCount, bindGroups: this.bindings.bindGroupCount, pooledBytes: this.pool.bytes,
      ownedBuffers: this.owned.size, ownedBytes: this.ownedTotal, uniformBytes: this.bindings.bytes,
    };
  }

  /** GPU bytes this context holds: pooled, owned by tensors, and uniforms. */
  get bytes(): number {
    return this.pool.bytes + this.ownedTotal + this.bindings.bytes;
  }

  /** What the uniform and bind-group caches created and dropped, over every device the context had. */
  cacheCounters(): CacheCounters {
    const c = this.bindings.counters;
    const p = this.pastCounters;
    return {
      uniformsCreated: p.uniformsCreated + c.uniformsCreated, uniformsEvicted: p.uniformsEvicted + c.uniformsEvicted,
      bindGroupsCreated: p.bindGroupsCreated + c.bindGroupsCreated, bindGroupsEvicted: p.bindGroupsEvicted + c.bindGroupsEvicted,
      bindGroupsForgotten: p.bindGroupsForgotten + c.bindGroupsForgotten,
    };
  }

  /**
   * A tiny tensor to fill a binding that a kernel variant declares but does not read (a bias or
   * zero-point buffer switched off by an override): bind group layouts need every binding.
   */
  placeholder(dtype: DType): Tensor {
    let t = this.placeholders.get(dtype);
    if (!t) {
      const data = dtype === 'f16' ? new Uint16Array(8) : dtype === 'f32' ? new Float32Array(4) : dtype === 'u32' ? new Uint32Array(4) : new Int32Array(4);
      t = this.upload(data, [data.length], dtype, `webq:placeholder-${dtype}`);
      this.placeholders.set(dtype, t);
    }
    return t;
  }

  /** Starts recording one forward pass. */
  record(opts?: { timing?: boolean; label?: string }): Recorder {
    return new Recorder(this, opts);
  }

  /** Reads a tensor back: f32/f16 as Float32Array, u32 as Uint32Array, i32 as Int32Array. */
  async read(t: Tensor): Promise<Float32Array | Uint32Array | Int32Array> {
    const raw = await this.readBytes(t);
    if (t.dtype === 'f16') return f16ArrayToF32(new Uint16Array(raw.buffer, 0, t.size));
    if (t.dtype === 'f32') return new Float32Array(raw.buffer, 0, t.size);
    if (t.dtype === 'u32') return new Uint32Array(raw.buffer, 0, t.size);
    return new Int32Array(raw.buffer, 0, t.size);
  }

  async readFloat(t: Tensor): Promise<Float32Array> {
    if (t.dtype !== 'f32' && t.dtype !== 'f16') throw new WebqError('READ_TYPE', `readFloat needs an f32/f16 tensor, got ${t.dtype}`);
    return (await this.read(t)) as Float32Array;
  }

  private async readBytes(t: Tensor): Promise<Uint8Array> {
    this.dev.check();
    const size = align4(t.byteLength);
    const staging = this.dev.gpu.createBuffer({ size, usage: MAP_READ | COPY_DST, label: 'webq:readback' });
    try {
      const enc = this.dev.gpu.createCommandEncoder({ label: 'webq:readback' });
      enc.copyBufferToBuffer(t.buffer, t.offset, staging, 0, size);
      this.dev.gpu.queue.submit([enc.finish()]);
      await this.dev.race(staging.mapAsync(MAP_READ));
      return new Uint8Array(staging.getMappedRange().slice(0));
    } finally {
      staging.destroy();
    }
  }

  /** Immutable uniform buffer for these bytes, shared by every dispatch that passes the same values. */
  uniformBuffer(bytes: Uint8Array): GPUBuffer {
    return this.bindings.uniform(bytes);
  }

  /** Bind groups are cached by kernel and buffer identity, so a decode loop creates none. */
  bindGroup(k: Kernel, entries: GPUBindGroupEntry[]): GPUBindGroup {
    return this.bindings.bindGroup(k.label, k.layout, entries);
  }

  querySet(count: number): GPUQuerySet {
    return (this.qs ??= this.dev.gpu.createQuerySet({ type: 'timestamp', count, label: 'webq:timing' }));
  }

  queryResolveBuffer(count: number): GPUBuffer {
    return (this.qsResolve ??= this.dev.gpu.createBuffer({ size: count * 8, usage: 0x0200 | 0x0004, label: 'webq:timing-resolve' }));
  }

  private destroyResources(): void {
    this.pool.destroy();
    for (const b of this.owned.keys()) b.destroy();
    this.owned.clear();
    this.ownedTotal = 0;
    this.placeholders.clear();
    this.bindings.destroy();
    this.qs?.destroy();
    this.qsResolve?.destroy();
    this.qs = this.qsResolve = null;
  }

  /**
   * Calls `fn` when the device is lost or fails, this one or any recover() makes later; returns
   * the function that stops it (a model's dispose()).
   */
  onFailure(fn: (e: Error) => void): () => void {
    this.failureListeners.add(fn);
    return () => this.failureListeners.delete(fn);
  }

  /**
   * After a device loss (or an uncaptured error, which leaves a device unusable): asks for a new
   * device as the lost one was asked for, and starts pipelines, pool and caches afresh on it.
   * Every tensor made before belongs to the dead device: whoever holds them uploads them again
   * (the models' recover() does). Resolves to true when it replaced the device, false when the
   * device works (nothing to do). Concurrent calls share one replacement.
   */
  recover(): Promise<boolean> {
    return (this.recovering ??= (async () => {
      try {
        const old = this.device;
        if (old.isDisposed) throw new GPUDeviceError('DISPOSED', 'this webq device was disposed; recover() replaces a lost device, not a disposed one');
        if (!old.error) return false;
        const next = await createDevice(old.options);
        const c = this.bindings.counters;
        for (const k of Object.keys(c) as (keyof CacheCounters)[]) this.pastCounters[k] += c[k];
        old.dispose(); // webq's objects on the dead device, then the device itself
        this.attach(next);
        this.gen++;
        return true;
      } finally {
        this.recovering = null;
      }
    })());
  }

  /** Frees every buffer and destroys the device. */
  dispose(): void {
    this.failureListeners.clear();
    this.dev.dispose();
  }
}
