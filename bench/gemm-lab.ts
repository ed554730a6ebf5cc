/** `npm run bench -- gemm-lab`: the GEMM kernel lab (bench/lab/gemm.ts; bench/run.mjs runs only bench/*.ts). */
export { run } from './lab/gemm.ts';
