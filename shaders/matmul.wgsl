// Tiled matmul, batched: for each batch z, C[M, N] = epilogue(A[M, K] x op(B)), where op(B) is
// B^T for B stored [N, K] (TRANS_B: the layout of a Linear weight and of K in Q.K^T) or B for B
// stored [K, N]. Each 8x8 workgroup computes a 64x64 tile of C: thread (tx, ty) owns 8 rows
// (4ty.. and 32 + 4ty..) x 8 columns (4tx.. and 32 + 4tx..). Slices of 64 x 16 values of A and
// B are staged k-major in workgroup memory, so for each k a thread reads two vec4s of each
// (neighbouring threads, neighbouring vec4s: no bank conflicts) for 64 FMAs, and every global
// value is read once per tile. (The 16x16-thread, 4x4-per-thread version read 8 values per 16
// FMAs; bench/lab/gemm.ts has the versions: this one was 1.6-2.2x faster on lavapipe.)
// Tiles are staged and accumulated in f32 whatever T is: the f16 path rounds only on the store.
// The epilogue adds bias[n], applies ACT and adds residual[m, n]. C may be a column slice of a
// wider matrix (row stride ldc, first column nOff): a weight too big for one binding is split
// into row chunks, each writing its own columns.
//
// Two entry points, differing only in how the tiles are staged:
//   main4: B stored [N, K] and K % 4 == 0 (every Linear layer): each thread loads 4 vec4s of A
//          and 4 of B along K per step (4 neighbouring threads cover a row's 64 bytes);
//   main:  any K, either B layout: 16 scalar loads per operand and step, neighbouring threads
//          reading neighbouring k.

//! import matmul_lib

// a and b again, viewed as vec4s (bound by main4 only).
@group(0) @binding(6) var<storage, read> b4: array<vec4<T>>;
@group(0) @binding(7) var<storage, read> a4: array<vec4<T>>;

const BK = 16u;

// k-major: As[k * 16 + q] holds rows 4q..4q+3 of column k of the A slice (Bs likewise for B).
var<workgroup> As: array<vec4<f32>, 256>;
var<workgroup> Bs: array<vec4<f32>, 256>;

// acc[2i + h][j] = C[row i of the thread, column 32h + 4tx + j of the tile]; rows i < 4 are
// 4ty + i, rows i >= 4 are 32 + 4ty + i - 4.
fn multiply_tile(lid: vec3u, acc: ptr<function, array<vec4<f32>, 16>>) {
  for (var k = 0u; k < BK; k++) {
    let a0 = As[k * 16u + lid.y];
    let a1 = As[k * 16u + 8u + lid.y];
    let b0 = Bs[k * 16u + lid.x];
    let b1 = Bs[k * 16u + 8u + lid.x];
    for (var i = 0u; i < 4u; i++) {
      (*acc)[2u * i] += a0[i] * b0;
      (*acc)[2u * i + 1u] += a0[i] * b1;
      (*acc)[2u * i + 8u] += a1[i] * b0;
      (*acc)[2u * i + 9u] += a1[i] * b1;
    }
  }
}

fn store_tile(m0: u32, n0: u32, cBase: u32, lid: vec3u, acc: ptr<function, array<vec4<f32>, 16>>) {
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + 32u * (i / 4u) + 4u * lid.y + i % 4u;
    if (m >= p.M) { continue; }
    for (var h = 0u; h < 2u; h++) {
      for (var j = 0u; j < 4u; j++) {
        let n = n0 + 32u * h + 4u * lid.x + j;
        if (n >= p.N) { continue; }
        var v = (*acc)[2u * i + h][j];
        if (HAS_BIAS) { v += f32(bias[p.nOff + n]); }
        v = apply_act(v, ACT);
        let at = cBase + m * p.ldc + p.nOff + n;
        if (HAS_RES) { v += f32(res[at]); }
        c[at] = T(v);
      }
    }
  }
}

fn load_a(base: u32, m: u32, k: u32) -> f32 {
  if (m < p.M && k < p.K) { return f32(a[base + m * p.K + k]); }
  return 0.0;
}

fn load_b(base: u32, n: u32, k: u32) -> f32 {
  if (n >= p.N || k >= p.K) { return 0.0; }
  if (TRANS_B) { return f32(b[base + n * p.K + k]); }
  return f32(b[base + k * p.N + n]);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  let aBase = wg.z * p.strideA;
  let bBase = wg.z * p.strideB;
  var acc: array<vec4<f32>, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }
  let kk = li % BK;
  let q0 = li / BK; // this thread stages row quads q0, q0 + 4, q0 + 8, q0 + 12 at k0 + kk
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var t = 0u; t < 4u; t++) {
      let r = 4u * (q0 + 4u * t);
      As[kk * 16u + r / 4u] = vec4(load_a(aBase, m0 + r, k0 + kk), load_a(aBase, m0 + r + 1u, k0 + kk),
                                   load_a(aBase, m0 + r + 2u, k0 + kk), load_a(aBase, m0 + r + 3u, k0 + kk));
      Bs[kk * 16u + r / 4u] = vec4(load_b(bBase, n0 + r, k0 + kk), load_b(bBase, n0 + r + 1u, k0 + kk),
                                   load_b(bBase, n0 + r + 2u, k0 + kk), load_b(bBase, n0 + r + 3u, k0 + kk));
    }
    workgroupBarrier();
    multiply_tile(lid, &acc);
    workgroupBarrier();
  }
  store_tile(m0, n0, wg.z * p.strideC, lid, &acc);
}

@compute @workgroup_size(8, 8)
fn main4(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  let K4 = p.K / 4u;
  let aBase = wg.z * p.strideA / 4u;
  let bBase = wg.z * p.strideB / 4u;
  var acc: array<vec4<f32>, 16>;
  for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }
  let j = li % 4u;  // this thread stages vec4 j of the step ...
  let r0 = li / 4u; // ... of rows r0, r0 + 16, r0 + 32, r0 + 48
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    let kq = k0 / 4u + j;
    for (var t = 0u; t < 4u; t++) {
      let r = r0 + 16u * t;
      var av = vec4<f32>(0.0);
      var bv = vec4<f32>(0.0);
      if (kq < K4) {
        if (m0 + r < p.M) { av = vec4<f32>(a4[aBase + (m0 + r) * K4 + kq]); }
        if (n0 + r < p.N) { bv = vec4<f32>(b4[bBase + (n0 + r) * K4 + kq]); }
      }
      for (var e = 0u; e < 4u; e++) {
        As[(4u * j + e) * 16u + r / 4u][r % 4u] = av[e];
        Bs[(4u * j + e) * 16u + r / 4u][r % 4u] = bv[e];
      }
    }
    workgroupBarrier();
    multiply_tile(lid, &acc);
    workgroupBarrier();
  }
  store_tile(m0, n0, wg.z * p.strideC, lid, &acc);
}
