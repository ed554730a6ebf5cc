/**
 * Resource limits a caller sets on a loaded model (LlmLoadOptions.limits, BertLoadOptions.limits)
 * so that a server cannot be made to hold unbounded memory or wait forever:
 *
 *   maxInputTokens  LlmModel: prompt tokens of one call (chat: the rendered conversation);
 *                   BertModel: tokens of one batch as the GPU holds it (texts x longest row)
 *   maxBatch        BertModel: texts in one embed / classify call
 *   maxQueue        calls waiting or running at once; one more is refused at once (BUSY) instead
 *                   of queueing its prompt, its buffers and its promise behind the others
 *   timeoutMs       default per-call deadline (GenerateOptions.timeoutMs / EmbedOptions.timeoutMs
 *                   override it), counted from the call, queueing included
 *
 * Each refusal is a LimitError with its code, the number asked for and the limit.
 */
import { WebqError } from '../errors.ts';

export type LimitErrorCode = 'INPUT_TOO_LONG' | 'BATCH_TOO_LARGE' | 'BUSY' | 'TIMEOUT';

/** A call went past a limit the caller set (CallLimits, a per-call timeoutMs). */
export class LimitError extends WebqError {
  declare readonly code: LimitErrorCode;
  constructor(code: LimitErrorCode, message: string) {
    super(code, message);
  }
}

export interface CallLimits {
  maxInputTokens?: number;
  maxBatch?: number;
  maxQueue?: number;
  timeoutMs?: number;
}

/** The limits with every field set (Infinity where there is none). */
export type Limits = Required<CallLimits>;

/** Checks the caller's limits: positive integers (timeoutMs: a positive number), or absent. */
export function resolveLimits(l: CallLimits | undefined): Limits {
  if (l !== undefined && (typeof l !== 'object' || l === null)) throw new WebqError('BAD_OPTION', `limits must be an object like { maxQueue: 16 }, got ${JSON.stringify(l)}`);
  const out: Limits = { maxInputTokens: Infinity, maxBatch: Infinity, maxQueue: Infinity, timeoutMs: Infinity };
  for (const k of Object.keys(out) as (keyof Limits)[]) {
    const v = l?.[k];
    if (v === undefined) continue;
    const ok = typeof v === 'number' && v > 0 && (k === 'timeoutMs' ? !Number.isNaN(v) : Number.isSafeInteger(v) || v === Infinity);
    if (!ok) throw new WebqError('BAD_OPTION', `limits.${k} must be a positive ${k === 'timeoutMs' ? 'number of milliseconds' : 'integer'}, got ${JSON.stringify(v)}`);
    out[k] = v;
  }
  return out;
}

/** A per-call timeoutMs: a positive number, or undefined for the model's default. */
export function callTimeout(v: unknown, limits: Limits): number {
  if (v === undefined) return limits.timeoutMs;
  if (typeof v !== 'number' || !(v > 0)) throw new WebqError('BAD_OPTION', `timeoutMs must be a positive number of milliseconds, got ${JSON.stringify(v)}`);
  return v;
}

/** Counts a model's calls in flight and refuses one past maxQueue. */
export class CallCounter {
  private n = 0;
  constructor(private readonly describe: string) {}

  get inFlight(): number {
    return this.n;
  }

  /** Counts a call in; the returned function counts it out (once). */
  enter(limits: Limits): () => void {
    if (this.n >= limits.maxQueue) {
      throw new LimitError('BUSY', `${this.describe}: ${this.n} calls are already waiting or running, the limit set by limits.maxQueue (${limits.maxQueue}); retry later or raise the limit`);
    }
    this.n++;
    let out = false;
    return () => {
      if (!out) this.n--;
      out = true;
    };
  }
}

/**
 * A deadline of `ms` for one call, merged with the caller's signal: `signal` aborts with a
 * LimitError 'TIMEOUT' when the time is up. done() clears the timer.
 */
export function deadline(ms: number, what: string, signal?: AbortSignal): { signal: AbortSignal | undefined; done(): void } {
  if (ms === Infinity) return { signal, done: () => undefined };
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new LimitError('TIMEOUT', `${what} took longer than its timeoutMs of ${ms} ms`)), Math.min(ms, 2 ** 31 - 1));
  return { signal: signal ? AbortSignal.any([signal, ac.signal]) : ac.signal, done: () => clearTimeout(timer) };
}

/** `p`, or the signal's reason if it aborts first (p still runs to its end: its cleanup stays its own). */
export function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}
