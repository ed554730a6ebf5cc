// Transformer input embeddings with a quantized word table (layout: src/quant/layout.ts; int8 or
// int4, any group, symmetric or not), dequantized in place, with no float copy of the table:
//
//   out[r, :] = dequant(word[ids[r]]) + position[r % T] + type[types[r]]
//
// The float-table kernel is embed_sum.wgsl; the dequantization is embedding_q.wgsl's. A table
// split into row chunks (one binding each) takes one dispatch per chunk, and each dispatch writes
// the rows whose id falls in [vOff, vOff + vocab), so every output is written exactly once.

struct Params { rows: u32, T: u32, H: u32, typeVocab: u32, Kp: u32, groups: u32, vocab: u32, vOff: u32, vTotal: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> types: array<u32>;
@group(0) @binding(3) var<storage, read> w: array<u32>;      // codes [vocab, Kp * BITS / 32]
@group(0) @binding(4) var<storage, read> scales: array<T>;   // [vocab, groups]
@group(0) @binding(5) var<storage, read> zeros: array<T>;    // [vocab, groups] (asymmetric)
@group(0) @binding(6) var<storage, read> pos: array<T>;      // [P, H]
@group(0) @binding(7) var<storage, read> typ: array<T>;      // [TV, H]
@group(0) @binding(8) var<storage, read_write> out: array<T>; // [rows, H]

override WG: u32 = 256u;
//! import qtable_lib

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.rows * p.H) { return; }
  let r = i / p.H;
  let d = i - r * p.H;
  // Ids are validated on the CPU; clamping keeps a bad one from reading out of bounds.
  let id = min(ids[r], p.vTotal - 1u);
  if (id < p.vOff || id - p.vOff >= p.vocab) { return; }
  let n = id - p.vOff;
  let t = r % p.T;
  let ty = min(types[r], p.typeVocab - 1u);
  out[i] = T(table_value(n, d) + f32(pos[t * p.H + d]) + f32(typ[ty * p.H + d]));
}
