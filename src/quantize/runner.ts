/** What calibration runs a model through (calibration.ts opens one per forward: encoder-runner.ts, decoder-runner.ts). */
import { WebqError } from '../errors.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { BertGpuWeights } from '../models/bert/bert.ts';
import type { LlamaGpuWeights } from '../models/llama/llama.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';
import type { SelfCalibrationOptions } from './calibration-samples.ts';
import type { LinearUnit } from './units.ts';

/** Longest calibration text, in tokens (longer ones are cut). */
export const CALIB_MAX_TOKENS = 128;

/** A sample's rows for a tap: all of x, or those whose mask is set (padding in a batch). */
export type UnitTap = (rec: Recorder, unit: string, x: Tensor, mask?: { mask: Tensor; rows: number }) => void;

/** Token ids past the model's vocabulary mean tokenizer.json and config.json disagree. */
export function checkIds(ids: ArrayLike<number>, vocab: number, what: string): void {
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= vocab) throw new WebqError('TOKEN_OUT_OF_RANGE', `${what}: token id ${ids[i]} is outside the model's vocabulary of ${vocab}: tokenizer.json and config.json disagree`);
  }
}

/** A calibration or evaluation sample: a text, or (decoders) token ids as the model reads them. */
export type CalibSample = string | readonly number[];

export interface ModelRunner {
  kind: 'encoder' | 'decoder';
  units: LinearUnit[];
  weights: BertGpuWeights | LlamaGpuWeights;
  /** Vocabulary size (decoders' logits rows). */
  vocab: number;
  /** Runs every sample; with `outputs`, returns one output per sample (see the top of this file). */
  run(texts: readonly CalibSample[], opts?: { tap?: UnitTap; outputs?: boolean }): Promise<Float32Array[]>;
  /** Token count of the samples as this model reads them. */
  tokens(texts: readonly CalibSample[]): number;
  /**
   * Decoders: samples of the float model's own text, for calibration without --calib
   * (calibration-samples.ts; ModelArch.calibration is 'sampled').
   */
  sample?(tokenizer: TextTokenizer, opts: SelfCalibrationOptions): Promise<number[][]>;
  dispose(): void;
}
