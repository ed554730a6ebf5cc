// Transformer input embeddings, the entry point shared by embed_sum.wgsl (float word table) and
// embed_sum_q.wgsl (quantized word table):
//
//   out[r, :] = word[ids[r]] + position[positions[r]] + type[types[r]]
//
// Position ids come from the CPU (src/models/bert/bert.ts positionIds): 0..T-1 in every row for BERT,
// padding-aware for RoBERTa. The importer declares `struct Params` (rows, T, H, typeVocab,
// posRows, vocab, vOff, vTotal and any fields of its own), the word table's bindings (6 to 8)
// and
//   fn table_value(n: u32, k: u32) -> f32   // row n of this chunk of the word table, column k
// A word table split into row chunks (one binding each) takes one dispatch per chunk, and each
// dispatch writes the rows whose id falls in [vOff, vOff + vocab), so every output is written
// exactly once. The LayerNorm that follows is a separate kernel.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> types: array<u32>;
@group(0) @binding(3) var<storage, read> pos: array<T>;       // [P, H]
@group(0) @binding(4) var<storage, read> typ: array<T>;       // [TV, H]
@group(0) @binding(5) var<storage, read_write> out: array<T>; // [rows, H]
@group(0) @binding(9) var<storage, read> positions: array<u32>; // [rows]

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.rows * p.H) { return; }
  let r = i / p.H;
  let d = i - r * p.H;
  // Ids are validated on the CPU; clamping keeps a bad one from reading out of bounds.
  let id = min(ids[r], p.vTotal - 1u);
  if (id < p.vOff || id - p.vOff >= p.vocab) { return; }
  let t = min(positions[r], p.posRows - 1u); // checked on the CPU; clamped like ids
  let ty = min(types[r], p.typeVocab - 1u);
  out[i] = T(table_value(id - p.vOff, d) + f32(pos[t * p.H + d]) + f32(typ[ty * p.H + d]));
}
