/** out = gelu(x) (erf form) and out = silu(x); the gated MLPs' SwiGLU and GeGLU; logit soft-capping. */
import { ShapeError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { floatPrecision, grid1d, sameShape } from './common.ts';

const WG = 256;

function unary(entry: 'gelu' | 'silu', ctx: GpuContext, rec: Recorder, x: Tensor, out?: Tensor): Tensor {
  const o = out ?? ctx.empty(x.shape, x.dtype);
  sameShape(entry, x, o, 'x', 'out');
  const precision = floatPrecision(entry, { x, out: o });
  rec.dispatch({ shader: 'activation', entry, variant: { precision }, constants: { WG } }, { x, out: o }, grid1d(x.size, WG), { n: x.size });
  return o;
}

export const gelu = (ctx: GpuContext, rec: Recorder, x: Tensor, out?: Tensor): Tensor => unary('gelu', ctx, rec, x, out);
export const silu = (ctx: GpuContext, rec: Recorder, x: Tensor, out?: Tensor): Tensor => unary('silu', ctx, rec, x, out);

/** SwiGLU over a fused gate|up projection: x [..., 2I] (gate then up) -> out [..., I] = silu(gate) * up. */
export function swiglu(ctx: GpuContext, rec: Recorder, x: Tensor, out?: Tensor): Tensor {
  return gated('swiglu', ctx, rec, x, out);
}

/** GeGLU (Gemma): out [..., I] = gelu_tanh(gate) * up, GELU's tanh approximation. */
export function gegluTanh(ctx: GpuContext, rec: Recorder, x: Tensor, out?: Tensor): Tensor {
  return gated('geglu_tanh', ctx, rec, x, out);
}

/** GeGLU over ModernBERT's fused Wi projection: x [..., 2I] (input then gate) -> out [..., I] = gelu(input) * gate (erf GELU). */
export function geglu(ctx: GpuContext, rec: Recorder, x: Tensor, out?: Tensor): Tensor {
  return gated('geglu', ctx, rec, x, out);
}

/** The gated activations: x [..., 2I] in two halves -> out [..., I] = act(first half) * second half. */
function gated(entry: 'swiglu' | 'geglu_tanh' | 'geglu', ctx: GpuContext, rec: Recorder, x: Tensor, out?: Tensor): Tensor {
  const cols2 = x.shape[x.shape.length - 1];
  if (cols2 % 2 !== 0) throw new ShapeError(`${entry}: the last dimension of x ${JSON.stringify(x.shape)} must be even (two halves)`);
  const cols = cols2 / 2;
  const o = out ?? ctx.empty([...x.shape.slice(0, -1), cols], x.dtype);
  if (o.size !== x.size / 2) throw new ShapeError(`${entry}: out ${JSON.stringify(o.shape)} must hold ${x.size / 2} values`);
  const precision = floatPrecision(entry, { x, out: o });
  rec.dispatch({ shader: 'activation', entry, variant: { precision }, constants: { WG } }, { x, out: o }, grid1d(o.size, WG), { n: o.size, cols });
  return o;
}

/** out = cap tanh(x / cap) elementwise (Gemma's final_logit_softcapping on the logits); cap > 0. */
export function softcap(ctx: GpuContext, rec: Recorder, x: Tensor, cap: number, out?: Tensor): Tensor {
  if (!(cap > 0)) throw new ShapeError(`softcap: cap must be a positive number, got ${cap}`);
  const o = out ?? ctx.empty(x.shape, x.dtype);
  sameShape('softcap', x, o, 'x', 'out');
  const precision = floatPrecision('softcap', { x, out: o });
  rec.dispatch({ shader: 'activation', entry: 'softcap', variant: { precision }, constants: { WG } }, { x, out: o }, grid1d(x.size, WG), { n: x.size, cap });
  return o;
}
