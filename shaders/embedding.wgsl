// Embedding gather: out[t, :] = table[ids[t], :]. Ids are checked on the CPU before upload (the
// tokenizer produced them); an id past the table still reads nothing out of bounds and yields zeros.

struct Params { tokens: u32, dim: u32, vocab: u32 }

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
  out[i] = select(T(0.0), table[id * p.dim + d], id < p.vocab);
}
