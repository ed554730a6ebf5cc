/** Weight and activation quantization: the layout the GPU kernels read, and CPU quantizers for it. */
export * from './layout.ts';
export { quantizeWeight, dequantizeWeight, roundHalfAway } from './rtn.ts';
export { quantizeActivations, groupSums, readActivationCode, type QuantizedActivations } from './activations.ts';
