// Shared by qgemv.wgsl and qgemm.wgsl (imported with `//! import qlinear`): the bindings, the
// overrides and the epilogue of a quantized Linear, out[m, n0 + n] = epilogue(x W^T).
// W: packed codes (src/quant/layout.ts), one scale (and zero point if asymmetric) per row and
// group of G along K. x arrives as floats (weight-only entries) or as int8 (xq, with scales xs and
// block sums xsum from quantize_act.wgsl). xs is indexed m * xsRow + block * xsBlk, which covers
// one scale per token (xsBlk = 0) and one per block of 32 (xsRow = Kp / 32, xsBlk = 1).

//! import epilogue

struct Params { M: u32, N: u32, K: u32, Kp: u32, groups: u32, n0: u32, ldo: u32, xsRow: u32, xsBlk: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> scales: array<T>;
@group(0) @binding(3) var<storage, read> zeros: array<T>;
@group(0) @binding(4) var<storage, read> x: array<T>;
@group(0) @binding(5) var<storage, read> xq: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read> xs: array<f32>;
@group(0) @binding(7) var<storage, read> xsum: array<i32>;
@group(0) @binding(8) var<storage, read> bias: array<T>;
@group(0) @binding(9) var<storage, read> res: array<T>;
@group(0) @binding(10) var<storage, read_write> out: array<T>;

override BITS: u32 = 4u;
override SYM: bool = true;
override G: u32 = 32u; // elements per group along K (Kp when per-channel)
override HAS_BIAS: bool = false;
override HAS_RES: bool = false;
override ACT: u32 = 0u;

// The zero point a weight code is measured from: int4 symmetric stores c + 8, int8 symmetric c.
fn zero_of(n: u32, g: u32) -> f32 {
  if (SYM) { return select(0.0, 8.0, BITS == 4u); }
  return f32(zeros[n * p.groups + g]);
}

// bias, activation, residual; n is the row within this weight chunk.
fn finish(m: u32, n: u32, v: f32) {
  let col = p.n0 + n;
  var r = v;
  if (HAS_BIAS) { r += f32(bias[col]); }
  r = apply_act(r, ACT);
  if (HAS_RES) { r += f32(res[m * p.ldo + col]); }
  out[m * p.ldo + col] = T(r);
}
