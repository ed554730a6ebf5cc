/**
 * Concurrent generate calls sharing decode forwards (LlmLoadOptions.concurrency = B > 1): calls
 * that can batch (no responseFormat, tools, logitBias, logprobs or speculative) gather into a
 * group of up to B; the group waits its turn in the model's queue like any call, and once it has
 * the turn (and GATHER_MS more, so calls made together start together) its
 * members decode as one batch (src/generate/batch.ts): one forward per step for all of them.
 * Calls that arrive while a group decodes, or past B, gather into the next group, which runs when
 * the model's queue reaches it. A call does not join a batch already decoding (its rows share one
 * step counter); that is the simpler version of issue #24's "join at the next step".
 *
 * Each call keeps its own sampling (its own seed stream), maxTokens, stops and abort signal,
 * streams its own chunks and gets its own usage; its tokens are those it gives alone (a row of a
 * batch samples as one sequence does). A call that ends (a stop, its maxTokens, an abort) settles
 * at once; its row runs on, discarded, until the group's last call ends.
 */
import { WebqError } from '../errors.ts';
import { abortError } from '../generate/decoder.ts';
import type { BatchDecoder } from '../generate/batch.ts';
import type { LlamaGpuWeights } from '../models/llama/llama.ts';
import { TextStreamer } from '../text/text-stream.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';
import { MAX_BATCH, type BatchJob } from './batch-generate.ts';
import type { FinishReason, GenerationChunk, GenerationResult, Usage } from './llm-results.ts';

const now = () => (globalThis.performance ?? Date).now();

/**
 * How long a group that got the model's turn at once still gathers (ms): calls made together but
 * arriving a few event-loop turns apart (HTTP requests parsed one after another) start together.
 * Small next to a decode step; a group that waited for its turn has gathered meanwhile.
 */
const GATHER_MS = 5;

export function checkConcurrency(n: number | undefined): void {
  if (n !== undefined && (!Number.isInteger(n) || n < 1 || n > MAX_BATCH)) throw new WebqError('BAD_OPTION', `concurrency must be an integer from 1 to ${MAX_BATCH}, got ${n}`);
}

/** What a group needs of its model (LlmModel passes its private parts here). */
export interface ConcurrentHost {
  readonly tokenizer: TextTokenizer;
  readonly eosTokenIds: readonly number[];
  /** The model's queue (a group holds one turn for its whole batch). */
  acquire(): Promise<() => void>;
  /** Throws when the model was disposed or its weights are stale. */
  checkLive(): void;
  /** The batch decoder for `rows` sequences and the weights it runs on (read once the turn is held). */
  decoder(rows: number): { dec: BatchDecoder; weights: LlamaGpuWeights };
}

/** One call's chunks, handed from the group's loop to the call's generator. */
class Call {
  private readonly chunks: GenerationChunk[] = [];
  private end: { result: GenerationResult } | { error: unknown } | null = null;
  private wake: (() => void) | null = null;
  /** Settled, or its reader left: the group ignores its row from now on. */
  done = false;
  readonly streamer: TextStreamer;
  readonly eos: Set<number>;
  readonly tokens: number[] = [];
  t0 = now();
  tFirst = 0;
  private readonly onAbort = () => this.fail(abortError(this.signal!));

