/**
 * Whether calibration and evaluation text mean anything to the model being quantized. A tokenizer
 * whose vocabulary cannot spell the text (the built-in English sample, say, for a model with
 * another script's vocabulary) turns most of it into its unknown token; statistics gathered on a
 * run of [UNK]s, and errors measured on one ("top-1 100%"), say nothing about real inputs. So when
 * most tokens are unknown the report says so, and --max-error, which would pass or fail on such a
 * measurement, is refused.
 */
import { WebqError } from '../errors.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';

/** More than this share of unknown tokens is "most": the measurement is refused. */
export const MOSTLY_UNKNOWN = 0.5;

export interface TextCoverage {
  /** Tokens of the texts, without the special tokens the tokenizer adds around them. */
  tokens: number;
  /** How many of them are the tokenizer's unknown token. */
  unknown: number;
}

/** Refused: the evaluation text is mostly unknown tokens, so --max-error would measure nothing. */
export class CalibrationTextError extends WebqError {
  constructor(message: string, readonly coverage: TextCoverage) {
    super('CALIBRATION_TEXT_UNKNOWN', message);
  }
}

/** Texts, or token ids (calibration the model sampled itself). */
export function textCoverage(tokenizer: TextTokenizer, texts: readonly (string | readonly number[])[]): TextCoverage {
  const unk = tokenizer.unkTokenId;
  let tokens = 0;
  let unknown = 0;
  for (const t of texts) {
    const ids = typeof t === 'string' ? tokenizer.encode(t, { addSpecialTokens: false, truncation: false, maxLength: Number.MAX_SAFE_INTEGER }).ids : t;
    tokens += ids.length;
    if (unk !== undefined) for (const id of ids) if (id === unk) unknown++;
  }
  return { tokens, unknown };
}

export function unknownShare(c: TextCoverage): number {
  return c.tokens ? c.unknown / c.tokens : 0;
}

/**
 * Throws CalibrationTextError when `maxError` is set and most of `evalTexts` is unknown tokens
 * (`evalWhat` names them in the message); otherwise returns the calibration texts' coverage.
 */
export function checkCalibrationText(tokenizer: TextTokenizer, calib: readonly (string | readonly number[])[], evalTexts: readonly (string | readonly number[])[], opts: { maxError?: number; describe: string; evalWhat: string }): TextCoverage {
  const coverage = textCoverage(tokenizer, calib);
  if (opts.maxError === undefined) return coverage;
  const measured = evalTexts === calib ? coverage : textCoverage(tokenizer, evalTexts);
  const share = unknownShare(measured);
  if (share > MOSTLY_UNKNOWN) {
    throw new CalibrationTextError(
      `${opts.describe}: ${(100 * share).toFixed(0)}% of the ${measured.tokens} tokens of the ${opts.evalWhat} are the tokenizer's unknown token ` +
        `(${tokenizer.idToToken(tokenizer.unkTokenId!) ?? tokenizer.unkTokenId}), so --max-error would measure nothing real; ` +
        'give text in the model\'s language with --eval (and --calib), or leave --max-error out',
      measured,
    );
  }
  return coverage;
}
