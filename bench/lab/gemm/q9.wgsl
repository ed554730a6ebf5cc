// q9 (wintq): q1 with the activation quantization fused into the tile load (act 'block' only):
// the thread that stages row m of a block reads its 32 floats (8 vec4 loads), quantizes them
// exactly as quantize_act.wgsl does (scale max|x| / 127, ties away from zero, clamp +-127), packs
// the 8 words into the tile and keeps the block's scale and code sum in workgroup memory. No
// quantize_act pass and no xq/xs/xsum round trip through global memory; each x tile is quantized
// once per 64-column tile of the output instead of once.

//! import qlinear

// x again, viewed as vec4s (read when VEC4, i.e. K % 4 == 0).
@group(0) @binding(11) var<storage, read> x4: array<vec4<T>>;

override VEC4: bool = true;

var<workgroup> Xs: array<f32, 64>;   // the block's activation scale of each tile row
var<workgroup> Xsum: array<i32, 64>; // and the sum of its codes

// Must round as quantize_act_lib.wgsl's q8 does: ties away from zero, clamped to +-127.
fn q8(v: f32, inv: f32) -> i32 {
  let r = v * inv;
  let a = abs(r);
  let f = floor(a);
  return clamp(i32(sign(r) * select(f, f + 1.0, a - f >= 0.5)), -127, 127);
}

fn pack4v(q: vec4<i32>) -> u32 {
  return (u32(q.x) & 0xffu) | ((u32(q.y) & 0xffu) << 8u) | ((u32(q.z) & 0xffu) << 16u) | ((u32(q.w) & 0xffu) << 24u);
}

// Elements k..k+3 of row m of x (zero past M or K).
fn xload(m: u32, k: u32) -> vec4<f32> {
  if (m >= p.M) { return vec4<f32>(0.0); }
  if (VEC4) {
    if (k >= p.K) { return vec4<f32>(0.0); }
    return vec4<f32>(x4[(m * p.K + k) / 4u]);
  }
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (k + e < p.K) { v[e] = f32(x[m * p.K + k + e]); }
  }
  return v;
}

var<workgroup> Ai: array<vec4<u32>, 128>; // [8 words][16 row quads]
var<workgroup> Bi: array<vec4<u32>, 128>; // [8 words][16 col quads]

