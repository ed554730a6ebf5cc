/**
 * Buffer pool: intermediate tensors of a forward pass come from here and go back when disposed,
 * so repeated forwards allocate nothing. Sizes are bucketed (powers of two, then steps of 1/8)
 * to keep reuse high without wasting more than ~12% per buffer.
 *
 * A request takes the oldest free buffer of its size, not the last one returned: which buffer a
 * tensor gets then depends only on the forward's own shapes, so a forward repeated after others
 * binds the same buffers as before and finds its bind groups cached (the order in which earlier,
 * differently shaped calls returned their buffers would otherwise reshuffle them every call).
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
  /** Free buffers per size, oldest first. */
  private free = new Map<number, GPUBuffer[]>();
  /** Every buffer, with its creation order. */
  private all = new Map<GPUBuffer, number>();
  private made = 0;
  private held = 0;
  constructor(private device: GPUDevice) {}

  acquire(bytes: number, label = 'webq:pooled'): GPUBuffer {
    const size = bucketSize(bytes);
    const hit = this.free.get(size)?.shift();
    if (hit) return hit;
    const buf = this.device.createBuffer({ size, usage: STORAGE_USAGE, label });
    this.all.set(buf, this.made++);
    this.held += size;
    return buf;
  }

  release(buf: GPUBuffer): void {
    const order = this.all.get(buf);
    if (order === undefined) return;
    const list = this.free.get(buf.size) ?? [];
    if (list.includes(buf)) return;
    let i = list.length;
    while (i > 0 && this.all.get(list[i - 1])! > order) i--;
    list.splice(i, 0, buf);
    this.free.set(buf.size, list);
  }

  /** Bytes held, in use or free. */
  get bytes(): number {
    return this.held;
  }

  destroy(): void {
    for (const b of this.all.keys()) b.destroy();
    this.all.clear();
    this.free.clear();
    this.held = 0;
  }
}
