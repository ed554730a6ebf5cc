/**
 * Records one forward pass into one command encoder. Dispatches share a single compute pass
 * (WebGPU orders dispatches in a pass and makes storage writes visible to the next one), except
 * when timing is on: then each dispatch gets its own pass with timestamp writes, so the profile
 * names every kernel. Nothing here reads back; the caller submits, then reads what it needs.
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from './context.ts';
import { packUniforms, type KernelKey } from './pipelines.ts';
import type { Tensor } from './tensor.ts';
import type { GPUBindGroupEntry, GPUBuffer, GPUBufferBinding, GPUCommandEncoder } from './webgpu-types.ts';

export type Binding = Tensor | GPUBufferBinding;

export interface KernelTiming {
  label: string;
  ms: number;
}

// 2 timestamps per kernel; 4096 queries is the spec maximum per query set.
const MAX_TIMED = 2048;

export class Recorder {
  readonly encoder: GPUCommandEncoder;
  private pass: GPUComputePassEncoder | null = null;
  private timed: string[] = [];
  private submitted = false;
  private readonly timing: boolean;

  constructor(private ctx: GpuContext, opts: { timing?: boolean; label?: string } = {}) {
    ctx.dev.check();
    this.timing = !!opts.timing && ctx.dev.caps.timestamps;
    this.encoder = ctx.dev.gpu.createCommandEncoder({ label: opts.label ?? 'webq:forward' });
  }

  /**
   * Dispatches a kernel. `bindings` are named as in the WGSL; `uniforms` fill its uniform struct by
   * field name. Workgroup counts above the per-dimension limit are the op's job to fold (see grid()).
   */
  dispatch(key: KernelKey, bindings: Record<string, Binding>, workgroups: readonly [number, number?, number?], uniforms?: Record<string, number>): void {
    if (this.submitted) throw new WebqError('RECORDER_SUBMITTED', 'this recorder was already submitted; start a new one');
    const k = this.ctx.pipelines.get(key);
    const entries: GPUBindGroupEntry[] = [];
    for (const [name, b] of Object.entries(bindings)) {
      const slot = k.bindings.get(name);
      if (!slot) {
        // Bindings a variant does not use are allowed (e.g. bias when HAS_BIAS=false was compiled out).
        continue;
      }
      entries.push({ binding: slot.binding, resource: 'binding' in b ? b.binding() : b });
    }
    if (k.uniform) {
      if (!uniforms) throw new WebqError('UNIFORM_MISSING', `${k.label}: needs uniforms { ${k.uniform.fields.map((f) => f.name).join(', ')} }`);
      entries.push({ binding: k.bindings.get(k.uniform.name)!.binding, resource: { buffer: this.ctx.uniformBuffer(packUniforms(k, uniforms)) } });
    }
    for (const [name, slot] of k.bindings) {
      if (!entries.some((e) => e.binding === slot.binding)) throw new WebqError('BINDING_MISSING', `${k.label}: binding '${name}' was not given`);
    }
    const bindGroup = this.ctx.bindGroup(k, entries);
    const [x, y = 1, z = 1] = workgroups;
    const lim = this.ctx.dev.caps.maxComputeWorkgroupsPerDimension;
    if (x > lim || y > lim || z > lim) throw new WebqError('DISPATCH_TOO_LARGE', `${k.label}: dispatch ${x}x${y}x${z} exceeds ${lim} workgroups per dimension`);
    if (x === 0 || y === 0 || z === 0) return;
    let pass: GPUComputePassEncoder;
    if (this.timing && this.timed.length < MAX_TIMED) {
      this.endPass();
      const i = this.timed.length;
      this.timed.push(k.label);
      pass = this.encoder.beginComputePass({
        label: k.label,
        timestampWrites: { querySet: this.ctx.querySet(MAX_TIMED * 2), beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
      });
      this.pass = pass;
    } else {
      pass = this.pass ??= this.encoder.beginComputePass({ label: 'webq:kernels' });
    }
    pass.setPipeline(k.pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (this.timing) this.endPass();
  }

  /** Copies bytes between buffers (ends the current compute pass). */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.endPass();
    this.encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  private endPass(): void {
    this.pass?.end();
    this.pass = null;
  }

  /** Finishes the encoder and submits it. Returns a promise for per-kernel timings when timing is on. */
  submit(): Promise<KernelTiming[]> {
    if (this.submitted) throw new WebqError('RECORDER_SUBMITTED', 'this recorder was already submitted');
    this.submitted = true;
    this.endPass();
    let resolveBuf: GPUBuffer | null = null;
    if (this.timed.length) {
      const n = this.timed.length * 2;
      resolveBuf = this.ctx.queryResolveBuffer(MAX_TIMED * 2);
      this.encoder.resolveQuerySet(this.ctx.querySet(MAX_TIMED * 2), 0, n, resolveBuf, 0);
    }
    const readBuf = resolveBuf ? this.ctx.dev.gpu.createBuffer({ size: this.timed.length * 16, usage: 0x0001 | 0x0008, label: 'webq:timestamps' }) : null;
    if (resolveBuf && readBuf) this.encoder.copyBufferToBuffer(resolveBuf, 0, readBuf, 0, readBuf.size);
    this.ctx.dev.gpu.queue.submit([this.encoder.finish()]);
    if (!readBuf) return Promise.resolve([]);
    const labels = this.timed;
    return this.ctx.dev.race(readBuf.mapAsync(0x0001)).then(() => {
      const t = new BigInt64Array(readBuf.getMappedRange().slice(0));
      readBuf.destroy();
      return labels.map((label, i) => ({ label, ms: Number(t[2 * i + 1] - t[2 * i]) / 1e6 }));
    });
  }
}

/** Splits `count` workgroups into a 2-D grid within the per-dimension limit; kernels rebuild the linear id. */
export function grid(count: number, limit = 65535): [number, number] {
  if (count <= limit) return [count, 1];
  const y = Math.ceil(count / limit);
  return [Math.ceil(count / y), y];
}
