/**
 * GpuContext: the device plus everything made once per device and reused: pipelines, the buffer
 * pool, uniform buffers (immutable, keyed by content, so repeated forwards reuse them), bind
 * groups and timing resources. dispose() frees all of it.
 */
import { WebqError } from '../errors.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../io/half.ts';
import { createDevice, type DeviceOptions, WebqDevice } from './device.ts';
import { PipelineCache, type Kernel } from './pipelines.ts';
import { BufferPool, STORAGE_USAGE } from './pool.ts';
import { Recorder } from './recorder.ts';
import { align4, DTYPE_BYTES, numel, shapeStr, Tensor, type DType } from './tensor.ts';
import type { GPUBindGroup, GPUBindGroupEntry, GPUBuffer, GPUQuerySet } from './webgpu-types.ts';

const MAP_READ = 0x0001;
const COPY_DST = 0x0008;
const UNIFORM = 0x0040;
const CACHE_LIMIT = 8192;

export type HostArray = Float32Array | Uint16Array | Uint32Array | Int32Array;

export class GpuContext {
  readonly dev: WebqDevice;
  readonly pipelines: PipelineCache;
  readonly pool: BufferPool;
  private uniforms = new Map<string, GPUBuffer>();
  private bindGroups = new Map<string, GPUBindGroup>();
  private bufferIds = new WeakMap<GPUBuffer, number>();
  private nextId = 1;
  private owned = new Set<GPUBuffer>();
  private placeholders = new Map<DType, Tensor>();
  private qs: GPUQuerySet | null = null;
  private qsResolve: GPUBuffer | null = null;

  constructor(dev: WebqDevice) {
    this.dev = dev;
    this.pipelines = new PipelineCache(dev.gpu);
    this.pool = new BufferPool(dev.gpu);
    dev.onDispose(() => this.destroyResources());
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
    this.owned.add(buffer);
    return new Tensor(buffer, shape, dtype, 0, (b) => {
      this.owned.delete(b);
      b.destroy();
    });
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
  stats(): { pipelines: number; uniformBuffers: number; bindGroups: number; pooledBytes: number; ownedBuffers: number } {
    return { pipelines: this.pipelines.size, uniformBuffers: this.uniforms.size, bindGroups: this.bindGroups.size, pooledBytes: this.pool.bytes, ownedBuffers: this.owned.size };
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
    const key = String.fromCharCode(...new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2));
    let buf = this.uniforms.get(key);
    if (!buf) {
      if (this.uniforms.size >= CACHE_LIMIT) this.flushCaches();
      buf = this.dev.gpu.createBuffer({ size: bytes.byteLength, usage: UNIFORM | COPY_DST, label: 'webq:uniform', mappedAtCreation: true });
      new Uint8Array(buf.getMappedRange()).set(bytes);
      buf.unmap();
      this.uniforms.set(key, buf);
    }
    return buf;
  }

  /** Bind groups are cached by kernel and buffer identity, so a decode loop creates none. */
  bindGroup(k: Kernel, entries: GPUBindGroupEntry[]): GPUBindGroup {
    let key = k.label;
    for (const e of entries) {
      const r = e.resource as GPUBufferBinding;
      let id = this.bufferIds.get(r.buffer);
      if (id === undefined) this.bufferIds.set(r.buffer, (id = this.nextId++));
      key += `|${e.binding}:${id}:${r.offset ?? 0}:${r.size ?? -1}`;
    }
    let bg = this.bindGroups.get(key);
    if (!bg) {
      if (this.bindGroups.size >= CACHE_LIMIT) this.bindGroups.clear();
      bg = this.dev.gpu.createBindGroup({ label: k.label, layout: k.layout, entries });
      this.bindGroups.set(key, bg);
    }
    return bg;
  }

  /** Drops cached uniforms and bind groups (only between forwards: in-flight work keeps its own refs). */
  private flushCaches(): void {
    // Destroying a uniform buffer still used by an unsubmitted encoder would invalidate it, so
    // old buffers are simply dropped and left to garbage collection instead of destroyed.
    this.uniforms.clear();
    this.bindGroups.clear();
  }

  querySet(count: number): GPUQuerySet {
    return (this.qs ??= this.dev.gpu.createQuerySet({ type: 'timestamp', count, label: 'webq:timing' }));
  }

  queryResolveBuffer(count: number): GPUBuffer {
    return (this.qsResolve ??= this.dev.gpu.createBuffer({ size: count * 8, usage: 0x0200 | 0x0004, label: 'webq:timing-resolve' }));
  }

  private destroyResources(): void {
    this.pool.destroy();
    for (const b of this.owned) b.destroy();
    for (const b of this.uniforms.values()) b.destroy();
    this.owned.clear();
    this.placeholders.clear();
    this.uniforms.clear();
    this.bindGroups.clear();
    this.qs?.destroy();
    this.qsResolve?.destroy();
  }

  /** Frees every buffer and destroys the device. */
  dispose(): void {
    this.dev.dispose();
  }
}
