// Embedding gather from a quantized table (layout: src/quant/layout.ts): out[t, k] = the
// dequantized value of row ids[t], column k (see embedding_lib.wgsl; the dequantization is
// qtable_lib.wgsl's). A tied LM head's table stays quantized once, for the gather and for the
// head's matmul, instead of beside a float copy.

struct Params { tokens: u32, dim: u32, Kp: u32, groups: u32, vocab: u32, vOff: u32, vTotal: u32 }

@group(0) @binding(3) var<storage, read> w: array<u32>;      // codes [vocab, Kp * BITS / 32]
@group(0) @binding(4) var<storage, read> scales: array<T>;   // [vocab, groups]
@group(0) @binding(5) var<storage, read> zeros: array<T>;    // [vocab, groups] (asymmetric)

//! import embedding_lib
//! import qtable_lib