@compute @workgroup_size(8, 8)
fn wintq(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  let blocks = p.Kp / 32u;
  var acc: array<vec4<f32>, 16>; // acc[2i + h][j] = out[row i, column quad h, j]
  for (var q = 0u; q < 16u; q++) { acc[q] = vec4<f32>(0.0); }
  let ms = m0 + li; // the row and the column this thread stages
  let ns = n0 + li;
  for (var b = 0u; b < blocks; b++) {
    var xv: array<vec4<f32>, 8>;
    var amax = vec4<f32>(0.0);
    for (var j = 0u; j < 8u; j++) {
      xv[j] = xload(ms, b * 32u + 4u * j);
      amax = max(amax, abs(xv[j]));
    }
    let scale = max(max(amax.x, amax.y), max(amax.z, amax.w)) / 127.0;
    let inv = select(0.0, 1.0 / scale, scale > 0.0);
    var qs = vec4<i32>(0);
    for (var j = 0u; j < 8u; j++) {
      let q = vec4<i32>(q8(xv[j].x, inv), q8(xv[j].y, inv), q8(xv[j].z, inv), q8(xv[j].w, inv));
      qs += q;
      Ai[j * 16u + li / 4u][li % 4u] = pack4v(q);
    }
    Xs[li] = scale;
    Xsum[li] = qs.x + qs.y + qs.z + qs.w;
    if (BITS == 4u) {
      var wv = vec4<u32>(0x88888888u); // code 8 = weight 0 for columns past N
      if (ns < p.N) { wv = w[ns * (p.Kp / 32u) + b]; }
      let t = wv ^ vec4<u32>(0x88888888u);
      let lo = (t << vec4<u32>(4u)) & vec4<u32>(0xf0f0f0f0u);
      let hi = t & vec4<u32>(0xf0f0f0f0u);
      for (var j = 0u; j < 4u; j++) {
        Bi[2u * j * 16u + li / 4u][li % 4u] = lo[j];
        Bi[(2u * j + 1u) * 16u + li / 4u][li % 4u] = hi[j];
      }
    } else {
      var w0 = vec4<u32>(0u);
      var w1 = vec4<u32>(0u);
      if (ns < p.N) {
        w0 = w[ns * (p.Kp / 16u) + 2u * b];
        w1 = w[ns * (p.Kp / 16u) + 2u * b + 1u];
      }
      for (var j = 0u; j < 4u; j++) {
        Bi[j * 16u + li / 4u][li % 4u] = w0[j];
        Bi[(j + 4u) * 16u + li / 4u][li % 4u] = w1[j];
      }
    }
    workgroupBarrier();
    var rs: array<f32, 8>; // scale and code sum of the thread's 8 rows, read before the tile is reused
    var rsum: array<f32, 8>;
    for (var i = 0u; i < 8u; i++) {
      let r = 32u * (i / 4u) + lid.y * 4u + i % 4u;
      rs[i] = Xs[r];
      rsum[i] = f32(Xsum[r]);
    }
    var d: array<vec4<i32>, 16>;
    for (var q = 0u; q < 16u; q++) { d[q] = vec4<i32>(0); }
    for (var j = 0u; j < 8u; j++) {
      let a0 = Ai[j * 16u + lid.y];
      let a1 = Ai[j * 16u + 8u + lid.y];
      let b0 = Bi[j * 16u + lid.x];
      let b1 = Bi[j * 16u + 8u + lid.x];
      for (var i = 0u; i < 4u; i++) {
        d[2u * i] += vec4<i32>(idot4(a0[i], b0.x), idot4(a0[i], b0.y), idot4(a0[i], b0.z), idot4(a0[i], b0.w));
        d[2u * i + 1u] += vec4<i32>(idot4(a0[i], b1.x), idot4(a0[i], b1.y), idot4(a0[i], b1.z), idot4(a0[i], b1.w));
        d[2u * i + 8u] += vec4<i32>(idot4(a1[i], b0.x), idot4(a1[i], b0.y), idot4(a1[i], b0.z), idot4(a1[i], b0.w));
        d[2u * i + 9u] += vec4<i32>(idot4(a1[i], b1.x), idot4(a1[i], b1.y), idot4(a1[i], b1.z), idot4(a1[i], b1.w));
      }
    }
    workgroupBarrier();
    let g = b * 32u / G;
    for (var h = 0u; h < 2u; h++) {
      var sw = vec4<f32>(0.0);
      var zw = vec4<f32>(0.0);
      for (var j = 0u; j < 4u; j++) {
        let n = min(n0 + 32u * h + lid.x * 4u + j, p.N - 1u);
        sw[j] = f32(scales[n * p.groups + g]);
        if (!SYM) { zw[j] = f32(zeros[n * p.groups + g]); }
      }
      zw -= select(0.0, 8.0, BITS == 4u);
      for (var i = 0u; i < 8u; i++) {
        var dv = vec4<f32>(d[2u * i + h]);
        if (BITS == 4u) { dv = vec4<f32>(d[2u * i + h] >> vec4<u32>(4u)); }
        if (!SYM) { dv -= zw * rsum[i]; }
        acc[2u * i + h] += dv * sw * rs[i];
      }
    }
  }
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + 32u * (i / 4u) + lid.y * 4u + i % 4u;
    if (m >= p.M) { continue; }
    for (var h = 0u; h < 2u; h++) {
      for (var j = 0u; j < 4u; j++) {
        let n = n0 + 32u * h + lid.x * 4u + j;
        if (n >= p.N) { continue; }
        finish(m, n, acc[2u * i + h][j]);
      }
    }
  }
}
