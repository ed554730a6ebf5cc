/**
 * Prompt-lookup drafting (n-gram drafting from the text so far, no model): the last n tokens are
 * looked for earlier in the sequence (prompt and generated text), and the tokens that followed
 * their most recent earlier occurrence are the draft. Longer n-grams are tried first, since a longer
 * match predicts better. Strong where the continuation repeats the prompt: quoting, editing, code.
 */

/** Longest n-gram tried first, then shorter ones down to one token. */
export const LOOKUP_MAX_NGRAM = 3;
/**
 * Most tokens drafted from a one-token match: a single repeated token predicts what follows it
 * poorly (on the trained fixture 5 of ~100 such drafted tokens were accepted, most of them the
 * first), and every rejected draft costs a position of the verification forward.
 */
export const LOOKUP_UNIGRAM_DRAFT = 2;

/** Up to `k` drafted ids continuing `seq`, or none when no suffix of it occurred before. */
export function lookupDraft(seq: readonly number[], k: number, maxNgram = LOOKUP_MAX_NGRAM): number[] {
  const L = seq.length;
  if (k < 1) return [];
  for (let n = Math.min(maxNgram, L - 1); n >= 1; n--) {
    const most = n === 1 ? Math.min(k, LOOKUP_UNIGRAM_DRAFT) : k;
    // Most recent start j < L - n whose n tokens equal the last n.
    for (let j = L - n - 1; j >= 0; j--) {
      let match = true;
      for (let i = 0; i < n; i++) {
        if (seq[j + i] !== seq[L - n + i]) {
          match = false;
          break;
        }
      }
      if (match) return seq.slice(j + n, Math.min(j + n + most, L)) as number[];
    }
  }
  return [];
}
