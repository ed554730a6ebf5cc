/**
 * Quantized matmul: out[M, N] = epilogue(x[M, K] W^T) for an int4/int8 weight (see qweight.ts).
 *   act 'float': weight-only (W4A16/W8A16), x stays f16/f32 and weights are unpacked in-kernel;
 *   act 'token' | 'block': x is first quantized to int8 on the GPU (one scale per token, or per
 *     block of 32) and the product runs on packed int8 dot products (W8A8/W4A8);
 *   act 'static': the same with one scale for the whole input, fixed by calibration (w8a8-static:
 *     `actScale`, a [1] f32 tensor), so no per-token reduction runs.
 * Decode-sized M uses the GEMV kernels, larger M the tiled GEMM; chunks of a split weight each
 * write their own columns of the one output.
 */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { grid, type Recorder } from '../gpu/recorder.ts';
import { shapeStr, type Tensor } from '../gpu/tensor.ts';
import { floatPrecision, subgroupRowsGrid } from './common.ts';
import { ACT_CODE, checkEpilogue, type Epilogue } from './epilogue.ts';
import { multiGemvConfig } from './gemv-multi.ts';
import { gpuGemvConfig } from './matmul.ts';
import type { QWeight } from './qweight.ts';

export type ActQuant = 'token' | 'block' | 'static';

export interface QMatmulOptions extends Epilogue {
  out?: Tensor;
  /** How activations enter the product (default 'float'). */
  act?: 'float' | ActQuant;
  /** act 'static': the activation scale, f32 [1]. */
  actScale?: Tensor;
}

/** Largest M served by the GEMV kernels (one workgroup row per activation row). */
export const GEMV_MAX_M = 4;
// 16 rows x 8 threads: measured fastest of TPR 1..32 x WG 64..256 for the int4 GEMV on lavapipe
// (5.1 vs 7.0 ms at 4096x4096) while keeping 8 neighbouring threads on each row for GPUs.
const ROWS = 16;
const TPR = 8;
const TILE = 64;
/** qgemm_sg.wgsl: columns per workgroup (wint, wonly4: two per lane; wonly: one) and rows. */
const SG_COLS = { wint: 128, wonly: 64, wonly4: 128 };
const SG_ROWS = 16;

export interface QuantizedActs {
  /** [M, Kp/4] packed int8 */
  xq: Tensor;
  /** [M] or [M, Kp/32] scales ([1] for a static scale) */
  xs: Tensor;
  /** [M, Kp/32] sums of the int8 codes of each block */
  xsum: Tensor;
  perBlock: boolean;
  dispose(): void;
}

/**
 * Quantizes x [M, K] to int8 rows padded to Kp (a multiple of 32), per token, per block of 32, or
 * with the fixed scale `staticScale` (f32 [1], mode 'static': read, never written or freed here).
 */
export function quantizeActs(ctx: GpuContext, rec: Recorder, x: Tensor, Kp: number, mode: ActQuant, staticScale?: Tensor): QuantizedActs {
  const precision = floatPrecision('quantizeActs', { x });
  const K = x.shape[x.shape.length - 1];
  const M = x.size / K;
  if (Kp % 32 !== 0 || Kp < K) throw new ShapeError(`quantizeActs: Kp=${Kp} must be a multiple of 32 and >= K=${K}`);
  const perBlock = mode === 'block';
  const isStatic = mode === 'static';
  if (isStatic && (!staticScale || staticScale.dtype !== 'f32' || staticScale.size !== 1)) throw new ShapeError('quantizeActs: a static scale must be an f32 tensor of one value');
  const xq = ctx.empty([M, Kp / 4], 'u32', 'webq:xq');
  const xs = isStatic ? staticScale! : ctx.empty(perBlock ? [M, Kp / 32] : [M], 'f32', 'webq:xs');
  const xsum = ctx.empty([M, Kp / 32], 'i32', 'webq:xsum');
  // CPU-emulated adapters: one subgroup per row, no barriers (quantize_act_sg.wgsl says why), for
  // GEMM-sized M. A decode row (M <= GEMV_MAX_M) keeps the 64-thread kernel: one 8-lane subgroup
  // walking K = 4096 alone made the q4 decode GEMV ~20% slower on lavapipe.
  const sg = ctx.caps.kernels === 'cpu' && M > GEMV_MAX_M;
  rec.dispatch(
    sg
      ? { shader: 'quantize_act_sg', variant: { precision, subgroups: true }, constants: { PER_BLOCK: perBlock, STATIC: isStatic, SG: ctx.caps.subgroupSize, VEC4: K % 4 === 0 } }
      : { shader: 'quantize_act', variant: { precision }, constants: { PER_BLOCK: perBlock, STATIC: isStatic } },
    { x, x4: x, xq, xs, xsum },
    sg ? subgroupRowsGrid(ctx.caps.subgroupSize, M) : grid(M),
    { M, K, Kp },
  );
  return { xq, xs, xsum, perBlock, dispose: () => [xq, isStatic ? null : xs, xsum].forEach((t) => t?.dispose()) };
}

