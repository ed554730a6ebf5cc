// Calibration statistics of one Linear's input X [M, K] (src/ops/calib-stats.ts), added to
// running totals so that each calibration batch adds its rows and only the totals are read back:
//
//   chan   stats[k] = max(stats[k], max_m |x_mk|), stats[K + k] += sum_m |x_mk|, stats[2K + k] += sum_m x_mk
//   xtx    xtx[i, j] += sum_m x_mi x_mj                      (the Gram matrix X^T X, [K, K])
//   hist   hist[min(floor(|x| * invWidth), BINS - 1)] += 1    (|x| in BINS bins, as TensorRT)
//
// Rows whose mask is 0 (padding in a batch of texts) are skipped when HAS_MASK.

struct Params { M: u32, K: u32, invWidth: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> xtx: array<f32>;
@group(0) @binding(5) var<storage, read_write> hist: array<atomic<u32>>;

override HAS_MASK: bool = false;
override WG: u32 = 64u;
const BINS = 2048u;
const TS = 16u; // xtx tile: 16 x 16 outputs per workgroup, 16 rows of X staged per step

fn live(m: u32) -> bool {
  return !HAS_MASK || mask[m] != 0u;
}

// One thread per channel, walking the rows: no atomics, no barriers.
@compute @workgroup_size(WG)
fn chan(@builtin(global_invocation_id) gid: vec3u) {
  let k = gid.x;
  if (k >= p.K) { return; }
  var amax = stats[k];
  var sa = 0.0;
  var s = 0.0;
  for (var m = 0u; m < p.M; m++) {
    if (!live(m)) { continue; }
    let v = f32(x[m * p.K + k]);
    amax = max(amax, abs(v));
    sa += abs(v);
    s += v;
  }
  stats[k] = amax;
  stats[p.K + k] += sa;
  stats[2u * p.K + k] += s;
}

var<workgroup> A: array<f32, 256>; // [TS rows][TS columns i]
var<workgroup> B: array<f32, 256>; // [TS rows][TS columns j]

@compute @workgroup_size(16, 16)
fn gram(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let i0 = wg.x * TS;
  let j0 = wg.y * TS;
  var acc = 0.0;
  for (var m0 = 0u; m0 < p.M; m0 += TS) {
    // Thread (lid.x, lid.y) stages row m0 + lid.y, columns i0 + lid.x and j0 + lid.x.
    let m = m0 + lid.y;
    var a = 0.0;
    var b = 0.0;
    if (m < p.M && live(m)) {
      if (i0 + lid.x < p.K) { a = f32(x[m * p.K + i0 + lid.x]); }
      if (j0 + lid.x < p.K) { b = f32(x[m * p.K + j0 + lid.x]); }
    }
    A[lid.y * TS + lid.x] = a;
    B[lid.y * TS + lid.x] = b;
    workgroupBarrier();
    for (var r = 0u; r < TS; r++) { acc += A[r * TS + lid.x] * B[r * TS + lid.y]; }
    workgroupBarrier();
  }
  let i = i0 + lid.x;
  let j = j0 + lid.y;
  if (i < p.K && j < p.K) { xtx[i * p.K + j] += acc; }
}

@compute @workgroup_size(WG)
fn histogram(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= p.M * p.K) { return; }
  if (!live(e / p.K)) { return; }
  // Clamped as a float first: converting a huge (or infinite) f32 to u32 is not portable.
  let b = u32(min(abs(f32(x[e])) * p.invWidth, f32(BINS - 1u)));
  atomicAdd(&hist[b], 1u);
}
