/**
 * Token-classification results from logits, as transformers' token-classification ("ner") pipeline
 * makes them: a softmax per token, special tokens left out, then per aggregation strategy
 *
 *   none     each token: {entity, score, index, word (the stored token), start, end}
 *   simple   adjacent tokens merged into {entity_group, score (their mean), word, start, end}: a token
 *            joins the group before it when its tag is the same and it is not a B- tag
 *   first    tokens first merged into words (a word: a token and the subword tokens after it), the
 *   max      word's label from its first token / its most confident token / the mean of its tokens'
 *   average  probabilities, then words merged as by simple
 *
 * Tags: "B-PER" begins a PER entity, "I-PER" continues one, and a label without B-/I- continues.
 * A group is named by its first label's text after the last "-" ("B-PER" -> "PER"), and groups
 * labelled with an ignored label ("O" by default) are dropped: all as the pipeline does.
 *
 * A token continues a word when the tokenizer marks continuations (WordPiece's "##": the token's
 * text is longer than what it spans) or, for the others (byte-level BPE, SentencePiece), when no
 * space touches its start in the text. An unknown token ([UNK]) always starts a word and reads as
 * the text it spans. One difference from the pipeline: a group's word is the tokenizer's decoding
 * of all its ids together (the pipeline joins per-word strings, which glues SentencePiece words:
 * "NewYork"); an [UNK] inside reads as its text, joined with a space.
 */
import { WebqError } from '../errors.ts';

export const AGGREGATIONS = ['none', 'simple', 'first', 'max', 'average'] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

/** One token's label (aggregation 'none'). */
export interface TokenEntity {
  entity: string;
  score: number;
  /** The token's position in the model's input, special tokens counted ([CLS] is 0). */
  index: number;
  /** The token as stored in the vocabulary ("##son", "Ġworld", "▁World"); for [UNK], the text it spans. */
  word: string;
  /** [start, end) in the text, UTF-16 indices: text.slice(start, end). */
  start: number;
  end: number;
}

/** One entity: adjacent tokens or words merged (aggregation 'simple', 'first', 'max', 'average'). */
export interface EntityGroup {
  entity_group: string;
  score: number;
  word: string;
  start: number;
  end: number;
}

/** One text's tokens as the tokenizer gave them (TextTokenizer.encodeWithOffsets). */
export interface TokenRow {
  ids: readonly number[];
  tokens: readonly string[];
  special: readonly boolean[];
  offsets: readonly ([number, number] | null)[];
}

export interface GroupOptions {
  aggregation: Aggregation;
  /** Label names by class index. */
  labels: readonly string[];
  /** Results labelled with these are dropped (default ['O']). */
  ignoreLabels?: readonly string[];
  /** The tokenizer's unknown-token id, if any. */
  unkTokenId?: number;
  /** WordPiece's "##" ('' when the tokenizer has none): how continuation tokens are recognized. */
  continuingSubwordPrefix: string;
  /** Ids -> text (TextTokenizer.decode). */
  decode: (ids: number[]) => string;
}

/** A token with its probabilities, before aggregation. */
interface Piece {
  index: number;
  id: number;
  /** The stored token, or for [UNK] the text it spans. */
  word: string;
  unknown: boolean;
  probs: Float64Array;
  start: number;
  end: number;
  subword: boolean;
}

/** Labelled pieces: one token (none, simple) or one word (first, max, average). */
interface Labelled {
  entity: string;
  score: number;
  pieces: Piece[];
}

function argmax(v: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}

function softmax(row: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  const out = Float64Array.from(row, (v) => Math.exp(v - max));
  const sum = out.reduce((s, v) => s + v, 0);
  return out.map((v) => v / sum);
}

/** "B-PER" -> ['B', 'PER'], "I-PER" -> ['I', 'PER'], "PER" or "O" -> ['I', itself]. */
export function splitTag(label: string): ['B' | 'I', string] {
  if (label.startsWith('B-')) return ['B', label.slice(2)];
  if (label.startsWith('I-')) return ['I', label.slice(2)];
  return ['I', label];
}

