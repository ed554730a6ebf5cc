/** Float ops: each records one dispatch into a Recorder. */
export { add, mul } from './elementwise.ts';
export { gelu, silu } from './activation.ts';
export { layerNorm, rmsNorm } from './norm.ts';
export { softmax } from './softmax.ts';
export { embedding } from './embedding.ts';
export { matmul, type MatmulOptions } from './matmul.ts';
