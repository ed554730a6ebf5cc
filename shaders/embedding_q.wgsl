// Embedding gather from a quantized table (layout: src/quant/layout.ts): out[t, k] = the
// dequantized value of row ids[t], column k. A tied LM head's table stays quantized once, for the
// gather and for the head's matmul, instead of beside a float copy. Row chunks work as in
// embedding.wgsl: each chunk's dispatch writes the tokens whose id falls in [vOff, vOff + vocab).

struct Params { tokens: u32, dim: u32, Kp: u32, groups: u32, vocab: u32, vOff: u32, vTotal: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;      // codes [vocab, Kp * BITS / 32]
@group(0) @binding(3) var<storage, read> scales: array<T>;   // [vocab, groups]
@group(0) @binding(4) var<storage, read> zeros: array<T>;    // [vocab, groups] (asymmetric)
@group(0) @binding(5) var<storage, read_write> out: array<T>;

override WG: u32 = 256u;
//! import qtable_lib

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.tokens * p.dim) { return; }
  let t = i / p.dim;
  let k = i - t * p.dim;
  let id = ids[t];
  if (id >= p.vTotal) {
    if (p.vOff == 0u) { out[i] = T(0.0); } // the first chunk owns the zero rows
    return;
  }
  if (id < p.vOff || id - p.vOff >= p.vocab) { return; }
  let n = id - p.vOff;
  out[i] = T(table_value(n, k));
}