export function qmatmul(ctx: GpuContext, rec: Recorder, x: Tensor, w: QWeight, opts: QMatmulOptions = {}): Tensor {
  const K = x.shape[x.shape.length - 1];
  if (K !== w.K) throw new ShapeError(`qmatmul: x ${shapeStr(x.shape)} has K=${K} but the weight is [${w.N}, ${w.K}]`);
  const M = x.size / K;
  const { N } = w;
  checkEpilogue('qmatmul', opts, M, N);
  const out = opts.out ?? ctx.empty([...x.shape.slice(0, -1), N], x.dtype);
  if (out.size !== M * N) throw new ShapeError(`qmatmul: out ${shapeStr(out.shape)} must hold ${M}x${N} values`);
  const operands: Record<string, Tensor> = { x, out, scales: w.chunks[0].scales };
  if (opts.bias) operands.bias = opts.bias;
  if (opts.residual) operands.residual = opts.residual;
  const precision = floatPrecision('qmatmul', operands);
  const act = opts.act ?? 'float';
  const acts = act === 'float' ? null : quantizeActs(ctx, rec, x, w.Kp, act, opts.actScale);
  // Weight-only batched decode (2..8 rows, both families): one workgroup per weight rows for every
  // row of x (qgemv4m_lib.wgsl), each code loaded and unpacked once.
  const gm = acts ? null : multiGemvConfig(ctx, M, K);
  const gemv = !!gm || M <= GEMV_MAX_M;
  const constants: Record<string, number | boolean> = {
    BITS: w.bits,
    SYM: w.symmetric,
    G: w.groupSize,
    HAS_BIAS: !!opts.bias,
    HAS_RES: !!opts.residual,
    ACT: ACT_CODE[opts.activation ?? 'none'],
  };
  // Weight-only decode with K % 4 == 0 (both families): qgemv4_lib.wgsl (vec4 loads of x, TPR threads
  // per row summed by subgroupAdd or a workgroup tree).
  const g4 = gm ?? (gemv && !acts && K % 4 === 0 ? gpuGemvConfig(ctx) : null);
  if (g4) Object.assign(constants, { TPR: g4.TPR, WG: g4.WG, NR: g4.NR }, gm && { MR: gm.MR });
  else if (gemv) Object.assign(constants, { TPR, WG: TPR * ROWS });
  const rows = g4 ? (g4.WG / g4.TPR) * g4.NR : ROWS;
  const ph = ctx.placeholder(precision);
  // GEMMs on a CPU-emulated adapter: the subgroup kernels (qgemm_sg.wgsl, SG_COLS x SG_ROWS).
  const sg = !gemv && ctx.caps.kernels === 'cpu';
  // Weight-only on the subgroup kernels with K % 4 == 0: rows of x read as vec4s (wonly4).
  const entry = acts ? 'wint' : sg && K % 4 === 0 ? 'wonly4' : 'wonly';
  // The tiled weight-only GEMM (qgemm.wgsl) reads x as vec4s where K % 4 == 0.
  if (!gemv && !sg && !acts) constants.VEC4 = K % 4 === 0;
  // GEMV: ROWS weight rows per workgroup, one per token. Tiled GEMM: 64 x 64. Subgroup GEMM:
  // SG_COLS x SG_ROWS.
  const workgroups = (n: number): [number, number] =>
    gemv ? [Math.ceil(n / rows), gm ? 1 : M] : sg ? [Math.ceil(n / SG_COLS[entry]), Math.ceil(M / SG_ROWS)] : [Math.ceil(n / TILE), Math.ceil(M / TILE)];
  for (const c of w.chunks) {
    rec.dispatch(
      {
        shader: g4 ? `qgemv4${gm ? 'm' : ''}${g4.sg ? '_sg' : ''}` : gemv ? 'qgemv' : sg ? 'qgemm_sg' : 'qgemm',
        entry,
        // Both entries share one module, which must compile whole: it always needs idot4.
        variant: { precision, idot: ctx.caps.dot4I8 ? 'native' : 'emulated', subgroups: sg || !!g4?.sg },
        constants,
      },
      {
        x4: x, // x viewed as vec4s: bound by wonly4 only
        w: c.values,
        scales: c.scales,
        zeros: c.zeros ?? ph,
        x,
        xq: acts?.xq ?? ctx.placeholder('u32'),
        xs: acts?.xs ?? ctx.placeholder('f32'),
        xsum: acts?.xsum ?? ctx.placeholder('i32'),
        bias: opts.bias ?? ph,
        res: opts.residual ?? ph,
        out,
      },
      workgroups(c.N),
      {
        M,
        N: c.N,
        K,
        Kp: w.Kp,
        groups: w.groups,
        n0: c.n0,
        ldo: N,
        xsRow: acts?.perBlock ? w.Kp / 32 : act === 'static' ? 0 : 1, // static: xs[0] for every row
        xsBlk: acts?.perBlock ? 1 : 0,
      },
    );
  }
  acts?.dispose(); // back to the pool; later dispatches in this recorder run after these
  return out;
}
