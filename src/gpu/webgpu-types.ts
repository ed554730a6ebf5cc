/**
 * The WebGPU types webq's public declarations name, declared so that they compile beside any
 * WebGPU declarations a consumer's build has, or none.
 *
 * Referencing @webgpu/types from dist/index.d.ts (as webq once did) collides with TypeScript's own
 * lib.dom.d.ts from TypeScript 6 on, which has WebGPU declarations of its own: a consumer's tsc
 * reports "Duplicate identifier 'GPUBufferUsageFlags'" and the like, in files it cannot fix. What
 * collides are type aliases, variables and members declared twice differently. So webq declares
 * only the interfaces it names, empty: an interface merges with every other declaration of the
 * same name, so each one is the consumer's own GPUDevice, GPUBuffer, ... where the build has them
 * (lib DOM on TypeScript >= 6, @webgpu/types, Deno's lib) and an opaque object where it has none
 * (TypeScript 5 without @webgpu/types, a Node project without lib DOM). Dictionaries and enums
 * (type aliases) webq declares as its own module types, with only the parts it uses.
 */

declare global {
  interface GPU {}
  interface GPUDevice {}
  interface GPUBuffer {}
  interface GPUBindGroup {}
  interface GPUBindGroupLayout {}
  interface GPUComputePipeline {}
  interface GPUCommandEncoder {}
  interface GPUQuerySet {}
}

export type GPU = globalThis.GPU;
export type GPUDevice = globalThis.GPUDevice;
export type GPUBuffer = globalThis.GPUBuffer;
export type GPUBindGroup = globalThis.GPUBindGroup;
export type GPUBindGroupLayout = globalThis.GPUBindGroupLayout;
export type GPUComputePipeline = globalThis.GPUComputePipeline;
export type GPUCommandEncoder = globalThis.GPUCommandEncoder;
export type GPUQuerySet = globalThis.GPUQuerySet;

export type GPUPowerPreference = 'low-power' | 'high-performance';
/** A buffer range bound to a shader (WebGPU's GPUBufferBinding). */
export interface GPUBufferBinding {
  buffer: GPUBuffer;
  offset?: number;
  size?: number;
}
/** One bind group entry; webq binds buffers only (WebGPU's GPUBindGroupEntry with a buffer resource). */
export interface GPUBindGroupEntry {
  binding: number;
  resource: GPUBufferBinding;
}
