/**
 * The per-device caches of uniform buffers (immutable, keyed by their bytes) and bind groups (keyed
 * by kernel and buffer identity), so repeated forwards create neither.
 *
 * Both are least-recently-used maps with a cap. The earlier design cleared both maps whenever the
 * uniform map reached its cap, and never dropped a bind group whose buffer had been destroyed, so a
 * long-running process with varied shapes (prompt lengths, batch sizes) or load/dispose cycles
 * re-created its whole working set every few thousand calls. Now:
 *
 *   - a hit moves the entry to the young end; at the cap the oldest entry goes, alone;
 *   - a bind group is indexed by the buffers it binds, so destroying a buffer (a disposed model's
 *     weights, an evicted uniform) drops exactly the bind groups that bound it;
 *   - an evicted uniform buffer is not destroyed: a recording not yet submitted may still bind it
 *     (destroying it would fail that submit and with it the device); it is dropped, and the
 *     runtime frees it once nothing references it.
 */
import type { GPUBindGroup, GPUBindGroupEntry, GPUBindGroupLayout, GPUBuffer, GPUDevice } from './webgpu-types.ts';

const UNIFORM = 0x0040;
const COPY_DST = 0x0008;

interface BindGroupEntry {
  group: GPUBindGroup;
  /** Ids of the buffers it binds. */
  buffers: number[];
}

/** What the caches did since the device was made: creations after warm-up are churn. */
export interface CacheCounters {
  uniformsCreated: number;
  uniformsEvicted: number;
  bindGroupsCreated: number;
  bindGroupsEvicted: number;
  /** Bind groups dropped because a buffer they bound was destroyed. */
  bindGroupsForgotten: number;
}

export class BindingCache {
  private readonly uniforms = new Map<string, GPUBuffer>();
  private uniformBytes = 0;
  private readonly groups = new Map<string, BindGroupEntry>();
  /** Buffer id -> keys of the bind groups that bind it. */
  private readonly byBuffer = new Map<number, Set<string>>();
  private readonly ids = new WeakMap<GPUBuffer, number>();
  private nextId = 1;
  readonly counters: CacheCounters = { uniformsCreated: 0, uniformsEvicted: 0, bindGroupsCreated: 0, bindGroupsEvicted: 0, bindGroupsForgotten: 0 };

  constructor(
    private readonly device: GPUDevice,
    readonly caps: { uniforms: number; bindGroups: number },
  ) {}

  get uniformCount(): number {
    return this.uniforms.size;
  }

  get bindGroupCount(): number {
    return this.groups.size;
  }

  /** Bytes of the cached uniform buffers. */
  get bytes(): number {
    return this.uniformBytes;
  }

  private idOf(b: GPUBuffer): number {
    let id = this.ids.get(b);
    if (id === undefined) this.ids.set(b, (id = this.nextId++));
    return id;
  }

  /** The immutable uniform buffer holding `bytes`, made on first use. */
  uniform(bytes: Uint8Array): GPUBuffer {
    const key = String.fromCharCode(...new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2));
    let buf = this.uniforms.get(key);
    if (buf) {
      this.uniforms.delete(key);
      this.uniforms.set(key, buf);
      return buf;
    }
    while (this.uniforms.size >= this.caps.uniforms) {
      const [oldKey, old] = this.uniforms.entries().next().value as [string, GPUBuffer];
      this.uniforms.delete(oldKey);
      this.uniformBytes -= old.size;
      this.counters.uniformsEvicted++;
      this.forget(old);
    }
    buf = this.device.createBuffer({ size: bytes.byteLength, usage: UNIFORM | COPY_DST, label: 'webq:uniform', mappedAtCreation: true });
    new Uint8Array(buf.getMappedRange()).set(bytes);
    buf.unmap();
    this.uniforms.set(key, buf);
    this.uniformBytes += buf.size;
    this.counters.uniformsCreated++;
    return buf;
  }

  /** The bind group of `entries` on `layout`, made on first use (`label` names the kernel). */
  bindGroup(label: string, layout: GPUBindGroupLayout, entries: GPUBindGroupEntry[]): GPUBindGroup {
    let key = label;
    const buffers: number[] = [];
    for (const e of entries) {
      const r = e.resource as GPUBufferBinding;
      const id = this.idOf(r.buffer);
      buffers.push(id);
      key += `|${e.binding}:${id}:${r.offset ?? 0}:${r.size ?? -1}`;
    }
    const hit = this.groups.get(key);
    if (hit) {
      this.groups.delete(key);
      this.groups.set(key, hit);
      return hit.group;
    }
    while (this.groups.size >= this.caps.bindGroups) {
      const oldKey = this.groups.keys().next().value as string;
      this.drop(oldKey);
      this.counters.bindGroupsEvicted++;
    }
    const group = this.device.createBindGroup({ label, layout, entries });
    this.groups.set(key, { group, buffers });
    for (const id of buffers) {
      let keys = this.byBuffer.get(id);
      if (!keys) this.byBuffer.set(id, (keys = new Set()));
      keys.add(key);
    }
    this.counters.bindGroupsCreated++;
    return group;
  }

  /** Drops the bind groups that bind `buffer` (it is being destroyed, or was evicted). */
  forget(buffer: GPUBuffer): void {
    const id = this.ids.get(buffer);
    if (id === undefined) return;
    const keys = this.byBuffer.get(id);
    if (!keys) return;
    for (const key of [...keys]) {
      this.drop(key);
      this.counters.bindGroupsForgotten++;
    }
    this.byBuffer.delete(id);
  }

  private drop(key: string): void {
    const e = this.groups.get(key);
    if (!e) return;
    this.groups.delete(key);
    for (const id of e.buffers) {
      const keys = this.byBuffer.get(id);
      keys?.delete(key);
      if (keys?.size === 0) this.byBuffer.delete(id);
    }
  }

  /** Destroys the uniform buffers and forgets everything (the device is going). */
  destroy(): void {
    for (const b of this.uniforms.values()) b.destroy();
    this.uniforms.clear();
    this.uniformBytes = 0;
    this.groups.clear();
    this.byBuffer.clear();
  }
}
