/**
 * Buffer pool: intermediate tensors of a forward pass come from here and go back when disposed,
 * so repeated forwards allocate nothing. Sizes are bucketed (powers of two, then steps of 1/8)
 * to keep reuse high without wasting more than ~12% per buffer.
 */
import type { GPUBuffer, GPUDevice } from './webgpu-types.ts';

export const STORAGE_USAGE = 0x80 | 0x4 | 0x8; // STORAGE | COPY_SRC | COPY_DST (constants are not global in Dawn before create())

export function bucketSize(bytes: number): number {
  const b = Math.max(256, bytes);
  const p = 2 ** Math.floor(Math.log2(b));
  if (p === b) return b;
  const step = Math.max(256, p / 8);
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  private all = new Set<GPUBuffer>();
  constructor(private device: GPUDevice) {}

  acquire(bytes: number, label = 'webq:pooled'): GPUBuffer {
    const size = bucketSize(bytes);
    const list = this.free.get(size);
    const hit = list?.pop();
    if (hit) return hit;
    const buf = this.device.createBuffer({ size, usage: STORAGE_USAGE, label });
    this.all.add(buf);
    return buf;
  }

  release(buf: GPUBuffer): void {
    if (!this.all.has(buf)) return;
    const list = this.free.get(buf.size) ?? [];
    if (!list.includes(buf)) list.push(buf);
    this.free.set(buf.size, list);
  }

  /** Bytes held, in use or free. */
  get bytes(): number {
    let n = 0;
    for (const b of this.all) n += b.size;
    return n;
  }

  destroy(): void {
    for (const b of this.all) b.destroy();
    this.all.clear();
    this.free.clear();
  }
}
