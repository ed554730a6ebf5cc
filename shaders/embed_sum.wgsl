// Transformer input embeddings: out[b, t, :] = word[ids[b, t]] + position[t] + type[types[b, t]]
// (BERT's absolute positions count from 0 in every row; padding sits at the end of a row, so it
// never shifts a real token's position). The LayerNorm that follows is a separate kernel.

struct Params { rows: u32, T: u32, H: u32, vocab: u32, typeVocab: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> types: array<u32>;
@group(0) @binding(3) var<storage, read> word: array<T>;
@group(0) @binding(4) var<storage, read> pos: array<T>;
@group(0) @binding(5) var<storage, read> typ: array<T>;
@group(0) @binding(6) var<storage, read_write> out: array<T>;

override WG: u32 = 256u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.rows * p.H) { return; }
  let r = i / p.H;
  let d = i - r * p.H;
  let t = r % p.T;
  // Ids are validated on the CPU; clamping keeps a bad one from reading out of bounds.
  let id = min(ids[r], p.vocab - 1u);
  let ty = min(types[r], p.typeVocab - 1u);
  out[i] = T(f32(word[id * p.H + d]) + f32(pos[t * p.H + d]) + f32(typ[ty * p.H + d]));
}
