// q1 (wint): 8x8 threads, each 8 rows x 8 columns (rows 4ty.. and 32+4ty.., columns 4tx.. and
// 32+4tx..), a 64 x 64 tile. Per word j a thread reads two activation vec4s and two weight vec4s
// from workgroup memory for 64 idot4 (q0: three vec4 for 32). Staging: one thread per row loads
// the block's 8 activation words as two vec4s, one thread per column its int4 block (one vec4).

//! import qlinear

var<workgroup> Ai: array<vec4<u32>, 128>; // [8 words][16 row quads]
var<workgroup> Bi: array<vec4<u32>, 128>; // [8 words][16 col quads]

@compute @workgroup_size(8, 8)
fn wint(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * 64u;
  let n0 = wg.x * 64u;
  let blocks = p.Kp / 32u;
  var acc: array<vec4<f32>, 16>; // acc[2i + h][j] = out[row i, column quad h, j]
  for (var q = 0u; q < 16u; q++) { acc[q] = vec4<f32>(0.0); }
  let ms = m0 + li; // the row and the column this thread stages
  let ns = n0 + li;
  for (var b = 0u; b < blocks; b++) {
    var x0 = vec4<u32>(0u);
    var x1 = vec4<u32>(0u);
    if (ms < p.M) {
      x0 = xq[ms * (p.Kp / 16u) + 2u * b];
      x1 = xq[ms * (p.Kp / 16u) + 2u * b + 1u];
    }
    for (var j = 0u; j < 4u; j++) {
      Ai[j * 16u + li / 4u][li % 4u] = x0[j];
      Ai[(j + 4u) * 16u + li / 4u][li % 4u] = x1[j];
    }
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
        let m = min(m0 + 32u * (i / 4u) + lid.y * 4u + i % 4u, p.M - 1u);
        var dv = vec4<f32>(d[2u * i + h]);
        if (BITS == 4u) { dv = vec4<f32>(d[2u * i + h] >> vec4<u32>(4u)); }
        if (!SYM) { dv -= zw * f32(xsum[m * blocks + b]); }
        acc[2u * i + h] += dv * sw * xs[m * p.xsRow + b * p.xsBlk];
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
