/**
 * Regular expressions that model files bring (tokenizer.json Split / Replace patterns) run over
 * every text a caller sends, so one that backtracks catastrophically would hang the process on
 * the first long input. JavaScript cannot stop a running match, so such patterns are refused when
 * the file is loaded. What is refused (what makes a backtracking engine super-linear):
 *
 *   a quantifier on a group holding a quantifier or an alternative  (a+)+  (a|ab)*  (\s*x)+
 *   a back-reference                                                 (a)\1
 *   more than MAX_CHAIN unbounded quantifiers in one alternative     \s*\s*\s*\s*\s*x
 *   a counted repeat over MAX_COUNT, or a pattern over MAX_LENGTH characters
 *
 * Every pre-tokenizer pattern of the major tokenizers (GPT-2, Llama 3, Qwen 2/3, GPT-4o's o200k,
 * Mistral) has at most 2 unbounded quantifiers per alternative and no nested ones, and passes.
 */
const MAX_LENGTH = 4096;
const MAX_COUNT = 1000;
const MAX_CHAIN = 4;

interface Group {
  /** Holds a quantifier with more than one repetition, or an alternative. */
  risky: boolean;
  /** Unbounded quantifiers in the current alternative (nested groups' counts added as they close). */
  chain: number;
  /** The largest chain of any alternative so far. */
  maxChain: number;
}

/** Why `src` could match in super-linear time (see the module comment), or null. */
export function regexHazard(src: string): string | null {
  if (src.length > MAX_LENGTH) return `it is ${src.length} characters long (at most ${MAX_LENGTH})`;
  if (/\\[1-9]|\\k</.test(src)) return 'it has a back-reference';
  const stack: Group[] = [{ risky: false, chain: 0, maxChain: 0 }];
  // The item just before a quantifier: a closed group (and whether it was risky, its chain) or an atom.
  let last: { group: boolean; risky: boolean; chain: number } = { group: false, risky: false, chain: 0 };
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    const top = stack[stack.length - 1];
    if (c === '\\') {
      i++;
      last = { group: false, risky: false, chain: 0 };
    } else if (c === '[') {
      for (i++; i < src.length && src[i] !== ']'; i++) if (src[i] === '\\') i++;
      last = { group: false, risky: false, chain: 0 };
    } else if (c === '(') {
      stack.push({ risky: false, chain: 0, maxChain: 0 });
      if (src[i + 1] === '?') i += src[i + 2] === '<' && (src[i + 3] === '=' || src[i + 3] === '!') ? 3 : 2; // (?: (?= (?! (?<= (?<! (?i:
    } else if (c === ')') {
      if (stack.length === 1) return null; // unbalanced: the RegExp constructor will say so
      const g = stack.pop()!;
      const chain = Math.max(g.maxChain, g.chain);
      const parent = stack[stack.length - 1];
      parent.risky ||= g.risky;
      parent.chain += chain;
      last = { group: true, risky: g.risky, chain };
    } else if (c === '|') {
      top.risky = true;
      top.maxChain = Math.max(top.maxChain, top.chain);
      top.chain = 0;
      last = { group: false, risky: false, chain: 0 };
    } else if (c === '*' || c === '+' || c === '{' || c === '?') {
      let most = c === '?' ? 1 : Infinity;
      if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i, i + 24));
        if (!m) {
          last = { group: false, risky: false, chain: 0 }; // a literal brace
          continue;
        }
        most = m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]);
        if (Number(m[1]) > MAX_COUNT || (most !== Infinity && most > MAX_COUNT)) return `it repeats something ${m[0]} times (at most ${MAX_COUNT})`;
        i += m[0].length - 1;
      }
      if (src[i + 1] === '?' || src[i + 1] === '+') i++; // lazy or possessive
      top.risky = true; // an optional item inside a repeated group backtracks as a repeat does
      if (most > 1) {
        if (last.group && (last.risky || last.chain > 0)) return 'it repeats a group that holds a repeat or an alternative';
        if (most === Infinity && ++top.chain > MAX_CHAIN) return `one alternative has more than ${MAX_CHAIN} unbounded repeats`;
      }
      last = { group: false, risky: false, chain: 0 };
    } else {
      last = { group: false, risky: false, chain: 0 };
    }
    if (Math.max(top.chain, ...stack.map((g) => g.chain)) > MAX_CHAIN) return `one alternative has more than ${MAX_CHAIN} unbounded repeats`;
  }
  return null;
}
