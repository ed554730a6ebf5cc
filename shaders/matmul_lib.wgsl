// Shared by matmul.wgsl and matmul_sg.wgsl (imported with `//! import matmul_lib`): the
// bindings, uniforms and epilogue overrides of C = epilogue(A x op(B)).

//! import epilogue

struct Params { M: u32, N: u32, K: u32, strideA: u32, strideB: u32, strideC: u32, ldc: u32, nOff: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<T>;
@group(0) @binding(2) var<storage, read> b: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read> res: array<T>;
@group(0) @binding(5) var<storage, read_write> c: array<T>;

override TRANS_B: bool = true;
override HAS_BIAS: bool = false;
override HAS_RES: bool = false;
override ACT: u32 = 0u;
