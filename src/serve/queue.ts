/**
 * One model's requests, one after another (or up to `slots` at once: a model loaded with
 * concurrency, whose concurrent calls share decode forwards), with a bounded line: a request past `limit` waiting is
 * refused at once (429 with Retry-After, estimated from recent request times) instead of piling up
 * memory and latency. A request whose client goes away while it waits leaves the line.
 */
import { ApiError } from './errors.ts';

interface Waiter {
  start: () => void;
  fail: (e: unknown) => void;
}

export class ModelQueue {
  private running = 0;
  private readonly line: Waiter[] = [];
  /** Recent request durations (ms), for Retry-After. */
  private readonly recent: number[] = [];

  constructor(readonly model: string, readonly limit: number, readonly slots = 1) {}

  /** Requests waiting (not counting the one running). */
  get waiting(): number {
    return this.line.length;
  }

  get busy(): boolean {
    return this.running > 0;
  }

  /** Seconds until a new request would likely start: the line's expected work, at least 1. */
  retryAfter(): number {
    const avg = this.recent.length ? this.recent.reduce((a, b) => a + b, 0) / this.recent.length : 1000;
    return Math.max(1, Math.ceil(((this.line.length + 1) * avg) / 1000));
  }

  /** Waits for this model's turn; resolves to the release function. 429 when the line is full. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    const full = this.running >= this.slots;
    if (full && this.line.length >= this.limit) {
      throw new ApiError(429, `model "${this.model}" has ${this.line.length} requests waiting (the limit, --queue ${this.limit}); retry later`, 'requests', 'rate_limit_exceeded', null, { 'Retry-After': String(this.retryAfter()) });
    }
    if (full) {
      await new Promise<void>((start, fail) => {
        const w: Waiter = { start, fail };
        this.line.push(w);
        signal?.addEventListener('abort', () => {
          const i = this.line.indexOf(w);
          if (i >= 0) this.line.splice(i, 1);
          fail(signal.reason);
        }, { once: true });
      });
    } else this.running++; // (a waiter started holds the slot its release passed on)
    const t0 = Date.now();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.recent.push(Date.now() - t0);
      if (this.recent.length > 20) this.recent.shift();
      const next = this.line.shift();
      // The slot passes to the next in line (running stays as it is), or frees.
      if (next) next.start();
      else this.running--;
    };
  }
}
