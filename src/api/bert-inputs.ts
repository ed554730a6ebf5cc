/** The texts argument of BertModel.embed / classify, checked with messages that say what came instead. */
import { WebqError } from '../errors.ts';

/** A value in a message: strings quoted and cut short, anything else by its kind. */
function shown(v: unknown): string {
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)})`;
  if (v === null || v === undefined) return String(v);
  return Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** The texts argument of embed / classify: a non-empty array of strings, or a WebqError saying what came instead. */
export function checkTexts(texts: unknown, method: string): asserts texts is string[] {
  if (!Array.isArray(texts)) {
    const one = typeof texts === 'string' ? `; for one text pass [text]` : '';
    throw new WebqError('BAD_TEXTS', `${method}() takes an array of strings, got ${shown(texts)}${one}`);
  }
  if (texts.length === 0) throw new WebqError('EMPTY_BATCH', `${method}(): no texts to encode: pass at least one string`);
  const bad = texts.findIndex((t) => typeof t !== 'string');
  if (bad >= 0) throw new WebqError('BAD_TEXTS', `${method}(): text ${bad + 1} of ${texts.length} is ${shown(texts[bad])}; every text must be a string`);
}
