/**
 * Tokens for text the constraint forces (jump-forward): the longest vocabulary token that spells a
 * prefix of the rest, which the matcher must accept, then the next. Spelling each token from the
 * vocabulary (not tokenizing the text) avoids SentencePiece's leading ▁ and gives the token
 * boundaries the matcher can take; for short forced texts (keys, braces) it is what BPE gives too.
 */
import type { TextTokenizer, TokenSpelling } from '../text/tokenizer.ts';

/** GPT-2's byte-level alphabet: the character each byte is written as, inverted. */
function byteLevelDecoder(): Map<string, number> {
  const bytes: number[] = [];
  for (let b = 33; b <= 126; b++) bytes.push(b);
  for (let b = 161; b <= 172; b++) bytes.push(b);
  for (let b = 174; b <= 255; b++) bytes.push(b);
  const chars = bytes.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + n++);
    }
  }
  return new Map(bytes.map((b, i) => [String.fromCodePoint(chars[i]), b]));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A token's text, or undefined when it is not whole UTF-8 text by itself (a byte piece, a special token). */
function tokenText(token: string, spelling: TokenSpelling, bl: Map<string, number> | null): string | undefined {
  if (token === '') return undefined;
  if (spelling.kind === 'byte_level') {
    const bytes: number[] = [];
    for (const ch of token) {
      const b = bl!.get(ch);
      if (b === undefined) return undefined;
      bytes.push(b);
    }
    try {
      return utf8.decode(new Uint8Array(bytes));
    } catch {
      return undefined;
    }
  }
  if (spelling.kind === 'byte_fallback') {
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
    if (m) {
      const b = parseInt(m[1], 16);
      return b < 0x80 ? String.fromCharCode(b) : undefined;
    }
    return token.replace(/\u2581/g, ' ');
  }
  return token;
}

/**
 * Bit i set when token i writes no control character (U+0000-U+001F) other than those in `keep`.
 * JSON allows none of them raw in a string, yet the engine's string rule lets byte tokens such as
 * <0x02> through: ANDed into the mask of a JSON constraint, this keeps every output parseable.
 */
export function controlFreeMask(tokenizer: TextTokenizer, vocabSize: number, keep = ''): Uint32Array {
  const tokens = tokenizer.tokensById();
  const spelling = tokenizer.spelling;
  const bl = spelling.kind === 'byte_level' ? byteLevelDecoder() : null;
  const out = new Uint32Array(Math.ceil(vocabSize / 32));
  const bad = (code: number) => code < 0x20 && !keep.includes(String.fromCharCode(code));
  for (let id = 0; id < vocabSize; id++) {
    const t = tokens[id] ?? '';
    let ok = true;
    if (bl) {
      for (const ch of t) if (bad(bl.get(ch) ?? 0x20)) ok = false;
    } else {
      const m = spelling.kind === 'byte_fallback' ? /^<0x([0-9A-Fa-f]{2})>$/.exec(t) : null;
      if (m) ok = !bad(parseInt(m[1], 16));
      else for (let i = 0; i < t.length; i++) if (bad(t.charCodeAt(i))) ok = false;
    }
    if (ok) out[id >>> 5] |= 1 << (id & 31);
  }
  return out;
}

export class ForcedTokenizer {
  private readonly byText = new Map<string, number>();
  private readonly longest: number;

  constructor(tokenizer: TextTokenizer, vocabSize: number) {
    const tokens = tokenizer.tokensById();
    const special = new Set(tokenizer.spelling.specialIds);
    const bl = tokenizer.spelling.kind === 'byte_level' ? byteLevelDecoder() : null;
    let longest = 1;
    for (let id = 0; id < Math.min(tokens.length, vocabSize); id++) {
      if (special.has(id)) continue;
      const text = tokenText(tokens[id], tokenizer.spelling, bl);
      if (text === undefined || text === '' || this.byText.has(text)) continue;
      this.byText.set(text, id);
      longest = Math.max(longest, text.length);
    }
    this.longest = Math.min(longest, 64);
  }

  /**
   * Tokens spelling a prefix of `text`, each accepted by `accept` (which advances the matcher) as
   * it is chosen; stops where no token is both a prefix and accepted.
   */
  tokens(text: string, accept: (id: number) => boolean): number[] {
    const out: number[] = [];
    let pos = 0;
    outer: while (pos < text.length) {
      for (let len = Math.min(this.longest, text.length - pos); len >= 1; len--) {
        const id = this.byText.get(text.slice(pos, pos + len));
        if (id !== undefined && accept(id)) {
          out.push(id);
          pos += len;
          continue outer;
        }
      }
      break;
    }
    return out;
  }
}