  constructor(readonly job: BatchJob, readonly signal: AbortSignal | undefined, tokenizer: TextTokenizer, eosIds: readonly number[]) {
    this.streamer = new TextStreamer(tokenizer, { skipSpecialTokens: true, stop: job.stop });
    this.eos = new Set(job.ignoreEos ? [] : eosIds);
    // An abort settles the call at once, waiting or decoding; the others' rows are untouched.
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  usage(): Usage {
    const t = now();
    const first = this.tFirst || t;
    return {
      promptTokens: this.job.ids.length,
      completionTokens: this.tokens.length,
      cachedTokens: 0,
      prefillTokensPerSecond: this.job.ids.length / (Math.max(first - this.t0, 1e-6) / 1000),
      decodeTokensPerSecond: this.tokens.length > 1 ? (this.tokens.length - 1) / (Math.max(t - first, 1e-6) / 1000) : 0,
    };
  }

  push(chunk: GenerationChunk): void {
    this.chunks.push(chunk);
    this.wake?.();
  }

  finish(finishReason: FinishReason): void {
    if (this.done) return;
    const rest = this.streamer.flush();
    const usage = this.usage();
    if (rest) this.push({ text: rest, tokens: [], usage });
    this.settle({ result: { text: this.streamer.text, tokens: this.tokens, promptIds: this.job.ids, finishReason, usage } });
  }

  fail(error: unknown): void {
    if (!this.done) this.settle({ error });
  }

  private settle(end: NonNullable<Call['end']>): void {
    this.done = true;
    this.end = end;
    this.signal?.removeEventListener('abort', this.onAbort);
    this.wake?.();
  }

  /** The call's side: its chunks as they come, then its result (or its error). */
  async *read(): AsyncGenerator<GenerationChunk, GenerationResult> {
    try {
      for (;;) {
        if (this.chunks.length) {
          yield this.chunks.shift()!;
          continue;
        }
        if (this.end) {
          if ('error' in this.end) throw this.end.error;
          return this.end.result;
        }
        await new Promise<void>((r) => (this.wake = r));
        this.wake = null;
      }
    } finally {
      // A reader that leaves early (a stream closed) frees its row's work for the group.
      if (!this.done) this.fail(new WebqError('ABORTED', 'the stream was closed'));
    }
  }
}

export class ConcurrentCalls {
  /** The group still gathering (not yet holding the model's turn), if any. */
  private open: Call[] | null = null;

  constructor(private readonly host: ConcurrentHost, readonly size: number) {}

  /** Runs one call in a shared batch: its chunks, then its result. */
  run(job: BatchJob, signal?: AbortSignal): AsyncGenerator<GenerationChunk, GenerationResult> {
    signal?.throwIfAborted();
    const call = new Call(job, signal, this.host.tokenizer, this.host.eosTokenIds);
    if (this.open && this.open.length < this.size) this.open.push(call);
    else {
      const group = [call];
      this.open = group;
      void this.start(group);
    }
    return call.read();
  }

  private async start(group: Call[]): Promise<void> {
    let release: (() => void) | undefined;
    try {
      release = await this.host.acquire();
      if (group.length < this.size) await new Promise((r) => setTimeout(r, GATHER_MS));
      if (this.open === group) this.open = null;
      this.host.checkLive();
      const live = group.filter((c) => !c.done);
      if (live.length) await this.decode(live);
    } catch (e) {
      let error = e;
      try {
        this.host.checkLive(); // disposed while decoding: say so, not the buffer's error
      } catch (d) {
        error = d;
      }
      group.forEach((c) => c.fail(error));
    } finally {
      if (this.open === group) this.open = null;
      release?.();
    }
  }

  private async decode(calls: Call[]): Promise<void> {
    const { dec, weights } = this.host.decoder(calls.length);
    const rows = calls.map((c) => ({ prompt: c.job.ids, params: c.job.params }));
    const maxTokens = Math.max(...calls.map((c) => c.job.maxTokens));
    for await (const step of dec.generate(weights, rows, { maxTokens })) {
      const t = now();
      step.forEach((ids, b) => {
        const c = calls[b];
        if (c.done) return;
        if (!c.tFirst) c.tFirst = t;
        const upTo = ids.slice(0, c.job.maxTokens - c.tokens.length);
        const end = upTo.findIndex((id) => c.eos.has(id));
        const accepted = end < 0 ? upTo : upTo.slice(0, end);
        const { text, stopped, used } = c.streamer.push(accepted);
        const kept = accepted.slice(0, used);
        c.tokens.push(...kept);
        if (text) c.push({ text, tokens: kept, usage: c.usage() });
        if (stopped || end >= 0) c.finish('stop');
        else if (c.tokens.length >= c.job.maxTokens) c.finish('length');
      });
      if (calls.every((c) => c.done)) break;
    }
    calls.forEach((c) => c.finish('length'));
  }
}
