/**
 * generation_config.json: the sampling defaults and end-of-sequence ids a model ships with.
 * Only the fields webq's sampler uses are read; the rest are ignored. A field set to null means
 * "not set", as in transformers.
 */
import { WebqError } from '../errors.ts';
import { parseJsonText, type ModelFiles } from '../io/hub/model-files.ts';

export interface GenerationDefaults {
  /** Ids that end generation (eos_token_id, a number or a list); [] when none is given. */
  eosTokenIds: number[];
  bosTokenId?: number;
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  maxNewTokens?: number;
}

const FILE = 'generation_config.json';

type Check = (v: unknown) => boolean;
const isTokenId: Check = (v) => Number.isSafeInteger(v) && (v as number) >= 0;
const isNumberAtLeast0: Check = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
const isPositive: Check = (v) => typeof v === 'number' && Number.isFinite(v) && v > 0;
const isProbability: Check = (v) => typeof v === 'number' && v >= 0 && v <= 1;
const isCount: Check = (v) => Number.isSafeInteger(v) && (v as number) >= 0;
const isPositiveCount: Check = (v) => Number.isSafeInteger(v) && (v as number) > 0;

/** The file's field, its name here, its check, and what the check expects (for the message). */
const FIELDS: [string, keyof GenerationDefaults, Check, string][] = [
  ['bos_token_id', 'bosTokenId', isTokenId, 'a token id (integer >= 0)'],
  ['do_sample', 'doSample', (v) => typeof v === 'boolean', 'true or false'],
  ['temperature', 'temperature', isNumberAtLeast0, 'a number >= 0'],
  ['top_k', 'topK', isCount, 'an integer >= 0 (0: no limit)'],
  ['top_p', 'topP', isProbability, 'a number in [0, 1]'],
  ['min_p', 'minP', isProbability, 'a number in [0, 1]'],
  ['repetition_penalty', 'repetitionPenalty', isPositive, 'a number > 0'],
  ['max_new_tokens', 'maxNewTokens', isPositiveCount, 'an integer > 0'],
];

/** A value from the file for a message, cut to 80 characters (the file comes with the model). */
function shown(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 80)}... (${text.length} characters)` : text;
}

/** Reads generation_config.json when the model has one; `{ eosTokenIds: [] }` when it does not. */
export async function readGenerationConfig(files: Pick<ModelFiles, 'readText' | 'exists' | 'describe'>): Promise<GenerationDefaults> {
  if (!(await files.exists(FILE))) return { eosTokenIds: [] };
  const where = `${files.describe}: ${FILE}`;
  return parseGenerationConfig(parseJsonText(await files.readText(FILE), where), where);
}

/** The parsed file -> defaults; `where` names the file in errors. */
export function parseGenerationConfig(json: unknown, where = FILE): GenerationDefaults {
  const bad = (field: string, value: unknown, expected: string) =>
    new WebqError('GENERATION_CONFIG', `${where}: ${field} is ${shown(value)}, expected ${expected}; fix or remove the field`);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new WebqError('GENERATION_CONFIG', `${where}: expected a JSON object, got ${Array.isArray(json) ? 'an array' : shown(json)}`);
  }
  const cfg = json as Record<string, unknown>;

  const eos = cfg.eos_token_id ?? [];
  const eosList = Array.isArray(eos) ? eos : [eos];
  if (!eosList.every(isTokenId)) throw bad('eos_token_id', eos, 'a token id or a list of them');
  const out: GenerationDefaults = { eosTokenIds: [...new Set(eosList as number[])] };

  for (const [field, key, check, expected] of FIELDS) {
    const v = cfg[field];
    if (v === undefined || v === null) continue;
    if (!check(v)) throw bad(field, v, expected);
    (out as unknown as Record<string, unknown>)[key] = v;
  }
  return out;
}
