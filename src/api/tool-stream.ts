/**
 * Tool calls out of a streamed reply, so that the chunks reassemble to what parseToolCalls gives
 * for the whole text: content outside complete calls (leading and trailing whitespace dropped) and
 * each call as soon as it is complete. Hermes blocks (<tool_call>...</tool_call>) stream as they
 * close; a reply in the JSON syntaxes (llama3, mistral) is one whole, so a reply that starts like
 * one ('{', '[') is held to its end and parsed then.
 */
import { parseToolCalls, type ToolCall, type ToolFormat } from './tools.ts';

const OPEN = '<tool_call>';
const CLOSE = '</tool_call>';

export interface ToolStreamOut {
  content: string;
  calls: ToolCall[];
}

export class ToolStreamParser {
  private buf = '';
  private started = false; // some content was emitted (leading whitespace is behind us)
  private heldSpace = ''; // trailing whitespace not yet known to be inner
  private whole: boolean | null = null; // JSON syntaxes: the reply is held whole

  constructor(private readonly format: ToolFormat) {}

  push(text: string): ToolStreamOut {
    this.buf += text;
    if (this.format !== 'hermes') {
      if (this.whole === null) {
        const t = this.buf.trimStart();
        if (t === '') return { content: '', calls: [] };
        this.whole = /^(\{|\[|<\|python_tag\|>)/.test(t);
      }
      if (this.whole) return { content: '', calls: [] };
      const out = this.emit(this.buf);
      this.buf = '';
      return { content: out, calls: [] };
    }
    let content = '';
    const calls: ToolCall[] = [];
    for (;;) {
      const at = this.buf.indexOf(OPEN);
      if (at < 0) {
        // Hold back a tail that could be the start of <tool_call>.
        let keep = 0;
        for (let n = Math.min(OPEN.length - 1, this.buf.length); n > 0; n--) {
          if (OPEN.startsWith(this.buf.slice(-n))) {
            keep = n;
            break;
          }
        }
        content += this.emit(this.buf.slice(0, this.buf.length - keep));
        this.buf = this.buf.slice(this.buf.length - keep);
        break;
      }
      const end = this.buf.indexOf(CLOSE, at);
      content += this.emit(this.buf.slice(0, at));
      this.buf = this.buf.slice(at);
      if (end < 0) break; // the block is still open
      const block = this.buf.slice(0, end - at + CLOSE.length);
      const parsed = parseToolCalls(block, 'hermes');
      if (parsed.calls.length) calls.push(...parsed.calls);
      else content += this.emit(block); // not a call after all: it is text, as parseToolCalls leaves it
      this.buf = this.buf.slice(block.length);
    }
    return { content, calls };
  }

  /** At the end of the reply: what is left. */
  flush(): ToolStreamOut {
    const rest = this.buf;
    this.buf = '';
    if (this.format !== 'hermes' && this.whole) {
      const p = parseToolCalls(rest, this.format);
      return { content: p.calls.length ? '' : this.emit(rest), calls: p.calls };
    }
    return { content: this.emit(rest), calls: [] };
  }

  /** Text outside calls, with leading whitespace dropped and trailing whitespace held until more text follows. */
  private emit(text: string): string {
    if (!text) return '';
    let t = this.heldSpace + text;
    if (!this.started) {
      t = t.trimStart();
      if (!t) {
        this.heldSpace = '';
        return '';
      }
      this.started = true;
    }
    const body = t.trimEnd();
    this.heldSpace = t.slice(body.length);
    return body;
  }
}
