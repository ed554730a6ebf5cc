/** The command line of `npm run bench -- llm` (bench/README.md, "llm", says what each option does). */
import { parseArgs } from 'node:util';
import { KV_DTYPES, type KvDType } from '../../src/ops/kv-cache.ts';
import { ACTIVATIONS, LINEAR_DTYPES, type Activations, type LinearDType } from '../../src/ops/linear.ts';
import { parseKernels } from '../lib/device.ts';
import { ORT_INSTALL } from './ort.ts';
import { LLM_SHAPE_NAMES, type LlmShape } from '../../fixtures/index.ts';

/**
 * A row's weights: webq's Linear dtypes, or `gptq-q4`, the model as a GPTQ int4 checkpoint loaded as
 * q4 (gptq.ts); q8, q4 and gptq-q4 may name their activations (`q4:int8`, `q4:float`; bare: the
 * load's default).
 */
export type LlmDType = LinearDType | 'gptq-q4' | `${'q8' | 'q4' | 'gptq-q4'}:${Activations}`;
export const LLM_DTYPES: readonly LlmDType[] = [...LINEAR_DTYPES, 'gptq-q4', ...(['q8', 'q4', 'gptq-q4'] as const).flatMap((d) => ACTIVATIONS.map((a): LlmDType => `${d}:${a}`))];

/** A row's weights and its activations (undefined: the default). */
export function splitLlmDType(d: LlmDType): { dtype: LinearDType | 'gptq-q4'; activations?: Activations } {
  const [dtype, activations] = d.split(':') as [LinearDType | 'gptq-q4', Activations | undefined];
  return { dtype, activations };
}

export const LLM_USAGE = `usage: npm run bench -- llm [--json] [--model ${LLM_SHAPE_NAMES.join('|')}] [--layers N] [--seed N]
    [--dtypes f32,f16,q8,q4,gptq-q4,w8a8] [--gptq-group 128] [--kv f16,int8] [--prompt 128] [--tokens 16] [--reps 1]
    [--contexts 128,512,1024,2048|none] [--steps 8] [--fill random|prefill] [--fill-chunk 256]
    [--decode-dtype q4] [--batch 8] [--kernels gpu|cpu]
    [--ort] [--ort-ep webgpu|cpu] [--ort-chunk 16] [--ort-accuracy-level 0] [--ort-log 3]
  --model         model shape, random weights (default smollm2-135m; tiny is for tests)
  --layers        override num_hidden_layers
  --dtypes, --kv  Linear weight dtypes x KV cache types: one row each; gptq-q4 is the same model
                  as a GPTQ int4 checkpoint (AutoGPTQ packing), loaded through webq's importer as q4;
                  q8, q4 and gptq-q4 may name their activations: q4:int8, q4:float (bare: the default)
  --gptq-group    gptq-q4's group_size (default 128, or 64/32 where 128 does not divide every Linear's inputs)
  --prompt        prefill length; --tokens: greedy tokens timed per row
  --reps          rounds over the rows (each row once per round; medians reported)
  --contexts      cache lengths at which decode is timed ('none' skips); --steps: steps timed at each
  --fill          how the cache reaches a context: random keys/values (fast) or prefills of --fill-chunk
  --decode-dtype  weights of the contexts and read-back runs (default q4, else the first dtype)
  --batch         read-back batch of run-ahead decoding, compared with 1
  --ort           onnxruntime-node beside webq (${ORT_INSTALL})
  --ort-chunk     onnxruntime's prefill chunk in the fp32 correctness check (at most 31)
  --ort-accuracy-level  MatMulNBits accuracy_level of onnxruntime's q4 graph (0: unset)
  --ort-log       onnxruntime's logSeverityLevel (0: verbose, node placements and programs)
`;