/** The text of pieces: their ids decoded together, an [UNK] as the text it spans. */
function wordOf(pieces: Piece[], decode: (ids: number[]) => string): string {
  const parts: string[] = [];
  let run: number[] = [];
  const flush = () => (run.length && parts.push(decode(run)), (run = []));
  for (const p of pieces) {
    if (!p.unknown) run.push(p.id);
    else (flush(), parts.push(p.word));
  }
  flush();
  return parts.map((s) => s.trim()).filter((s) => s !== '').join(' ');
}

function pieces(text: string, row: TokenRow, logits: ArrayLike<number>, o: GroupOptions): Piece[] {
  const L = o.labels.length;
  const out: Piece[] = [];
  row.ids.forEach((id, index) => {
    const at = row.offsets[index];
    if (row.special[index] || !at) return;
    const [start, end] = at;
    const ref = text.slice(start, end);
    const unknown = id === o.unkTokenId;
    const word = unknown ? ref : row.tokens[index];
    // Code points, as Python's len() counts them.
    const subword = unknown ? false : o.continuingSubwordPrefix ? [...word].length !== [...ref].length : start > 0 && !/\s/.test(text.slice(start - 1, start + 1));
    out.push({ index, id, word, unknown, probs: softmax(Array.from({ length: L }, (_, j) => logits[index * L + j])), start, end, subword });
  });
  return out;
}

/** first / max / average: a word's label and score from its tokens'. */
function labelWord(word: Piece[], how: Aggregation, labels: readonly string[]): Labelled {
  let probs: Float64Array;
  if (how === 'first') probs = word[0].probs;
  else if (how === 'max') probs = word.reduce((a, b) => (Math.max(...b.probs) > Math.max(...a.probs) ? b : a)).probs;
  else probs = word[0].probs.map((_, j) => word.reduce((s, p) => s + p.probs[j], 0) / word.length);
  const k = argmax(probs);
  return { entity: labels[k], score: probs[k], pieces: word };
}

/**
 * One text's results from its logits [T, labels] (row-major; rows past the text's tokens are
 * ignored) and its tokens: TokenEntity[] for 'none', EntityGroup[] otherwise.
 */
export function groupTokens(text: string, row: TokenRow, logits: ArrayLike<number>, o: GroupOptions): TokenEntity[] | EntityGroup[] {
  if (!(AGGREGATIONS as readonly string[]).includes(o.aggregation)) {
    throw new WebqError('BAD_OPTION', `aggregation must be one of ${AGGREGATIONS.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(o.aggregation)}`);
  }
  const ignore = new Set(o.ignoreLabels ?? ['O']);
  const all = pieces(text, row, logits, o);
  let labelled: Labelled[];
  if (o.aggregation === 'none' || o.aggregation === 'simple') {
    labelled = all.map((p) => {
      const k = argmax(p.probs);
      return { entity: o.labels[k], score: p.probs[k], pieces: [p] };
    });
  } else {
    const words: Piece[][] = [];
    for (const p of all) (p.subword && words.length ? words[words.length - 1].push(p) : words.push([p]));
    labelled = words.map((w) => labelWord(w, o.aggregation, o.labels));
  }
  if (o.aggregation === 'none') {
    return labelled.filter((l) => !ignore.has(l.entity)).map(({ entity, score, pieces: [p] }) => ({ entity, score, index: p.index, word: p.word, start: p.start, end: p.end }));
  }
  const groups: Labelled[][] = [];
  for (const l of labelled) {
    const last = groups[groups.length - 1];
    const [bi, tag] = splitTag(l.entity);
    if (last && bi !== 'B' && splitTag(last[last.length - 1].entity)[1] === tag) last.push(l);
    else groups.push([l]);
  }
  return groups
    .map((g) => {
      const ps = g.flatMap((l) => l.pieces);
      return {
        entity_group: g[0].entity.split('-').pop()!,
        score: g.reduce((s, l) => s + l.score, 0) / g.length,
        word: wordOf(ps, o.decode),
        start: ps[0].start,
        end: ps[ps.length - 1].end,
      };
    })
    .filter((e) => !ignore.has(e.entity_group));
}
