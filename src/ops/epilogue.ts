/** What a matmul kernel may fuse after the product: out = act(acc + bias) + residual. */
import { ShapeError } from '../errors.ts';
import { shapeStr, type Tensor } from '../gpu/tensor.ts';

/** relu: DistilBERT's classification head (pre_classifier). */
export type Activation = 'gelu' | 'silu' | 'tanh' | 'relu';

export interface Epilogue {
  /** [N], added before the activation. */
  bias?: Tensor;
  activation?: Activation;
  /** Same shape as the output, added after the activation (a residual connection). */
  residual?: Tensor;
}

export const ACT_CODE: Readonly<Record<Activation | 'none', number>> = { none: 0, gelu: 1, silu: 2, tanh: 3, relu: 4 };

export function checkEpilogue(op: string, e: Epilogue, M: number, N: number, batch = 1): void {
  if (e.bias && e.bias.size !== N) throw new ShapeError(`${op}: bias must have N=${N} elements, got ${shapeStr(e.bias.shape)}`);
  if (e.residual && e.residual.size !== batch * M * N) throw new ShapeError(`${op}: residual must hold ${batch * M * N} values (the output's), got ${shapeStr(e.residual.shape)}`);
  if (e.activation && !(e.activation in ACT_CODE)) throw new ShapeError(`${op}: unknown activation '${e.activation}' (gelu, silu, tanh or relu)`);
}
