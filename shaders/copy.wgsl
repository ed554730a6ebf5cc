// Buffer copy, one vec4<u32> (16 bytes) per thread. It does no math, so its time is the price of
// moving bytes on this device: benchmarks time it beside the matmuls as the bandwidth reference
// (a copyBufferToBuffer would not do: it can take a DMA path that no kernel gets).

struct Params { n: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  // Dispatches above 65535 workgroups fold into y; rebuild the linear index.
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  dst[i] = src[i];
}
