// The embedding gather's entry point, shared by embedding.wgsl (float table) and embedding_q.wgsl
// (quantized table): out[t, :] = row ids[t] of the table. The importer declares `struct Params`
// (tokens, dim, vocab, vOff, vTotal and any fields of its own), the table's bindings (3 and up) and
//   fn table_value(n: u32, k: u32) -> f32   // row n of this chunk, column k
// A table too big for one binding is split into row chunks [vOff, vOff + vocab); each chunk's
// dispatch writes only the tokens whose id falls in it. Ids are checked on the CPU before upload
// (the tokenizer made them); an id past the whole table (>= vTotal) still reads nothing out of
// bounds and yields zeros.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<T>; // [tokens, dim]

override WG: u32 = 256u;

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
  out[i] = T(table_value(id - p.vOff, k));
}
