/**
 * Where each token of a text came from: [start, end) character offsets (UTF-16 indices, what
 * String.prototype.slice takes) of every content token. @huggingface/tokenizers returns no offsets,
 * so they are recovered by alignment:
 *
 *   text       "Jörg lives"          each character normalized alone, as tokenizer.json's normalizer
 *   stream     j o r g l i v e s     would (lowercase, accents, NFKC); whitespace dropped; kept as
 *   origin     0 1 2 3 5 6 7 8 9     UTF-8 bytes, each remembering the character it came from
 *   tokens     "jo" "##rg" "lives"   each token's text (## / ▁ / Ġ byte spellings undone, spaces dropped)
 *   offsets    [0,2) [2,4) [5,10)    matched one after another against the stream
 *
 * The normalizers webq's encoders use (BERT's lowercase / strip accents / CJK spacing, NFKC, SentencePiece
 * spaces) work character by character, so normalizing each character alone gives the same stream.
 * A token whose text is not found where expected ([UNK], or a normalizer that does not work per
 * character) takes what lies between its neighbours (one character before another [UNK]), or runs
 * to the end of its word when last.
 */

/** GPT-2's byte-level alphabet, inverted: the character a byte-level BPE token uses -> the byte. */
const BYTE_OF_CHAR: ReadonlyMap<string, number> = (() => {
  const map = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    map.set(String.fromCodePoint(printable ? b : 256 + extra++), b);
  }
  return map;
})();

const utf8 = new TextEncoder();
const isSpaceByte = (b: number) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;

export interface AlignOptions {
  /** How tokens spell text (TokenSpelling.kind): byte_level tokens are GPT-2 byte characters. */
  kind: 'byte_level' | 'byte_fallback' | 'raw';
  /** WordPiece's continuing-subword prefix ("##"), stripped from a token's text; '' for none. */
  continuingPrefix: string;
  /** tokenizer.json's normalizer applied to one character (identity when there is none). */
  normalize: (ch: string) => string;
  /** Tokens that stand for text they cannot spell ([UNK]): aligned by their neighbours only. */
  unknown?: (index: number) => boolean;
}

/** The UTF-8 bytes a token's text stands for, spaces dropped. */
function tokenBytes(token: string, o: AlignOptions): Uint8Array {
  let bytes: number[];
  if (o.kind === 'byte_level') bytes = Array.from(token, (c) => BYTE_OF_CHAR.get(c) ?? -1).flatMap((b, i) => (b >= 0 ? [b] : [...utf8.encode([...token][i])]));
  else {
    const hex = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
    const text = o.continuingPrefix && token.startsWith(o.continuingPrefix) ? token.slice(o.continuingPrefix.length) : token;
    bytes = hex ? [parseInt(hex[1], 16)] : [...utf8.encode(text.replaceAll('\u2581', ' '))];
  }
  return Uint8Array.from(bytes.filter((b) => !isSpaceByte(b)));
}

/** [start, end) in `text` of each of `tokens` (its content tokens, in order, no special tokens). */
export function alignOffsets(text: string, tokens: readonly string[], o: AlignOptions): [number, number][] {
  // The normalized text without whitespace, as bytes, and the original character of each byte.
  const stream: number[] = [];
  const from: number[] = [];
  const to: number[] = [];
  let at = 0;
  for (const ch of text) {
    for (const b of utf8.encode(o.normalize(ch).replaceAll('\u2581', ' '))) {
      if (isSpaceByte(b)) continue;
      stream.push(b);
      from.push(at);
      to.push(at + ch.length);
    }
    at += ch.length;
  }
  const n = stream.length;
  const surfaces = tokens.map((t, i) => (o.unknown?.(i) ? null : tokenBytes(t, o)));
  const matchesAt = (s: Uint8Array, p: number) => p + s.length <= n && s.every((b, k) => stream[p + k] === b);
  const find = (s: Uint8Array, p: number) => {
    for (let q = p; q + s.length <= n; q++) if (matchesAt(s, q)) return q;
    return -1;
  };
  /** The offsets of stream bytes [p, q): from the first one's character to the last one's. */
  const span = (p: number, q: number): [number, number] => (q > p ? [from[p], to[q - 1]] : p < n ? [from[p], from[p]] : [text.length, text.length]);

  const out: [number, number][] = [];
  let c = 0;
  for (let i = 0; i < tokens.length; i++) {
    const s = surfaces[i];
    if (s && matchesAt(s, c)) {
      out.push(span(c, c + s.length));
      c += s.length;
      continue;
    }
    // Not where expected: up to where the next token's text is found; one character when the next
    // is unknown too (BERT splits CJK text into one-character words, each its own [UNK]); else to
    // the end of this word (stream bytes whose characters touch in the text).
    const next = surfaces[i + 1];
    let q = next && next.length > 0 ? find(next, c) : -1;
    if (next === null && c < n) {
      q = c + 1;
      while (q < n && from[q] === from[c]) q++;
    } else if (q < 0) {
      q = Math.min(c + 1, n);
      while (q < n && from[q] <= to[q - 1]) q++;
    }
    out.push(span(c, q));
    c = q;
  }
  return out;
}
