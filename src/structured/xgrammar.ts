/**
 * Loads the constraint engine, XGrammar's WebAssembly build (@mlc-ai/web-xgrammar, Apache-2.0, the
 * one WebLLM uses), once per process and only when a constraint is first used.
 *
 * Node and Deno evaluate the package's script as the CommonJS module it is (its package.json says
 * "type": "module", so neither can import it), with `process` hidden so that Emscripten takes its
 * plain-JS path (the WASM is inlined as base64, nothing is fetched) and with a `console` of our own:
 * the engine reports a bad schema or grammar on stderr and then aborts, and the captured line is what
 * webq's error names. Browsers (bundlers) import the package; there the engine's own line goes to
 * the console and webq's checks before it (schema keywords, regex syntax) give the message.
 */
import { detectRuntime } from '../env.ts';
import { ConstraintError } from './errors.ts';

/** The slice of web-xgrammar's API webq uses (lib/xgrammar.d.ts). */
export interface XgTokenizerInfo {
  getVocabSize(): number;
  dispose(): void;
}
export interface XgCompiled {
  dispose(): void;
}
export interface XgCompiler {
  compileJSONSchema(schema: string, anyWhitespace?: boolean, indent?: number, separators?: [string, string], strictMode?: boolean, maxWhitespaceCnt?: number): Promise<XgCompiled>;
  compileBuiltinJSONGrammar(): Promise<XgCompiled>;
  compileGrammar(grammar: string, rootRule?: string): Promise<XgCompiled>;
  compileStructuralTag(tag: unknown): Promise<XgCompiled>;
  dispose(): void;
}
export interface XgMatcher {
  acceptToken(id: number): boolean;
  getNextTokenBitmask(): Promise<Int32Array>;
  isTerminated(): boolean;
  findJumpForwardString(): string;
  rollBack(n: number): void;
  reset(): void;
  dispose(): void;
}
export interface XgGrammar {
  toString(): string;
  dispose(): void;
}
export interface Xgrammar {
  Grammar: { fromJSONSchema(schema: string, anyWhitespace?: boolean, indent?: number, separators?: [string, string], strictMode?: boolean): Promise<XgGrammar> };
  TokenizerInfo: { createTokenizerInfo(vocab: string[], kind: string, prependSpace: boolean, vocabSize: number, stop: number[]): Promise<XgTokenizerInfo> };
  GrammarCompiler: { createGrammarCompiler(info: XgTokenizerInfo, cache?: boolean): Promise<XgCompiler> };
  GrammarMatcher: { createGrammarMatcher(g: XgCompiled, stop?: number[], terminateWithoutStop?: boolean): Promise<XgMatcher> };
}

/** Lines the engine printed (its errors come as "[FATAL] file:line: message" before it aborts). */
const printed: string[] = [];
const sink = (...a: unknown[]) => {
  printed.push(a.map(String).join(' '));
  if (printed.length > 50) printed.shift();
};
const quietConsole = { log: sink, info: sink, warn: sink, error: sink, debug: sink };

// Specifiers in variables: bundlers leave these alone (as in src/io/node-fs.ts).
const FS = 'node:fs/promises';
const MODULE = 'node:module';
let loading: Promise<Xgrammar> | null = null;

async function load(): Promise<Xgrammar> {
  if (detectRuntime() !== 'browser') {
    const fs = (await import(/* @vite-ignore */ /* webpackIgnore: true */ FS)) as typeof import('node:fs/promises');
    const { createRequire } = (await import(/* @vite-ignore */ /* webpackIgnore: true */ MODULE)) as typeof import('node:module');
    const require = createRequire(import.meta.url);
    const filename = require.resolve('@mlc-ai/web-xgrammar/lib/index.js');
    const source = await fs.readFile(filename, 'utf8');
    const module = { exports: {} as Record<string, unknown> };
    // The script is the package's own build, evaluated once, as Node's CommonJS loader would.
    new Function('exports', 'module', 'require', '__filename', 'process', 'console', source)(module.exports, module, require, filename, undefined, quietConsole);
    return module.exports as unknown as Xgrammar;
  }
  const m = (await import('@mlc-ai/web-xgrammar')) as unknown as Record<string, unknown> & { default?: unknown };
  const g = globalThis as { xgrammar?: unknown };
  // A bundler either wraps the UMD script as CommonJS (exports) or runs it as a script (a global).
  for (const c of [m, m.default, g.xgrammar]) if (c && typeof (c as Xgrammar).GrammarCompiler === 'object') return c as Xgrammar;
  for (const c of [m, m.default, g.xgrammar]) if (c && typeof (c as Xgrammar).GrammarCompiler === 'function') return c as Xgrammar;
  throw new Error('the module has no GrammarCompiler');
}

/** The engine; the first call loads it (tens of milliseconds in Node). */
export function loadXgrammar(): Promise<Xgrammar> {
  loading ??= load().catch((e: unknown) => {
    loading = null;
    throw new ConstraintError('ENGINE_UNAVAILABLE', `the constraint engine (@mlc-ai/web-xgrammar) could not be loaded: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  });
  return loading;
}

/**
 * Runs an engine call; when it throws (the engine aborts on bad input), the error carries the
 * engine's own message, less its source path.
 */
export async function engineCall<T>(what: string, code: 'BAD_SCHEMA' | 'BAD_REGEX' | 'BAD_GRAMMAR' | 'BAD_TOOLS', fn: () => Promise<T>): Promise<T> {
  const before = printed.length;
  try {
    return await fn();
  } catch (e) {
    const said = printed.slice(before).find((l) => /\[FATAL\]|error/i.test(l)) ?? printed.slice(before).join(' ');
    const msg = said.replace(/^\[FATAL\]\s*\S+:\d+:\s*/, '').trim() || (e instanceof Error ? e.message : String(e));
    throw new ConstraintError(code, `${what}: ${msg}`, { cause: e });
  } finally {
    printed.length = Math.min(printed.length, before);
  }
}

/** The engine's last complaint from a call that `quietly` absorbed (for tests and bug reports). */
export let lastEngineComplaint = '';

/** Runs an engine call that may abort on an engine bug; on failure gives `fallback` and keeps the engine's line. */
export function quietly<T>(fn: () => T, fallback: T): T {
  const before = printed.length;
  try {
    return fn();
  } catch (e) {
    lastEngineComplaint = printed.slice(before).join(' ') || (e instanceof Error ? e.message : String(e));
    return fallback;
  } finally {
    printed.length = Math.min(printed.length, before);
  }
}