export interface LlmOptions {
  json: boolean;
  model: LlmShape;
  layers: number | undefined;
  seed: number;
  dtypes: LlmDType[];
  /** gptq-q4's group_size; undefined: chosen per model (gptq.ts gptqGroupFor). */
  gptqGroup: number | undefined;
  kv: KvDType[];
  prompt: number;
  tokens: number;
  reps: number;
  /** Ascending, no duplicates; empty with --contexts none. */
  contexts: number[];
  steps: number;
  fill: 'random' | 'prefill';
  fillChunk: number;
  decodeDtype: LlmDType;
  batch: number;
  kernels: 'gpu' | 'cpu' | undefined;
  ort: boolean;
  ortEp: string;
  ortChunk: number;
  ortAccuracyLevel: number;
  ortLog: number;
}

const FLAGS = ['json', 'help', 'ort'];
const VALUES = ['model', 'layers', 'seed', 'dtypes', 'gptq-group', 'kv', 'prompt', 'tokens', 'reps', 'contexts', 'steps', 'fill', 'fill-chunk', 'decode-dtype', 'batch', 'kernels', 'ort-ep', 'ort-chunk', 'ort-accuracy-level', 'ort-log'];

/** The options, or 'help'; throws an Error naming the bad option. */
export function parseLlmOptions(args: string[]): LlmOptions | 'help' {
  const options = Object.fromEntries([...FLAGS.map((k) => [k, { type: 'boolean' }]), ...VALUES.map((k) => [k, { type: 'string' }])]);
  const v = parseArgs({ args, options }).values as Record<string, string | boolean | undefined>;
  if (v.help) return 'help';
  const int = (name: string, fallback: number, min = 1): number => {
    const x = Number(v[name] ?? fallback);
    if (!Number.isInteger(x) || x < min) throw new Error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v[name])}`);
    return x;
  };
  const oneOf = <T extends string>(name: string, fallback: T, allowed: readonly T[]): T => {
    const x = (v[name] ?? fallback) as T;
    if (!allowed.includes(x)) throw new Error(`--${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(x)}`);
    return x;
  };
  const list = <T extends string>(name: string, fallback: string, allowed: readonly T[]): T[] => {
    const xs = String(v[name] ?? fallback).split(',').filter(Boolean) as T[];
    const bad = xs.filter((x) => !allowed.includes(x));
    if (bad.length || !xs.length) throw new Error(`--${name}: ${bad.join(', ') || 'nothing given'}; choose from ${allowed.join(', ')}`);
    return [...new Set(xs)];
  };
  const contexts = v.contexts === 'none' ? [] : String(v.contexts ?? '128,512,1024,2048').split(',').map(Number);
  if (contexts.some((c) => !Number.isInteger(c) || c < 1)) throw new Error(`--contexts must be positive integers or none, got ${JSON.stringify(v.contexts)}`);
  const dtypes = list('dtypes', 'f32,f16,q8,q4,gptq-q4,w8a8', LLM_DTYPES);
  return {
    json: !!v.json,
    model: oneOf('model', 'smollm2-135m', LLM_SHAPE_NAMES),
    layers: v.layers === undefined ? undefined : int('layers', 1),
    seed: int('seed', 1234, 0),
    dtypes,
    gptqGroup: v['gptq-group'] === undefined ? undefined : int('gptq-group', 128),
    kv: list('kv', 'f16,int8', KV_DTYPES),
    prompt: int('prompt', 128),
    tokens: int('tokens', 16),
    reps: int('reps', 1),
    contexts: [...new Set(contexts)].sort((a, b) => a - b),
    steps: int('steps', 8),
    fill: oneOf('fill', 'random', ['random', 'prefill'] as const),
    fillChunk: int('fill-chunk', 256),
    decodeDtype: oneOf('decode-dtype', dtypes.includes('q4') ? 'q4' : dtypes[0], LLM_DTYPES),
    batch: int('batch', 8),
    kernels: parseKernels(v.kernels),
    ort: !!v.ort,
    ortEp: oneOf('ort-ep', 'webgpu', ['webgpu', 'cpu'] as const),
    ortChunk: Math.min(31, int('ort-chunk', 16)),
    ortAccuracyLevel: int('ort-accuracy-level', 0, 0),
    ortLog: int('ort-log', 3, 0),
  };
}
