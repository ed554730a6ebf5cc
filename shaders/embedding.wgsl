// Embedding gather: out[t, :] = table[ids[t], :]. A table too big for one binding is split into
// row chunks [vOff, vOff + vocab); each chunk's dispatch writes only the tokens whose id falls in
// it. Ids are checked on the CPU before upload (the tokenizer made them); an id past the whole
// table (>= vTotal) still reads nothing out of bounds and yields zeros.

struct Params { tokens: u32, dim: u32, vocab: u32, vOff: u32, vTotal: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<T>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.tokens * p.dim) { return; }
  let t = i / p.dim;
  let d = i - t * p.dim;
  let id = ids[t];
  if (id >= p.vTotal) {
    if (p.vOff == 0u) { out[i] = T(0.0); } // the first chunk owns the zero rows
    return;
  }
  if (id < p.vOff || id - p.vOff >= p.vocab) { return; }
  out[i] = table[(id - p.vOff) * p.dim + d];
}
