// Shared by quantize_act.wgsl and quantize_act_sg.wgsl (imported with `//! import quantize_act_lib`):
// the bindings, the rounding and the packing of the dynamic int8 activation quantization.

struct Params { M: u32, K: u32, Kp: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;
@group(0) @binding(3) var<storage, read_write> xs: array<f32>;
@group(0) @binding(4) var<storage, read_write> xsum: array<i32>;

override PER_BLOCK: bool = false;
// Static (w8a8-static): one scale per tensor, fixed by calibration and stored in xs[0]; no
// reduction over the row, and xs is only read.
override STATIC: bool = false;

fn xat(base: u32, k: u32) -> f32 {
  if (k < p.K) { return f32(x[base + k]); }
  return 0.0;
}

// Ties away from zero, as the CPU quantizer rounds (WGSL round() ties to even). a - floor(a) is
// exact, unlike floor(a + 0.5), which rounds 0.49999997 + 0.5 up to 1 in f32.
fn q8(v: f32, inv: f32) -> i32 {
  let r = v * inv;
  let a = abs(r);
  let f = floor(a);
  return clamp(i32(sign(r) * select(f, f + 1.0, a - f >= 0.5)), -127, 127);
}

fn pack4(a: i32, b: i32, c: i32, d: i32) -> u32 {
  return (u32(a) & 0xffu) | ((u32(b) & 0xffu) << 8u) | ((u32(c) & 0xffu) << 16u) | ((u32(d) & 0xffu) << 24u);
}
