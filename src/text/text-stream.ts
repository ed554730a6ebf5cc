/**
 * Incremental detokenization for streaming generation: token ids in, newly finished text out.
 *
 * Decoding one token at a time is wrong in two ways. A character split over byte tokens
 * (`<0xF0><0x9F><0xA6><0x99>` for 🦙, or a byte-level BPE piece) decodes to U+FFFD until its last
 * byte arrives; and SentencePiece decoders strip the leading space of the first token, so "▁world"
 * alone is "world" although it follows "Hello". So each push decodes a window that starts a few
 * tokens back (context already released) and releases only the difference, holding back a tail
 * of U+FFFD until the character completes (what transformers' TextStreamer and vLLM do).
 *
 * Stop strings: released text that could be the start of a stop string is held back until it
 * cannot be; once a stop string appears, it and everything after it are dropped and the stream
 * is stopped. Concatenating every push and the final flush() gives exactly
 * `tokenizer.decode(allIds)` (cut at the first stop string).
 */
import { WebqError } from '../errors.ts';
import type { TextTokenizer } from './tokenizer.ts';

export interface TextStreamerOptions {
  /** Leave special tokens (<|im_end|>, </s>) out of the text. Default true. */
  skipSpecialTokens?: boolean;
  /** Strings that end generation; they and what follows are not part of the text. */
  stop?: readonly string[];
}

export interface StreamChunk {
  /** Text that became final with this push; often "", never a partial character. */
  text: string;
  /** A stop string was seen (now or before); generation should end. */
  stopped: boolean;
  /**
   * How many of the pushed ids count: all of them, or, when a stop string appeared, those up to
   * and including the one that completed it (the ids after it were sampled past the stop).
   */
  used: number;
}

const REPLACEMENT = 0xfffd;

export class TextStreamer {
  private readonly tokenizer: TextTokenizer;
  private readonly skipSpecialTokens: boolean;
  private readonly stops: readonly string[];

  // Detokenization window: window[0:ctx] are context tokens whose text (ctxText) was released
  // before; window[ctx:] are the tokens since, the first `done` chars of whose text are released.
  private window: number[] = [];
  private ctx = 0;
  private ctxText = '';
  private done = 0;
  private fresh = '';

  // Released by the detokenizer but held back because it may begin a stop string.
  private pending = '';
  private accepted = '';
  private isStopped = false;

  constructor(tokenizer: TextTokenizer, opts: TextStreamerOptions = {}) {
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = opts.skipSpecialTokens ?? true;
    const stop = opts.stop ?? [];
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s === '')) {
      throw new WebqError('STREAM_BAD_STOP', `stop strings must be an array of non-empty strings, got ${JSON.stringify(stop)}`);
    }
    this.stops = [...stop];
  }

  /** All text released so far (pushes and flush). */
  get text(): string {
    return this.accepted;
  }

  get stopped(): boolean {
    return this.isStopped;
  }

  /** Adds generated ids; returns the text they completed. After a stop, returns nothing. */
  push(ids: readonly number[]): StreamChunk {
    if (!Array.isArray(ids) || ids.some((id) => !Number.isSafeInteger(id) || id < 0)) {
      throw new WebqError('STREAM_BAD_IDS', `TextStreamer.push: expected an array of token ids (non-negative integers), got ${String(ids).slice(0, 80)}`);
    }
    if (this.isStopped) return { text: '', stopped: true, used: 0 };
    if (ids.length === 0) return { text: '', stopped: false, used: 0 };
    if (this.stops.length === 0) return { ...this.pushIds(ids), used: ids.length };
    // With stop strings, one id at a time, so that the id completing a stop is known.
    let text = '';
    for (let i = 0; i < ids.length; i++) {
      const c = this.pushIds([ids[i]]);
      text += c.text;
      if (c.stopped) return { text, stopped: true, used: i + 1 };
    }
    return { text, stopped: false, used: ids.length };
  }

  private pushIds(ids: readonly number[]): { text: string; stopped: boolean } {
    this.window.push(...ids);
    const full = this.decode(this.window);
    // The window's text normally starts with the context's; if a decoder ever changed it, the
    // context's text was released already and cannot be taken back, so compare by length.
    this.fresh = full.slice(this.ctxText.length);
    let end = this.fresh.length;
    while (end > this.done && this.fresh.charCodeAt(end - 1) === REPLACEMENT) end--;
    const stable = this.fresh.slice(this.done, end);
    this.done = Math.max(this.done, end);
    if (end === this.fresh.length) this.checkpoint(full);
    return this.release(stable, false);
  }

  /** Generation ended without a stop string: the text still held back (stop prefixes, U+FFFD). */
  flush(): string {
    if (this.isStopped) return '';
    const rest = this.fresh.slice(this.done);
    this.done = this.fresh.length;
    return this.release(rest, true).text;
  }

  private decode(ids: number[]): string {
    return this.tokenizer.decode(ids, { skipSpecialTokens: this.skipSpecialTokens });
  }

  /**
   * All text of the window is out: the tokens since the last checkpoint become the next context
   * (they start on a character boundary). A context whose text is empty (skipped special tokens,
   * a lone "▁" that the decoder strips) would not keep the next token's leading space, so then
   * the whole window stays as context.
   */
  private checkpoint(full: string): void {
    const tail = this.window.slice(this.ctx);
    const tailText = this.ctx === 0 ? full : this.decode(tail);
    if (tailText === '') {
      this.ctx = this.window.length;
      this.ctxText = full;
    } else {
      this.window = tail;
      this.ctx = tail.length;
      this.ctxText = tailText;
    }
    this.done = 0;
    this.fresh = '';
  }

  private release(text: string, final: boolean): { text: string; stopped: boolean } {
    this.pending += text;
    let cut = -1;
    for (const s of this.stops) {
      const i = this.pending.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      const out = this.pending.slice(0, cut);
      this.pending = '';
      this.accepted += out;
      this.isStopped = true;
      return { text: out, stopped: true };
    }
    const keep = final ? 0 : this.stopPrefixLength(this.pending);
    const out = this.pending.slice(0, this.pending.length - keep);
    this.pending = this.pending.slice(this.pending.length - keep);
    this.accepted += out;
    return { text: out, stopped: false };
  }

  /** Length of the longest end of `text` that is a proper start of some stop string. */
  private stopPrefixLength(text: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let k = Math.min(text.length, s.length - 1); k > best; k--) {
        if (text.endsWith(s.slice(0, k))) {
          best = k;
          break;
        }
      }
    }
    return best;
  }
}
