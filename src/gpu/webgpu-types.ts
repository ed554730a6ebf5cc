/**
 * The WebGPU types webq's public declarations name, without declaring any WebGPU global.
 *
 * Declaring them (or referencing @webgpu/types from dist/index.d.ts, as webq once did) collides
 * with TypeScript's own lib.dom.d.ts from TypeScript 6 on, which has WebGPU interfaces of its own:
 * a consumer's tsc then reports "Duplicate identifier 'GPUBufferUsageFlags'" and the like in
 * files it cannot fix. So each name here is a module-scoped alias: the global interface where the
 * consumer's compilation has one (lib DOM on TypeScript >= 6, @webgpu/types, Deno's lib), and a
 * small stand-in where it has none (TypeScript 5 without @webgpu/types, a Node project without
 * lib DOM). webq's own build always has the globals (tsconfig.json), so inside webq each alias is
 * exactly the global type.
 */

/** The instance type of the global class `K` (e.g. 'GPUDevice'), or `StandIn` when there is none. */
export type GlobalInstance<K extends string, StandIn> = typeof globalThis extends { readonly [P in K]: { prototype: infer T } } ? T : StandIn;

/** What a compilation without WebGPU declarations sees; add lib DOM (TypeScript >= 6) or @webgpu/types for the full type. */
export interface GPUObjectStandIn {
  readonly label: string;
}
export interface GPUDeviceStandIn extends GPUObjectStandIn {
  destroy(): void;
}
export interface GPUBufferStandIn extends GPUObjectStandIn {
  readonly size: number;
  readonly usage: number;
  destroy(): void;
}
export interface GPUStandIn {
  requestAdapter(options?: { powerPreference?: GPUPowerPreference }): Promise<unknown>;
}

export type GPU = GlobalInstance<'GPU', GPUStandIn>;
export type GPUDevice = GlobalInstance<'GPUDevice', GPUDeviceStandIn>;
export type GPUBuffer = GlobalInstance<'GPUBuffer', GPUBufferStandIn>;
export type GPUBindGroup = GlobalInstance<'GPUBindGroup', GPUObjectStandIn>;
export type GPUBindGroupLayout = GlobalInstance<'GPUBindGroupLayout', GPUObjectStandIn>;
export type GPUComputePipeline = GlobalInstance<'GPUComputePipeline', GPUObjectStandIn>;
export type GPUCommandEncoder = GlobalInstance<'GPUCommandEncoder', GPUObjectStandIn>;
export type GPUQuerySet = GlobalInstance<'GPUQuerySet', GPUObjectStandIn>;

// Dictionaries and enums have no global value to look up; these are the parts webq uses, which the
// full WebGPU types accept.
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
