/**
 * A strict JSON parser (RFC 8259) for untrusted headers and index files.
 *
 * Why not JSON.parse: it silently keeps the last of duplicate keys, so a crafted header could show
 * one tensor entry to a validator and another to a reader; and it builds objects on
 * Object.prototype, where a `__proto__` key behaves specially. This parser rejects duplicate keys
 * (reporting where) and builds every object with Object.create(null), so any key is plain data.
 */
import { WebqError } from '../errors.ts';
import { q } from './errors.ts';

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
/** A parsed object. It has a null prototype: use Object.hasOwn / Object.keys, not `in` on builtins. */
export interface JsonObject {
  [key: string]: JsonValue;
}

/** The text is not well-formed JSON. `offset` is the UTF-16 index where parsing stopped. */
export class JsonSyntaxError extends WebqError {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super('JSON_SYNTAX', message);
    this.offset = offset;
  }
}

/** An object has the same key twice. `path` is the chain of keys leading to that object. */
export class JsonDuplicateKeyError extends WebqError {
  readonly key: string;
  readonly path: readonly string[];
  constructor(key: string, path: readonly string[]) {
    const where = path.length === 0 ? 'the top-level object' : `object ${path.map(q).join(' > ')}`;
    super('JSON_DUPLICATE_KEY', `key ${q(key)} appears twice in ${where}`);
    this.key = key;
    this.path = path;
  }
}

export interface ParseOptions {
  /** Deepest nesting accepted; guards the recursive descent against stack exhaustion. Default 64. */
  maxDepth?: number;
  /**
   * Called with each number's literal text (e.g. "2.0") and the object keys leading to it; may
   * throw to reject it. JSON.parse-style readers lose the spelling, which matters where a format
   * wants integers written as integers (safetensors offsets: the reference rejects 2.0 and 8e0).
   */
  onNumber?: (literal: string, path: readonly string[]) => void;
}

// Sticky so it matches exactly at the cursor without slicing the text.
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const ESCAPES: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };

/** Parses `text` as a single JSON value; throws JsonSyntaxError or JsonDuplicateKeyError. */
export function parseStrictJson(text: string, options: ParseOptions = {}): JsonValue {
  const p = new Parser(text, options.maxDepth ?? 64, options.onNumber);
  p.skipWs();
  const value = p.value(0);
  p.skipWs();
  if (p.i !== text.length) p.fail('end of input');
  return value;
}

class Parser {
  i = 0;
  private readonly path: string[] = [];
  constructor(
    private readonly s: string,
    private readonly maxDepth: number,
    private readonly onNumber: ParseOptions['onNumber'],
  ) {}

  fail(expected: string): never {
    const found = this.i >= this.s.length ? 'end of input' : JSON.stringify(this.s[this.i]);
    throw new JsonSyntaxError(`expected ${expected} at offset ${this.i}, found ${found}`, this.i);
  }

  skipWs(): void {
    const s = this.s;
    let i = this.i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
    this.i = i;
  }

  value(depth: number): JsonValue {
    const c = this.s[this.i];
    if (c === '{') return this.object(depth + 1);
    if (c === '[') return this.array(depth + 1);
    if (c === '"') return this.string();
    if (c === 't') return this.literal('true', true);
    if (c === 'f') return this.literal('false', false);
    if (c === 'n') return this.literal('null', null);
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(this.s);
    if (m === null) this.fail('a JSON value');
    this.onNumber?.(m[0], this.path);
    this.i += m[0].length;
    return Number(m[0]);
  }

  private literal<T>(word: string, v: T): T {
    if (!this.s.startsWith(word, this.i)) this.fail(JSON.stringify(word));
    this.i += word.length;
    return v;
  }

  private enter(depth: number): void {
    if (depth > this.maxDepth) throw new JsonSyntaxError(`nesting deeper than ${this.maxDepth} levels at offset ${this.i}`, this.i);
    this.i++; // the opening bracket
    this.skipWs();
  }

  private object(depth: number): JsonObject {
    this.enter(depth);
    const obj: JsonObject = Object.create(null);
    if (this.s[this.i] === '}') {
      this.i++;
      return obj;
    }
    for (;;) {
      if (this.s[this.i] !== '"') this.fail('a string key');
      const key = this.string();
      if (Object.hasOwn(obj, key)) throw new JsonDuplicateKeyError(key, [...this.path]);
      this.skipWs();
      if (this.s[this.i] !== ':') this.fail('":"');
      this.i++;
      this.skipWs();
      this.path.push(key);
      // Null prototype: even "__proto__" becomes an ordinary own property here.
      obj[key] = this.value(depth);
      this.path.pop();
      this.skipWs();
      const c = this.s[this.i++];
      if (c === '}') return obj;
      if (c !== ',') {
        this.i--;
        this.fail('"," or "}"');
      }
      this.skipWs();
    }
  }

  private array(depth: number): JsonValue[] {
    this.enter(depth);
    const arr: JsonValue[] = [];
    if (this.s[this.i] === ']') {
      this.i++;
      return arr;
    }
    for (;;) {
      arr.push(this.value(depth));
      this.skipWs();
      const c = this.s[this.i++];
      if (c === ']') return arr;
      if (c !== ',') {
        this.i--;
        this.fail('"," or "]"');
      }
      this.skipWs();
    }
  }

  private string(): string {
    const s = this.s;
    let i = ++this.i; // past the opening quote
    let out = '';
    let runStart = i;
    for (;;) {
      const c = s.charCodeAt(i);
      if (c === 0x22) break; // closing quote
      if (Number.isNaN(c)) {
        this.i = i;
        this.fail('a closing \'"\'');
      }
      if (c < 0x20) {
        this.i = i;
        this.fail('an escaped control character');
      }
      if (c >= 0xd800 && c <= 0xdfff) {
        // Raw lone surrogates cannot come from valid UTF-8, but the text may come from elsewhere.
        const ok = c <= 0xdbff && isLow(s.charCodeAt(i + 1));
        if (!ok) {
          this.i = i;
          this.fail('a valid UTF-16 surrogate pair');
        }
        i += 2;
        continue;
      }
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += s.slice(runStart, i);
      const e = s[i + 1];
      if (e === 'u') {
        const code = this.hex4(i + 2);
        i += 6;
        if (code >= 0xd800 && code <= 0xdfff) {
          // An escaped surrogate must be a high one followed by an escaped low one; a lone half
          // is not a Unicode string (serde_json in the reference implementation rejects it too).
          const low = s[i] === '\\' && s[i + 1] === 'u' ? this.hex4(i + 2) : -1;
          if (code > 0xdbff || !isLow(low)) {
            this.i = i - 6;
            this.fail('a valid \\u surrogate pair');
          }
          out += String.fromCharCode(code, low);
          i += 6;
        } else {
          out += String.fromCharCode(code);
        }
      } else if (e !== undefined && Object.hasOwn(ESCAPES, e)) {
        out += ESCAPES[e];
        i += 2;
      } else {
        this.i = i;
        this.fail('a valid escape sequence');
      }
      runStart = i;
    }
    this.i = i + 1;
    return out + s.slice(runStart, i);
  }

  private hex4(at: number): number {
    const h = this.s.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(h)) {
      this.i = at;
      this.fail('4 hex digits');
    }
    return parseInt(h, 16);
  }
}

function isLow(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}
