/**
 * What `webq quantize` (checkpoint.ts) takes and returns: the dtypes (the runtime's, plus
 * w8a8-static and mixed, made at quantization), the methods each supports, the options and their
 * checks (every bad combination fails before any work), and the report.
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { LinearDType } from '../ops/linear.ts';
import { AccuracyGuardError, type ModelError } from '../quant/guard.ts';
import type { QuantSpec } from '../quant/layout.ts';
import type { MixedCandidate } from '../quant/mixed.ts';
import { ACT_CALIBRATIONS, type ActCalibration } from '../quant/static-act.ts';
import { QUANT_METHODS, type QuantMethod } from './methods.ts';
import type { EmbeddingDType } from '../models/upload.ts';

/** What `webq quantize --dtype` takes: the runtime's quantized dtypes, plus two made at quantization. */
export type QuantizeDType = Exclude<LinearDType, 'f32' | 'f16'> | 'w8a8-static' | 'mixed';
export const QUANTIZE_DTYPES: readonly QuantizeDType[] = ['q8', 'q4', 'w8a8', 'w4a8', 'w8a8-static', 'mixed'];

/** Methods each dtype supports (AWQ is a 4-bit method; static activations and mixed bits come with rtn or gptq). */
export const METHODS: Readonly<Record<QuantizeDType, readonly QuantMethod[]>> = {
  q8: ['rtn', 'gptq'],
  q4: ['rtn', 'awq', 'gptq'],
  w8a8: ['rtn', 'gptq'],
  w4a8: ['rtn', 'awq', 'gptq'],
  'w8a8-static': ['rtn', 'gptq'],
  mixed: ['rtn', 'gptq'],
};

/** The dtype a file is loaded with. */
export function fileDType(dtype: QuantizeDType): Exclude<LinearDType, 'f32' | 'f16'> {
  return dtype === 'w8a8-static' ? 'w8a8' : dtype === 'mixed' ? 'q4' : dtype;
}

