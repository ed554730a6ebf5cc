/**
 * Kernel lab for the `gpu` family's Linear GEMMs (llm.c's dev/cuda style): numbered versions of a
 * kernel side by side, each checked against the plain-TypeScript reference (src/reference/) on an
 * odd shape before it is timed on the BERT shapes, all in one process so the ratios compare.
 * Only the winner moves into shaders/; the versions stay here as the record of what was tried.
 *
 *   npm run bench -- gemm-lab --op f32 --versions v0,v1      # f32 x f32, C = A B^T + bias
 *   npm run bench -- gemm-lab --op q4                        # int4 weights x int8 block activations
 *   npm run bench -- gemm-lab --op qgemv --bits 8            # decode GEMVs through qmatmul() (gemv: matmul())
 *
 * A version is a WGSL file in bench/lab/gemm/ with the contract of the shader it would replace
 * (matmul.wgsl's bindings via matmul_lib, or qgemm.wgsl's via qlinear), an entry point and the
 * output tile one workgroup computes (which sets the dispatch). The files are registered into the
 * bundled shader table at run time (lab only), so they go through webq's real pipeline cache,
 * reflection, uniform packing and timestamp timing.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { GpuContext } from '../../src/gpu/context.ts';
import type { Recorder } from '../../src/gpu/recorder.ts';
import { WGSL } from '../../src/gpu/shaders.generated.ts';
import type { Tensor } from '../../src/gpu/tensor.ts';
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/io/safetensors/half.ts';
import { copy } from '../../src/ops/copy.ts';
import { matmul } from '../../src/ops/matmul.ts';
import { qmatmul, quantizeActs } from '../../src/ops/qmatmul.ts';
import { uploadQuantized } from '../../src/ops/qweight.ts';
import { quantizeWeight } from '../../src/quant/rtn.ts';
import { refLinear, refQLinear, refW8A8 } from '../../src/reference/qmatmul.ts';
import { createBenchContext, withErrorScopes } from '../lib/device.ts';
import { fmt, measure, seeded, table, type BenchIO } from '../lib/measure.ts';

type Op = 'f32' | 'f16' | 'q4' | 'gemv' | 'qgemv';
type Shape = [M: number, N: number, K: number];

export interface Version {
  name: string;
  op: Op[];
  /** WGSL file in bench/lab/gemm/ (without .wgsl), or a shader of shaders/ for the baseline. */
  file: string;
  entry: string;
  /** Output rows (M) and columns (N) per workgroup. */
  tile: [rows: number, cols: number];
  constants?: Record<string, number | boolean>;
  /** Needs K % 4 == 0 (vec4 rows). */
  vec4?: boolean;
  /**
   * Compiled with `enable subgroups;`; needs one fixed subgroup size from 8 to 64 (skipped
   * otherwise). 'sg8' also sets the override SG8 where that size is 8.
   */
  subgroups?: 'generic' | 'sg8';
  /** q4: weight-only (float activations, no quantize_act pass; checked against refQLinear). */
  wonly?: boolean;
  /** q4: int8 block activations quantized inside the kernel (no quantize_act pass). */
  fused?: boolean;
  /**
   * gemv / qgemv versions that run the shipped ops (matmul() / qmatmul(), gpu family) on a device
   * made with DeviceOptions.gemv set so; qgemv also with this activation mode ('block':
   * quantize_act + wint).
   */
  shipped?: { reduce: 'auto' | 'workgroup' | 'off'; act?: 'float' | 'block'; wg?: number; nr?: number };
  note: string;
}

