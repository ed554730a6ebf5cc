/**
 * Calibration text for `webq quantize`, and whether it means anything to the model.
 *
 * The text: a file with one sample per line, or a built-in default (varied everyday English:
 * narrative, instructions, facts, dialogue, numbers, code) when a method needs calibration and no
 * --calib file is given.
 *
 * Its coverage: a tokenizer whose vocabulary cannot spell the text (the built-in English sample,
 * say, for a model with another script's vocabulary) turns most of it into its unknown token;
 * statistics gathered on a run of [UNK]s, and errors measured on one ("top-1 100%"), say nothing
 * about real inputs. So when most tokens are unknown the report says so, and --max-error, which
 * would pass or fail on such a measurement, is refused.
 */
import { WebqError } from '../errors.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';

export const DEFAULT_CALIBRATION_TEXT = `The quick brown fox jumps over the lazy dog while the farmer watches from the porch.
In 1969, two astronauts walked on the Moon and returned safely to Earth four days later.
Preheat the oven to 180 degrees, then mix the flour, sugar and butter until the dough is smooth.
She opened the letter slowly, afraid of what it might say about her brother's trip.
Photosynthesis converts light energy into chemical energy stored in glucose molecules.
"Where are you going?" he asked. "To the station, before the last train leaves," she said.
The committee will meet on Tuesday to review the budget and vote on the new proposal.
Water boils at 100 degrees Celsius at sea level, but at lower temperatures on high mountains.
To reset your password, click the link in the email and follow the instructions on the page.
The river wound through the valley, past old mills and fields of wheat turning gold in August.
Researchers found that regular exercise improves sleep quality and reduces stress in adults.
function add(a, b) { return a + b; } // returns the sum of two numbers
The museum's new exhibition shows paintings, maps and letters from the eighteenth century.
Our quarterly revenue grew by 12 percent, driven mostly by strong sales in Asia and Europe.
A group of children played football in the park until the streetlights came on.
Please remember to bring your passport, a printed ticket and a charger for your phone.
The patient reported a mild headache and a fever of 38.5 degrees for two days.
Mountains covered in snow rose above the small village, where smoke curled from every chimney.
Machine learning models learn patterns from data and use them to make predictions.
The library is open from nine in the morning until eight in the evening, except on Sundays.
He fixed the bicycle's chain, pumped up the tires and rode off toward the coast.
Climate change affects rainfall, sea levels and the habitats of many plants and animals.
Dear customer, your order number 48213 has been shipped and should arrive within three days.
The orchestra tuned their instruments as the audience found their seats in the grand hall.
Good morning! Could you tell me how to get to the nearest pharmacy, please?
The ancient city was built on seven hills and ruled a vast empire for centuries.
Add two cups of water, bring to a boil, and let the rice simmer for fifteen minutes.
Stock markets fell sharply on Monday after the central bank raised interest rates again.
The cat curled up on the windowsill and watched the rain run down the glass.
Electric cars are becoming cheaper as battery technology improves every year.
I think the meeting went well, although we still need to agree on the final schedule.
Honey never spoils; archaeologists have found edible honey in tombs thousands of years old.`;

/** The samples of a calibration text: its non-empty lines, trimmed. `what` names it in errors. */
export function calibrationLines(text: string, what: string): string[] {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  if (!lines.length) throw new WebqError('CALIBRATION', `${what}: has no text; give one calibration sample per line`);
  return lines;
}

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