export interface QuantizeOptions {
  /** Group size (default: the dtype's, as loading with it would use). */
  group?: number | 'channel';
  symmetric?: boolean;
  /** Embedding tables (a tied LM head too): int8, int4, f16 or f32; default int8 (an untied LLM table: f16). */
  embeddings?: EmbeddingDType;
  /** Default rtn. */
  method?: QuantMethod;
  /**
   * 4-bit: choose each group's range by a search for the least weighted squared weight error
   * (QuantSpec.clipSearch; default: the loader's, min-max for asymmetric groups); false forces
   * plain min-max round-to-nearest.
   */
  clipSearch?: boolean;
  /**
   * Calibration samples (default: decoders sample `calibTokens` tokens of their own text, seeded
   * by `calibSeed`; encoders read a built-in text), and evaluation samples (default: the
   * calibration ones).
   */
  calib?: readonly string[];
  eval?: readonly string[];
  calibTokens?: number;
  calibSeed?: number;
  /** mixed: average bits per Linear weight, scales included, 4..16. */
  budget?: number;
  /** Refuse (write nothing) when the model's error against the float model exceeds this (guard.ts). */
  maxError?: number;
  /** SmoothQuant's alpha (w8a8, w4a8, w8a8-static). */
  smooth?: number;
  /** w8a8-static: how the activation scales are chosen (default percentile). */
  actCalibration?: ActCalibration;
  /** gptq: columns in order of decreasing activity. */
  actOrder?: boolean;
  /** gptq: calibrate each unit with the earlier ones already quantized (default true). */
  sequential?: boolean;
  /** Subtract the calibrated mean output error from biases (default on for calibrated methods). */
  biasCorrection?: boolean;
  /** Measure the written model against the float one even when nothing else needs the GPU. */
  measure?: boolean;
  context?: GpuContext;
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** One unit in the report. */
export interface LayerReport {
  id: string;
  tensors: string[];
  params: number;
  bits: 4 | 8 | 16;
  group?: number | 'channel';
  symmetric?: boolean;
  method: string;
  /** ||X (Wq - W)^T||^2 / ||X W^T||^2 on the calibration inputs (weights only). */
  error?: number;
  /** AWQ's alpha. */
  alpha?: number;
  /** Per-channel scales were folded into the op before (SmoothQuant or AWQ). */
  scaled?: boolean;
  /** Calibrated with the earlier units quantized (GPTQ's sequential order). */
  sequential?: boolean;
  actScale?: number;
  biasCorrected?: boolean;
  /** Mixed: every candidate's size and measured model error (the unit alone quantized). */
  candidates?: MixedCandidate[];
  /** Past --max-error: the model's error with only this unit quantized. */
  alone?: number;
}

export interface CalibratedSummary {
  layers: LayerReport[];
  /** Where the calibration text came from: --calib, the model's own samples, or the built-in paragraph. */
  source: CalibSource;
  texts: number;
  tokens: number;
  /** The share of the calibration text's tokens that are the tokenizer's unknown token (calibration-text.ts). */
  unknownShare: number;
  /** Mixed precision measures each candidate on the first samples only: their tokens. */
  sensitivityTokens?: number;
}

export type CalibSource = 'file' | 'sampled' | 'built-in';

export interface QuantizeReport {
  /** config.json model_type. */
  architecture: string;
  /** As asked (w8a8-static, mixed, ...) and as the file loads. */
  dtype: QuantizeDType;
  fileDType: LinearDType;
  method: QuantMethod;
  spec: QuantSpec;
  embeddings: EmbeddingDType;
  tensors: number;
  /** Linear weights packed (or kept 16-bit by mixed). */
  quantized: number;
  /** Tensor data bytes read and written (headers not counted). */
  bytesIn: number;
  bytesOut: number;
  /** The Linears alone: weights, stored bytes, bits per weight (scales and zeros included). */
  linearParams: number;
  linearBytes: number;
  bitsPerWeight: number;
  seconds: number;
  /** Per Linear unit (the weights sharing one input); errors when calibrated. */
  layers: LayerReport[];
  /** The written model against the float model, when measured. */
  model?: ModelError;
  /**
   * What calibrated: the source (--calib file, the model's own samples, the built-in text), its
   * samples and tokens (every method but mixed's measurements sees them all), and the tokens each
   * of mixed precision's single-unit measurements runs on; unknownShare: of the calibration text's
   * tokens, the tokenizer's unknown token (most: the measurements mean little).
   */
  calibration?: { source: CalibSource; texts: number; tokens: number; sensitivityTokens?: number; unknownShare: number };
  smooth?: number;
  actCalibration?: ActCalibration;
  budget?: number;
}

/** Past --max-error: nothing was written; `report` says what the run measured. */
export class QuantizeRefusedError extends AccuracyGuardError {
  constructor(message: string, readonly report: QuantizeReport) {
    super(message);
  }
}

/** Raised for options that do not go together; nothing is read or written. */
export class QuantizeOptionError extends WebqError {
  constructor(message: string) {
    super('BAD_OPTION', message);
  }
}

/** Checks a request before any work (throws QuantizeOptionError). */
export function checkQuantizeOptions(dtype: QuantizeDType, opts: QuantizeOptions): void {
  if (!QUANTIZE_DTYPES.includes(dtype)) throw new QuantizeOptionError(`dtype must be one of ${QUANTIZE_DTYPES.join(', ')}, got ${JSON.stringify(dtype)}`);
  const method = opts.method ?? 'rtn';
  if (!QUANT_METHODS.includes(method)) throw new QuantizeOptionError(`method must be one of ${QUANT_METHODS.join(', ')}, got ${JSON.stringify(method)}`);
  if (!METHODS[dtype].includes(method)) throw new QuantizeOptionError(`method ${method} does not go with dtype ${dtype} (${dtype} supports ${METHODS[dtype].join(', ')})`);
  if (dtype === 'mixed' && opts.budget === undefined) throw new QuantizeOptionError('dtype mixed needs a budget: average bits per weight, 4 to 16');
  if (opts.budget !== undefined) {
    if (dtype !== 'mixed') throw new QuantizeOptionError(`a budget goes with dtype mixed, not ${dtype}`);
    if (!(Number.isFinite(opts.budget) && opts.budget >= 4 && opts.budget <= 16)) throw new QuantizeOptionError(`budget must be 4 to 16 bits per weight, got ${opts.budget}`);
  }
  if (opts.smooth !== undefined) {
    if (!['w8a8', 'w4a8', 'w8a8-static'].includes(dtype)) throw new QuantizeOptionError(`smooth (SmoothQuant) goes with int8 activations: dtype w8a8, w4a8 or w8a8-static, not ${dtype}`);
    if (!(opts.smooth >= 0 && opts.smooth <= 1)) throw new QuantizeOptionError(`smooth must be an alpha from 0 to 1, got ${opts.smooth}`);
    if (method === 'awq') throw new QuantizeOptionError('smooth and method awq each scale the input channels; choose one');
  }
  if (opts.actCalibration !== undefined && dtype !== 'w8a8-static') throw new QuantizeOptionError(`an activation calibration goes with dtype w8a8-static, not ${dtype}`);
  if (opts.actCalibration !== undefined && !ACT_CALIBRATIONS.includes(opts.actCalibration)) throw new QuantizeOptionError(`activation calibration must be ${ACT_CALIBRATIONS.join(', ')}, got ${JSON.stringify(opts.actCalibration)}`);
  if (opts.actOrder && method !== 'gptq') throw new QuantizeOptionError('act-order goes with method gptq');
  if (opts.sequential !== undefined && method !== 'gptq') throw new QuantizeOptionError('sequential calibration goes with method gptq');
  if (opts.maxError !== undefined && !(Number.isFinite(opts.maxError) && opts.maxError >= 0)) throw new QuantizeOptionError(`max error must be a number >= 0, got ${opts.maxError}`);
  if (opts.calibTokens !== undefined && !(Number.isSafeInteger(opts.calibTokens) && opts.calibTokens >= 1)) throw new QuantizeOptionError(`calibration tokens must be a positive integer, got ${opts.calibTokens}`);
  if (opts.calibSeed !== undefined && !(Number.isSafeInteger(opts.calibSeed) && opts.calibSeed >= 0)) throw new QuantizeOptionError(`calibration seed must be an integer >= 0, got ${opts.calibSeed}`);
  if (opts.calib !== undefined && (opts.calibTokens !== undefined || opts.calibSeed !== undefined)) throw new QuantizeOptionError('calibration tokens and seed are for sampled calibration; a calibration file is read as it is');
  for (const [what, lines] of [['calibration', opts.calib], ['evaluation', opts.eval]] as const) {
    if (lines !== undefined && !lines.some((l) => l.trim())) throw new QuantizeOptionError(`the ${what} text is empty`);
  }
}
