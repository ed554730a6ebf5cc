/**
 * Pipeline cache. A kernel is (shader file, entry point, variant, override constants); each
 * distinct one is compiled once per device and labelled readably, e.g. `layernorm.main[f16]{WG=64}`.
 *
 * Bind group layouts are built from reflecting the WGSL (not layout:'auto', which silently drops
 * declared-but-unused bindings), and uniforms are packed by the reflected struct layout, so the
 * TypeScript side names bindings and uniform fields and cannot drift from the shader.
 */
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';
import { GPUDeviceError, WebqError } from '../errors.ts';
import { shaderSource, variantName, type Variant } from './shaders.ts';
import type { GPUBindGroupLayout, GPUComputePipeline, GPUDevice } from './webgpu-types.ts';

export interface KernelKey {
  shader: string;
  entry?: string;
  variant: Variant;
  constants?: Record<string, number | boolean>;
}

export interface UniformField {
  name: string;
  offset: number;
  type: 'u32' | 'i32' | 'f32';
}

export interface Kernel {
  label: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** Binding name -> binding index and kind, from reflection. */
  bindings: Map<string, { binding: number; kind: 'uniform' | 'storage' | 'read-only-storage' }>;
  /** The uniform binding's struct, if the entry uses one. */
  uniform: { name: string; size: number; fields: UniformField[] } | null;
}

function keyString(k: KernelKey): string {
  const c = Object.entries(k.constants ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  return `${k.shader}.${k.entry ?? 'main'}[${variantName(k.variant)}]` + (c.length ? `{${c.map(([n, v]) => `${n}=${v}`).join(',')}}` : '');
}

export class PipelineCache {
  private kernels = new Map<string, Kernel>();
  constructor(private device: GPUDevice) {}

  get(key: KernelKey): Kernel {
    const label = keyString(key);
    let k = this.kernels.get(label);
    if (!k) {
      k = this.build(key, label);
      this.kernels.set(label, k);
    }
    return k;
  }

  get size(): number {
    return this.kernels.size;
  }

  private build(key: KernelKey, label: string): Kernel {
    const entry = key.entry ?? 'main';
    const code = shaderSource(key.shader, key.variant);
    let reflect: WgslReflect;
    try {
      reflect = new WgslReflect(code);
    } catch (e) {
      throw new WebqError('SHADER_PARSE', `${label}: WGSL reflection failed: ${(e as Error).message}`);
    }
    const fn = reflect.entry.compute.find((f) => f.name === entry);
    if (!fn) throw new WebqError('SHADER_ENTRY', `${label}: no @compute entry point '${entry}' in ${key.shader}.wgsl`);
    const bindings: Kernel['bindings'] = new Map();
    const entries: GPUBindGroupLayoutEntry[] = [];
    let uniform: Kernel['uniform'] = null;
    for (const r of fn.resources) {
      if (r.group !== 0) throw new WebqError('SHADER_LAYOUT', `${label}: binding '${r.name}' is in group ${r.group}; webq kernels use group 0 only`);
      let kind: 'uniform' | 'storage' | 'read-only-storage';
      if (r.resourceType === 0) {
        kind = 'uniform';
        const st = r.type as unknown as { size: number; members?: { name: string; offset: number; type: { name: string } }[] };
        const fields = (st.members ?? []).map((m) => {
          if (m.type.name !== 'u32' && m.type.name !== 'i32' && m.type.name !== 'f32') {
            throw new WebqError('SHADER_LAYOUT', `${label}: uniform field '${m.name}' has type ${m.type.name}; only u32/i32/f32 scalars are supported`);
          }
          return { name: m.name, offset: m.offset, type: m.type.name as UniformField['type'] };
        });
        uniform = { name: r.name, size: Math.max(16, Math.ceil(st.size / 16) * 16), fields };
      } else if (r.resourceType === 1) {
        kind = r.access === 'read' ? 'read-only-storage' : 'storage';
      } else {
        throw new WebqError('SHADER_LAYOUT', `${label}: binding '${r.name}' is not a buffer; kernels bind buffers only`);
      }
      bindings.set(r.name, { binding: r.binding, kind });
      entries.push({ binding: r.binding, visibility: 4 /* GPUShaderStage.COMPUTE */, buffer: { type: kind } });
    }
    const layout = this.device.createBindGroupLayout({ label, entries });
    const module = this.device.createShaderModule({ label, code });
    const constants: Record<string, number> = {};
    for (const [n, v] of Object.entries(key.constants ?? {})) constants[n] = typeof v === 'boolean' ? Number(v) : v;
    const pipeline = this.device.createComputePipeline({
      label,
      layout: this.device.createPipelineLayout({ label, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: entry, constants },
    });
    return { label, pipeline, layout, bindings, uniform };
  }

  /**
   * Compiles the kernel's module and reports WGSL errors with the kernel label.
   * Used by tests; at run time a bad shader surfaces through the device's uncaptured-error path.
   */
  async validate(key: KernelKey): Promise<void> {
    const label = keyString(key);
    const module = this.device.createShaderModule({ label, code: shaderSource(key.shader, key.variant) });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) {
      throw new GPUDeviceError('SHADER_COMPILE', `${label}: ${errors.map((m) => `line ${m.lineNum}: ${m.message}`).join('; ')}`);
    }
  }
}

/** Packs named uniform values into the reflected struct layout. */
export function packUniforms(k: Kernel, values: Record<string, number>): Uint8Array {
  if (!k.uniform) throw new WebqError('SHADER_LAYOUT', `${k.label}: kernel has no uniform binding but uniforms were given`);
  const bytes = new ArrayBuffer(k.uniform.size);
  const dv = new DataView(bytes);
  for (const f of k.uniform.fields) {
    const v = values[f.name];
    if (v === undefined) throw new WebqError('UNIFORM_MISSING', `${k.label}: uniform field '${f.name}' was not given`);
    if (f.type === 'f32') dv.setFloat32(f.offset, v, true);
    else if (f.type === 'u32') dv.setUint32(f.offset, v, true);
    else dv.setInt32(f.offset, v, true);
  }
  for (const name of Object.keys(values)) {
    if (!k.uniform.fields.some((f) => f.name === name)) throw new WebqError('UNIFORM_UNKNOWN', `${k.label}: uniform struct has no field '${name}'`);
  }
  return new Uint8Array(bytes);
}
