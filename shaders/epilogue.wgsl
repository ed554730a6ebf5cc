// Shared by kernels that end with an activation (imported with `//! import epilogue`).

// WGSL has no erf. Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7, about f32 resolution.
fn erf_f32(v: f32) -> f32 {
  let s = sign(v);
  let z = abs(v);
  let t = 1.0 / (1.0 + 0.3275911 * z);
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return s * (1.0 - poly * exp(-z * z));
}

// The exact (erf) GELU BERT uses, not the tanh approximation.
fn gelu_f32(v: f32) -> f32 { return 0.5 * v * (1.0 + erf_f32(v * 0.7071067811865476)); }

// tanh with its argument clamped where it is already +-1 in f32: some implementations compute tanh
// through exp and give NaN (inf / inf) for large arguments.
fn tanh_safe(v: f32) -> f32 { return tanh(clamp(v, -15.0, 15.0)); }

// GELU's tanh approximation (PyTorch's approximate="tanh", Gemma's gelu_pytorch_tanh), written as
// 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)): 1 + tanh(u) for negative u cancels to a few f32 bits.
// exp overflows to inf for very negative v, giving v / inf = -0: the right limit.
fn gelu_tanh_f32(v: f32) -> f32 { return v / (1.0 + exp(-1.5957691216057308 * (v + 0.044715 * v * v * v))); }

// Soft-capping (Gemma): cap tanh(v / cap), smooth and bounded by cap; cap 0 leaves v.
fn softcap_f32(v: f32, cap: f32) -> f32 { return select(v, cap * tanh_safe(v / cap), cap > 0.0); }

// exp(-v) overflows to inf for v < -88, giving v / inf = -0: the right limit.
fn silu_f32(v: f32) -> f32 { return v / (1.0 + exp(-v)); }

// act: 0 none, 1 gelu, 2 silu, 3 tanh, 4 relu (the ACT override of the kernels that import this).
fn apply_act(v: f32, act: u32) -> f32 {
  switch act {
    case 1u: { return gelu_f32(v); }
    case 2u: { return silu_f32(v); }
    case 3u: { return tanh(v); }
    case 4u: { return max(v, 0.0); }
    default: { return v; }
  }
}