// The versions, oldest first. mm0, q0 and g0 are what shaders/ shipped when the lab started; what
// each measured and which were shipped: bench/lab/README.md.
export const VERSIONS: Version[] = [
  { name: 'mm0', op: ['f32', 'f16'], file: 'mm0', entry: 'main', tile: [64, 64], note: 'shipped: 16x16 threads, 4x4 per thread, scalar staging, BK 16' },
  { name: 'mm1', op: ['f32', 'f16'], file: 'mm1', entry: 'main', tile: [64, 64], note: '8x8 threads, 8x8 per thread (two vec4 per operand and k), BK 16 (shipped: matmul.wgsl main)' },
  { name: 'mm2', op: ['f32', 'f16'], file: 'mm2', entry: 'main', tile: [64, 64], vec4: true, note: 'mm1 with vec4 global loads along K (shipped: matmul.wgsl main4)' },
  { name: 'mm3', op: ['f32', 'f16'], file: 'mm3', entry: 'main', tile: [64, 64], note: 'mm1 with BK 32' },
  { name: 'mm4', op: ['f32', 'f16'], file: 'mm4', entry: 'main', tile: [16, 256], vec4: true, note: '16 workgroup-uniform A rows (global), 4 columns per thread, B tile staged in workgroup memory' },
  { name: 'mm5', op: ['f32', 'f16'], file: 'mm5', entry: 'main', tile: [16, 256], vec4: true, note: 'mm4 with B read from global per thread (no workgroup memory)' },
  { name: 'mm6', op: ['f32', 'f16'], file: 'mm6', entry: 'main', tile: [64, 64], vec4: true, note: 'mm2 with BK 32' },
  { name: 'mm7', op: ['f32', 'f16'], file: 'mm7', entry: 'main', tile: [64, 64], vec4: true, subgroups: 'sg8', note: 'mm2 with A in registers, broadcast by subgroupShuffle in groups of 8 lanes (B staged, BK 32)' },
  { name: 'mm7g', op: ['f32', 'f16'], file: 'mm7', entry: 'main', tile: [64, 64], vec4: true, subgroups: 'generic', note: 'mm7 without the SG8 specialization (shuffle lane varies per lane, as for subgroups of 16-64)' },
  { name: 'mm8', op: ['f32', 'f16'], file: 'mm8', entry: 'main', tile: [64, 64], vec4: true, subgroups: 'sg8', note: 'mm7 with B read from global per lane (no workgroup tiles, no barriers)' },
  { name: 'mm8g', op: ['f32', 'f16'], file: 'mm8', entry: 'main', tile: [64, 64], vec4: true, subgroups: 'generic', note: 'mm8 without the SG8 specialization' },
  { name: 'g0', op: ['gemv'], file: 'g0', entry: 'main', tile: [1, 8], constants: { TPR: 8, WG: 64 }, note: 'shipped decode GEMV: 8 threads per row, scalar loads in runs of 4' },
  { name: 'g1', op: ['gemv'], file: 'g1', entry: 'main4', tile: [1, 8], constants: { TPR: 8, WG: 64 }, note: 'g0 with one vec4 load of x and of W per run (not kept: no clear gain on lavapipe)' },
  { name: 'gv-old', op: ['gemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'off' }, note: 'matmul(): gemv.wgsl (shared with the cpu family)' },
  { name: 'gv4-sg', op: ['gemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto' }, note: 'matmul(): gemv4_sg.wgsl, vec4 loads, TPR = subgroup size, subgroupAdd' },
  { name: 'gv4-sg64', op: ['gemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto', wg: 64 }, note: 'gv4-sg with 64 threads per workgroup' },
  { name: 'gv4-sg256', op: ['gemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto', wg: 256 }, note: 'gv4-sg with 256 threads per workgroup' },
  { name: 'gv4-sg-nr2', op: ['gemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto', nr: 2 }, note: 'gv4-sg with 2 rows per thread (x loads shared)' },
  { name: 'gv4-sg-nr4', op: ['gemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto', nr: 4, wg: 64 }, note: 'gv4-sg with 4 rows per thread, 64 threads' },
  { name: 'gv4-sg-nr4w128', op: ['gemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto', nr: 4, wg: 128 }, note: 'gv4-sg with 4 rows per thread, 128 threads' },
  { name: 'gv4-wg-nr4', op: ['gemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'workgroup', nr: 4, wg: 128 }, note: 'gv4-wg with 4 rows per thread' },
  { name: 'gv4-wg', op: ['gemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'workgroup' }, note: 'matmul(): gemv4.wgsl, vec4 loads, TPR 32, workgroup tree' },
  { name: 'qv-wint', op: ['qgemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'off', act: 'block' }, note: 'q4 decode as the gpu family ran it: quantize_act + qgemv.wgsl wint' },
  { name: 'qv-wonly', op: ['qgemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'off', act: 'float' }, note: 'qgemv.wgsl wonly (weight-only, scalar x loads)' },
  { name: 'qv4-sg', op: ['qgemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto', act: 'float' }, note: 'qgemv4_sg.wgsl: weight-only, vec4<u32> codes + vec4 x, TPR = subgroup size, subgroupAdd' },
  { name: 'qv4-sg64', op: ['qgemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto', act: 'float', wg: 64 }, note: 'qv4-sg with 64 threads per workgroup' },
  { name: 'qv4-sg256', op: ['qgemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto', act: 'float', wg: 256 }, note: 'qv4-sg with 256 threads per workgroup' },
  { name: 'qv4-sg-nr2', op: ['qgemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto', act: 'float', nr: 2 }, note: 'qv4-sg with 2 rows per thread (x loads shared)' },
  { name: 'qv4-sg-nr4', op: ['qgemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto', act: 'float', nr: 4, wg: 64 }, note: 'qv4-sg with 4 rows per thread, 64 threads' },
  { name: 'qv4-sg-nr4w128', op: ['qgemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'auto', act: 'float', nr: 4, wg: 128 }, note: 'qv4-sg with 4 rows per thread, 128 threads' },
  { name: 'qv4-wg-nr4', op: ['qgemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'workgroup', act: 'float', nr: 4, wg: 128 }, note: 'qv4-wg with 4 rows per thread' },
  { name: 'qv4-wg', op: ['qgemv'], file: '', entry: '', tile: [1, 1], shipped: { reduce: 'workgroup', act: 'float' }, note: 'qgemv4.wgsl: as qv4-sg, TPR 32, workgroup tree' },
  { name: 'q0', op: ['q4'], file: 'q0', entry: 'wint', tile: [64, 128], note: 'shipped: 16x16 threads, 4x8 per thread' },
  { name: 'q1', op: ['q4'], file: 'q1', entry: 'wint', tile: [64, 64], note: '8x8 threads, 8x8 per thread, vec4 staging (shipped: qgemm.wgsl wint)' },
  { name: 'qw0', op: ['q4'], file: 'qw0', entry: 'wonly', tile: [64, 64], wonly: true, note: 'weight-only, shipped until issue 20: 16x16 threads, 4x4 per thread, scalar staging, BK 32' },
  { name: 'q2', op: ['q4'], file: 'q2', entry: 'wonly8', tile: [64, 64], wonly: true, note: 'weight-only: int4 words dequantized once per tile load, 8x8 per thread, BK 32, no quantize_act' },
  { name: 'q4', op: ['q4'], file: 'q4', entry: 'wonly_wide', tile: [16, 128], wonly: true, note: 'weight-only, weights dequantized into registers (2 columns per thread, 16 rows), x block staged and read at thread-uniform addresses' },
  { name: 'q5', op: ['q4'], file: 'q4', entry: 'wonly_wide', tile: [32, 128], wonly: true, constants: { TM: 32 }, note: 'q4 with 32 rows per tile' },
  { name: 'q6', op: ['q4'], file: 'q6', entry: 'wonly_wide', tile: [16, 128], wonly: true, note: 'q4 with const TM 16 and per-word dequantization, rows innermost (accumulators in registers)' },
  { name: 'q7', op: ['q4'], file: 'q7', entry: 'wonly_wide', tile: [16, 128], wonly: true, note: 'q6 with 128 threads of one column each (onnxruntime MatMulNBitsWideTile shape)' },
  { name: 'q10', op: ['q4'], file: 'q10', entry: 'wonly_wide', tile: [16, 128], wonly: true, subgroups: 'sg8', note: 'q7 with the x rows broadcast by subgroupShuffle in groups of 8 lanes (what onnxruntime WideTile compiles to with subgroups)' },
  { name: 'q10g', op: ['q4'], file: 'q10', entry: 'wonly_wide', tile: [16, 128], wonly: true, subgroups: 'generic', note: 'q10 without the SG8 specialization' },
  { name: 'q8', op: ['q4'], file: 'q8', entry: 'wonly8', tile: [64, 64], wonly: true, note: 'q2 with workgroup tiles stored as T (f16: half the workgroup memory and bytes per read)' },
  { name: 'q9', op: ['q4'], file: 'q9', entry: 'wintq', tile: [64, 64], fused: true, note: 'q1 with the per-block int8 quantization of x fused into the tile load (no quantize_act pass)' },
  { name: 'q3', op: ['q4'], file: 'q3', entry: 'wonly8', tile: [64, 64], wonly: true, note: 'q2 with BK 16 (main4 staging: one vec4 of x, 4 codes per row and thread)' },
];

const here = dirname(fileURLToPath(import.meta.url));

function register(v: Version): string {
  const name = `lab_${v.name}`;
  (WGSL as Record<string, string>)[name] = readFileSync(join(here, 'gemm', `${v.file}.wgsl`), 'utf8');
  return name;
}

interface Case {
  /** The device the case's inputs live on (a shipped gemv/qgemv version's has its own gemv option). */
  ctx: GpuContext;
  /** Records the version's dispatch; returns the output. */
  run(rec: Recorder): Tensor;
  check(got: Float32Array): { ok: boolean; maxErr: number };
  dispose(): void;
}

/** Inputs of one shape for one op, uploaded once; `check` compares with the CPU reference. */
function makeCase(ctx: GpuContext, v: Version, op: Op, [M, N, K]: Shape, withRef: boolean, qAct: 'f32' | 'f16' = 'f16'): Case {
  if (v.shipped) return shippedCase(shippedContexts.get(v.name)!, v, op, [M, N, K], withRef, qAct);
  const shader = register(v);
  const x = seeded(M * K, 7 + M, 1);
  const w = seeded(N * K, 1000 + N + K, 0.05);
  const bias = seeded(N, 5 + N, 0.1);
  const act = op === 'f32' || op === 'gemv' ? 'f32' : op === 'q4' ? qAct : 'f16';
  const tx = ctx.uploadFloat(x, [M, K], act);
  const tb = ctx.uploadFloat(bias, [N], act);
  const grid: [number, number] = [Math.ceil(N / v.tile[1]), Math.ceil(M / v.tile[0])];
  if (op === 'gemv') {
    const tw = ctx.uploadFloat(w, [N, K], 'f32');
    const ref = withRef ? refLinear(x, M, K, w, N, bias) : null;
    return {
      ctx,
      run(rec) {
        const out = ctx.empty([M, N], 'f32');
        rec.dispatch(
          { shader, entry: v.entry, variant: { precision: 'f32' }, constants: { HAS_BIAS: true, HAS_RES: false, ACT: 0, ...v.constants } },
          { x: tx, w: tw, x4: tx, w4: tw, bias: tb, res: ctx.placeholder('f32'), out },
          [...grid, 1],
          { M, N, K, ldc: N, nOff: 0 },
        );
        return out;
      },
      check: (got) => errors(got, ref!, [3e-5, 1e-5], K),
      dispose: () => [tx, tb, tw].forEach((t) => t.dispose()),
    };
  }
  if (op !== 'q4') {
    const tw = ctx.uploadFloat(w, [N, K], act);
    const ref = withRef ? refLinear(op === 'f16' ? roundF16(x) : x, M, K, op === 'f16' ? roundF16(w) : w, N, op === 'f16' ? roundF16(bias) : bias) : null;
    return {
      ctx,
      run(rec) {
        const out = ctx.empty([M, N], act);
        rec.dispatch(
          { shader, entry: v.entry, variant: { precision: act, subgroups: !!v.subgroups }, constants: { TRANS_B: true, HAS_BIAS: true, HAS_RES: false, ACT: 0, ...(v.subgroups ? { SG8: v.subgroups === 'sg8' && ctx.caps.subgroupSize === 8 } : {}), ...v.constants } },
          { a: tx, b: tw, a4: tx, b4: tw, bias: tb, res: ctx.placeholder(act), c: out },
          [...grid, 1],
          { M, N, K, strideA: M * K, strideB: 0, strideC: M * N, ldc: N, nOff: 0 },
        );
        return out;
      },
      check: (got) => errors(got, ref!, op === 'f32' ? [3e-5, 1e-5] : [2e-3, 2e-3], K),
      dispose: () => [tx, tb, tw].forEach((t) => t.dispose()),
    };
  }
  // q4: asymmetric int4 in groups of 32 (linear.ts's q4), activations int8 per block of 32.
  const q = quantizeWeight(w, N, K, { bits: 4, group: 32, symmetric: false });
  const qw = uploadQuantized(ctx, q, act);
  const c = qw.chunks[0];
  const r16 = act === 'f16' ? roundF16 : (a: Float32Array) => a;
  const qr = { ...q, scales: r16(q.scales), zeros: q.zeros ? r16(q.zeros) : q.zeros };
  if (v.wonly) {
    const ref = withRef ? refQLinear(r16(x), M, K, qr, r16(bias)) : null;
    return {
      ctx,
      run(rec) {
        const out = ctx.empty([M, N], act);
        const ph = ctx.placeholder(act);
        rec.dispatch(
          { shader, entry: v.entry, variant: { precision: act, idot: ctx.caps.dot4I8 ? 'native' : 'emulated', subgroups: !!v.subgroups }, constants: { BITS: 4, SYM: false, G: 32, HAS_BIAS: true, HAS_RES: false, ACT: 0, ...(['q2', 'q3', 'q4', 'q6', 'q7', 'q8', 'q9', 'q10'].includes(v.file) ? { VEC4: K % 4 === 0 } : {}), ...(v.subgroups ? { SG8: v.subgroups === 'sg8' && ctx.caps.subgroupSize === 8 } : {}), ...v.constants } },
          { w: c.values, scales: c.scales, zeros: c.zeros ?? ph, x: tx, x4: tx, xq: ctx.placeholder('u32'), xs: ctx.placeholder('f32'), xsum: ctx.placeholder('i32'), bias: tb, res: ph, out },
          [...grid, 1],
          { M, N, K, Kp: qw.Kp, groups: qw.groups, n0: 0, ldo: N, xsRow: 0, xsBlk: 0 },
        );
        return out;
      },
      check: (got) => errors(got, ref!, [2e-3, 2e-3], K),
      dispose: () => ([tx, tb].forEach((t) => t.dispose()), qw.dispose()),
    };
  }
  const ref = withRef ? refW8A8(r16(x), M, K, qr, r16(bias), undefined, 'block') : null;
  return {
    ctx,
    run(rec) {
      const acts = v.fused
        ? { xq: ctx.placeholder('u32'), xs: ctx.placeholder('f32'), xsum: ctx.placeholder('i32'), dispose() {} }
        : quantizeActs(ctx, rec, tx, qw.Kp, 'block');
      const out = ctx.empty([M, N], act);
      const ph = ctx.placeholder(act);
      rec.dispatch(
        { shader, entry: v.entry, variant: { precision: act, idot: ctx.caps.dot4I8 ? 'native' : 'emulated' }, constants: { BITS: 4, SYM: false, G: 32, HAS_BIAS: true, HAS_RES: false, ACT: 0, ...(v.fused ? { VEC4: K % 4 === 0 } : {}), ...v.constants } },
        { w: c.values, scales: c.scales, zeros: c.zeros ?? ph, x: tx, x4: tx, xq: acts.xq, xs: acts.xs, xsum: acts.xsum, bias: tb, res: ph, out },
        [...grid, 1],
        { M, N, K, Kp: qw.Kp, groups: qw.groups, n0: 0, ldo: N, xsRow: qw.Kp / 32, xsBlk: 1 },
      );
      acts.dispose();
      return out;
    },
    check: (got) => errors(got, ref!, [2e-3, 2e-3], K),
    dispose: () => ([tx, tb].forEach((t) => t.dispose()), qw.dispose()),
  };
}

/** gemv / qgemv through the shipped ops, on `ctx`: a device made with v.shipped's gemv options. */
function shippedCase(ctx: GpuContext, v: Version, op: Op, [M, N, K]: Shape, withRef: boolean, qAct: 'f32' | 'f16'): Case {
  const s = v.shipped!;
  const x = seeded(M * K, 7 + M, 1);
  const w = seeded(N * K, 1000 + N + K, 0.05);
  const bias = seeded(N, 5 + N, 0.1);
  const act = op === 'gemv' ? 'f32' : qAct;
  const r16 = act === 'f16' ? roundF16 : (a: Float32Array) => a;
  const tx = ctx.uploadFloat(x, [M, K], act);
  const tb = ctx.uploadFloat(bias, [N], act);
  if (op === 'gemv') {
    const tw = ctx.uploadFloat(w, [N, K], 'f32');
    const ref = withRef ? refLinear(x, M, K, w, N, bias) : null;
    return {
      ctx,
      run: (rec) => matmul(ctx, rec, tx, tw, { bias: tb }),
      check: (got) => errors(got, ref!, [3e-5, 1e-5], K),
      dispose: () => [tx, tb, tw].forEach((t) => t.dispose()),
    };
  }
  // --bits 8: linear.ts's q8 (symmetric, groups of 128); else its q4 (asymmetric, groups of 32)
  const q = quantizeWeight(w, N, K, labBits === 8 ? { bits: 8, group: 128, symmetric: true } : { bits: 4, group: 32, symmetric: false });
  const qw = uploadQuantized(ctx, q, act);
  const qr = { ...q, scales: r16(q.scales), zeros: q.zeros ? r16(q.zeros) : q.zeros };
  const ref = !withRef ? null : s.act === 'block' ? refW8A8(r16(x), M, K, qr, r16(bias), undefined, 'block') : refQLinear(r16(x), M, K, qr, r16(bias));
  return {
    ctx,
    run: (rec) => qmatmul(ctx, rec, tx, qw, { act: s.act ?? 'float', bias: tb }),
    check: (got) => errors(got, ref!, act === 'f32' ? [3e-5, 1e-5] : [2e-3, 2e-3], K),
    dispose: () => ([tx, tb].forEach((t) => t.dispose()), qw.dispose()),
  };
}

let labBits: 4 | 8 = 4; // qgemv: --bits
/** The device of each shipped gemv/qgemv version: the lab's options plus its DeviceOptions.gemv. */
const shippedContexts = new Map<string, GpuContext>();
let labGpu: GPU | undefined; // module scope: Dawn must outlive its devices
async function labContext(toggles: string[]): Promise<GpuContext> {
  const mod = (await import('webgpu')) as { create(flags: string[]): GPU; globals: object };
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  labGpu ??= mod.create(['disable-dawn-features=timestamp_quantization', `enable-dawn-features=${toggles.join(',')}`]);
  return GpuContext.create({ gpu: labGpu, kernels: 'gpu' });
}

const roundF16 = (a: Float32Array): Float32Array => f16ArrayToF32(f32ArrayToF16(a));

/** Tests' tolerance: |d| <= atol * sqrt(K) + rtol * |ref|. */
function errors(got: Float32Array, ref: Float32Array, [atol, rtol]: [number, number], K: number): { ok: boolean; maxErr: number } {
  let ok = got.length === ref.length;
  let maxErr = 0;
  for (let i = 0; i < ref.length && ok; i++) {
    const d = Math.abs(got[i] - ref[i]);
    maxErr = Math.max(maxErr, Number.isNaN(d) ? Infinity : d);
    if (!(d <= atol * Math.sqrt(K) + rtol * Math.abs(ref[i]))) ok = false;
  }
  return { ok, maxErr };
}

const USAGE = `usage: npm run bench -- gemm-lab [--op f32|f16|q4] [--versions a,b] [--shapes MxNxK,...] [--act f16|f32 (q4, qgemv)] [--bits 4|8 (qgemv)] [--reps N]
  versions: ${VERSIONS.map((v) => `${v.name} (${v.op.join('/')}): ${v.note}`).join('\n            ')}
`;

// BERT (MiniLM) Linears over 512 tokens: QKV, attention output, FFN up, FFN down.
const SHAPES: Shape[] = [[512, 1152, 384], [512, 384, 384], [512, 1536, 384], [512, 384, 1536]];
// Odd sizes for the correctness check: edges in M, N and a K that is not a multiple of the tile.
const CHECK: Shape = [77, 133, 96];

export async function run(args: string[], io: BenchIO): Promise<number> {
  let values;
  try {
    values = parseArgs({ args, options: { op: { type: 'string' }, versions: { type: 'string' }, shapes: { type: 'string' }, act: { type: 'string' }, bits: { type: 'string' }, dawn: { type: 'string' }, reps: { type: 'string' }, help: { type: 'boolean' } } }).values;
  } catch (e) {
    io.stderr(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  const op = (values.op ?? 'f32') as Op;
  const names = values.versions?.split(',');
  const versions = VERSIONS.filter((v) => v.op.includes(op) && (!names || names.includes(v.name)));
  const shapes: Shape[] = values.shapes ? values.shapes.split(',').map((s) => s.split('x').map(Number) as Shape) : op === 'gemv' || op === 'qgemv' ? [[1, 4096, 4096], [1, 1536, 576], [1, 576, 1536]] : SHAPES;
  const reps = Number(values.reps ?? 3);
  const qAct = (values.act ?? 'f16') as 'f32' | 'f16';
  labBits = values.bits === '8' ? 8 : 4;
  // --dawn X,Y: a Dawn instance of the lab's own with these toggles enabled (say disable_robustness,
  // which onnxruntime's release builds enable), to see what the toggles cost a kernel.
  const { ctx } = values.dawn ? { ctx: await labContext(values.dawn.split(',')) } : await createBenchContext({ kernels: 'gpu' });
  let failed = 0;
  try {
    for (const v of versions) {
      const s = v.shipped;
      if (s) shippedContexts.set(v.name, await GpuContext.create({ ...ctx.dev.options, gemv: { reduce: s.reduce, wg: s.wg, nr: s.nr } }));
    }
    io.stderr(`adapter: ${ctx.caps.adapter}; op ${op}; min of ${reps} interleaved rounds\n`);
    const ms: Record<string, number[]> = {};
    const checks: Record<string, string> = {};
    for (const v of versions) {
      const sg = ctx.caps.subgroupSize;
      if (v.subgroups && !(ctx.caps.subgroups && sg >= 8 && sg <= 64 && (sg & (sg - 1)) === 0)) {
        checks[v.name] = `skipped: needs one fixed subgroup size from 8 to 64 (${sg || 'none'})`;
        io.stderr(`${v.name}: ${checks[v.name]}\n`);
        continue;
      }
      const c = makeCase(ctx, v, op, op === 'gemv' || op === 'qgemv' ? [1, 133, 96] : CHECK, true, qAct);
      try {
        const got = await withErrorScopes(c.ctx, async () => {
          const rec = c.ctx.record();
          const out = c.run(rec);
          await rec.submit();
          const r = await c.ctx.readFloat(out);
          out.dispose();
          return r;
        });
        const e = c.check(got);
        checks[v.name] = `${e.ok ? 'ok' : 'WRONG'} (max |d| ${e.maxErr.toExponential(1)})`;
        if (!e.ok) failed++;
      } catch (err) {
        checks[v.name] = `FAILED: ${(err as Error).message.slice(0, 200)}`;
        failed++;
      } finally {
        c.dispose();
      }
      io.stderr(`${v.name}: ${checks[v.name]}\n`);
    }
    // Time every passing version on each shape, versions interleaved round by round.
    const good = versions.filter((v) => checks[v.name].startsWith('ok'));
    for (const shape of shapes) {
      const cases = good.map((v) => ({ v, c: makeCase(ctx, v, op, shape, false, qAct), t: [] as number[] }));
      // Rounds of one run per version (after a warm-up round): a busy stretch of the machine
      // hits every version alike; the minimum is the least disturbed run.
      for (let r = 0; r <= reps; r++) {
        for (const x of cases) {
          const m = await measure(x.c.ctx, (rec) => {
            const out = x.c.run(rec);
            return () => out.dispose();
          }, { warmup: 0, reps: 1, label: x.v.name });
          if (r > 0) x.t.push(m.ms);
        }
      }
      for (const { v, t } of cases) {
        (ms[v.name] ??= []).push(Math.min(...t));
        io.stderr(`${v.name} ${shape.join('x')}: min ${fmt(Math.min(...t))} ms (runs ${t.map(fmt).join(' ')})\n`);
      }
      cases.forEach(({ c }) => c.dispose());
    }
    // The decode GEMV is bandwidth-bound: its weight bytes per second against a plain copy's
    // (bytes read + written) in the same process.
    let copyGbps = 0;
    if (op === 'gemv' || op === 'qgemv') {
      const bytes = 64 * 2 ** 20;
      const src = ctx.upload(new Uint32Array(bytes / 4).fill(1), [bytes / 4], 'u32');
      const dst = ctx.empty([bytes / 4], 'u32');
      const t: number[] = [];
      for (let r = 0; r <= reps; r++) t.push((await measure(ctx, (rec) => void copy(ctx, rec, src, dst), { warmup: 0, reps: 1 })).ms);
      copyGbps = (2 * bytes) / (Math.min(...t.slice(1)) * 1e6);
      src.dispose();
      dst.dispose();
      io.stderr(`copy kernel: ${copyGbps.toFixed(2)} GB/s (read + written)\n`);
    }
    const base = good[0]?.name;
    const rows = good.map((v) => {
      const t = ms[v.name];
      const total = t.reduce((a, b) => a + b, 0);
      const gflops = shapes.map(([M, N, K], i) => (2 * M * N * K) / (t[i] * 1e6));
      // GEMV: (weight + x + y bytes) / time over the copy kernel's (read + written) bytes / time.
      const traffic = ([M, N, K]: Shape) => (op === 'gemv' ? N * K * 4 : N * (K / 2 + (2 * K) / 32 * (qAct === 'f16' ? 2 : 4))) + (M * K + M * N) * (op === 'gemv' || qAct === 'f32' ? 4 : 2);
      const rate = op === 'gemv' || op === 'qgemv' ? shapes.map((sh, i) => fmt(traffic(sh) / (t[i] * 1e6) / copyGbps)).join('/') : gflops.map(fmt).join('/');
      return [v.name, checks[v.name], ...t.map(fmt), fmt(total), fmt(ms[base].reduce((a, b) => a + b, 0) / total), rate];
    });
    io.stdout(table(['version', 'check', ...shapes.map((s) => s.join('x')), 'total ms', `vs ${base}`, op === 'gemv' || op === 'qgemv' ? 'traffic GB/s / copy' : 'GFLOP/s'], rows, 2));
  } finally {
    for (const c of shippedContexts.values()) c.dispose();
    shippedContexts.clear();
    ctx.dispose();
  }
  return failed ? 1 : 0;
}
