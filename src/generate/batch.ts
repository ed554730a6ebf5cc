/**
 * Batched decoding: B sequences advance one token per forward together. Each prompt is prefilled
 * on its own (the one-sequence path, into its region of the batch's cache); then every decode step
 * is one forward over B rows, where the Linears are GEMMs of M = B (one read of each weight for
 * all sequences, the point of batching: decode is bound by reading weights) and attention runs per
 * sequence over its own cache length (batchedDecoderAttention). Each row has its own sampler state
 * (seen tokens, seed, ring), so a row samples exactly as it would alone.
 *
 * As in decoder.ts, the CPU writes only the step's positions and step words before each submit and
 * reads back every `batch` steps one staging buffer holding every row's slice of its ring: the same
 * one map per read batch as one sequence, whatever B is. Every buffer is made at construction for
 * the batch's size (the cache, sampler buffers, staging for up to `batch` ids per row); a decode
 * step allocates nothing but the forward's pooled temporaries.
 *
 * Rows that finish early (a stop, or the end of their room in the cache) keep running until every
 * row is done: their positions stay clamped to the cache and what they sample is discarded.
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { Tensor } from '../gpu/tensor.ts';
import { llamaForward, type LlamaGpuWeights } from '../models/llama/llama.ts';
import type { LlamaConfig } from '../models/llama/llama-config.ts';
import { KvBatch } from '../ops/kv-batch.ts';
import type { KvShared } from '../ops/kv-cache.ts';
import { sampleToken, type SamplerState, type SamplingParams } from '../ops/sample.ts';
import { abortError } from './decoder.ts';

const MAP_READ = 0x0001;
const COPY_DST = 0x0008;

/** One sequence of a batch: its prompt and its sampling (its own seed). */
export interface BatchRow {
  prompt: readonly number[];
  params: SamplingParams;
}

export interface BatchDecodeOptions {
  /** Most tokens to sample per sequence. */
  maxTokens: number;
  signal?: AbortSignal;
}

interface RowState {
  sampler: SamplerState;
  /** The row's logits [V]: a view of the step's logits where aligned, else a buffer copied into. */
  logits: Tensor | null;
}

export class BatchDecoder {
  readonly ctx: GpuContext;
  readonly cfg: LlamaConfig;
  readonly kv: KvBatch;
  /** Ids read back per row per batch (the run-ahead window is two batches). */
  readonly readEvery: number;
  private readonly rows: RowState[];
  /** u32 [B]: the step's input ids (each row's sampled `next`, copied in on the GPU). */
  private readonly ids: Tensor;
  private readonly staging: GPUBuffer[];
  private readonly owned: Tensor[];
  private readonly posWords: Uint32Array<ArrayBuffer>;
  private readonly stepWords = new Uint32Array(4);
  private slots = 0;
  private busy = false;

  constructor(ctx: GpuContext, cfg: LlamaConfig, shared: KvShared, size: number, readEvery = 8) {
    if (!Number.isSafeInteger(readEvery) || readEvery < 1) throw new WebqError('BAD_OPTION', `readEvery must be a positive integer, got ${readEvery}`);
    this.ctx = ctx;
    this.cfg = cfg;
    this.readEvery = readEvery;
    this.kv = KvBatch.create(ctx, shared, size);
    const owned: Tensor[] = [];
    const keep = (t: Tensor) => (owned.push(t), t);
    this.owned = owned;
    const V = cfg.vocabSize;
    const words = Math.ceil(V / 32);
    try {
      // Logprobs are not read back in a batch: one unwritten ring for every row (bound read-write,
      // so it cannot be the read-only mask's placeholder).
      const lp = keep(ctx.upload(new Uint32Array(4), [4], 'u32', 'batch.lp'));
      this.rows = Array.from({ length: size }, (_, b): RowState => ({
        sampler: {
          seen: keep(ctx.upload(new Uint32Array(words), [words], 'u32', `batch.${b}.seen`)),
          step: keep(ctx.upload(new Uint32Array(4), [4], 'u32', `batch.${b}.step`)),
          next: keep(ctx.upload(new Uint32Array(1), [1], 'u32', `batch.${b}.next`)),
          ids: keep(ctx.upload(new Uint32Array(2 * readEvery), [2 * readEvery], 'u32', `batch.${b}.ring`)),
          mask: ctx.placeholder('u32'),
          bias: ctx.placeholder('f32'),
          lp,
        },
        logits: null,
      }));
      this.ids = keep(ctx.upload(new Uint32Array(size), [size], 'u32', 'batch.ids'));
      this.staging = [0, 1].map((i) => ctx.dev.gpu.createBuffer({ size: 4 * size * readEvery, usage: MAP_READ | COPY_DST, label: `batch.staging${i}` }));
      this.posWords = new Uint32Array(Math.max(4, size));
    } catch (e) {
      owned.forEach((t) => t.dispose());
      this.kv.dispose();
      throw e;
    }
  }

  get size(): number {
    return this.kv.size;
  }

  /** Row b's logits [V] of a step's logits [B, V]: a view when its offset may be bound, else a copy. */
  private rowLogits(rec: ReturnType<GpuContext['record']>, logits: Tensor, b: number): Tensor {
    const V = this.cfg.vocabSize;
    const rowBytes = V * (logits.dtype === 'f16' ? 2 : 4);
    const at = logits.offset + b * rowBytes;
    if (at % this.ctx.caps.minStorageBufferOffsetAlignment === 0) return new Tensor(logits.buffer, [V], logits.dtype, at);
    const row = this.rows[b];
    if (!row.logits || row.logits.dtype !== logits.dtype) {
      row.logits?.dispose();
      row.logits = this.ctx.empty([V], logits.dtype, `batch.${b}.logits`);
    }
    if (rowBytes % 4 !== 0) throw new WebqError('SHAPE', `batched decode: a row of ${V} f16 logits is not a whole number of 4-byte words; this vocabulary needs f32 activations to batch`);
    rec.copy(logits.buffer, at, row.logits.buffer, row.logits.offset, rowBytes);
    return row.logits;
  }

  /**
   * Samples up to maxTokens ids after each row's prompt (1 to `size` rows), yielding per read-back one array per row
   * (a row past its own limit gets the ids sampled for it anyway: the caller drops them).
   * Returning early (every row stopped) waits for the steps in flight.
   */
  async *generate(weights: LlamaGpuWeights, batch: readonly BatchRow[], opts: BatchDecodeOptions): AsyncGenerator<number[][], void, undefined> {
    const B = batch.length;
    if (B < 1 || B > this.size) throw new WebqError('BAD_OPTION', `this batch decoder runs 1 to ${this.size} sequences; got ${B}`);
    const ids = B === this.size ? this.ids : new Tensor(this.ids.buffer, [B], 'u32', this.ids.offset);
    if (!Number.isSafeInteger(opts.maxTokens) || opts.maxTokens < 1) throw new WebqError('BAD_OPTION', `maxTokens must be a positive integer, got ${opts.maxTokens}`);
    if (this.busy) throw new WebqError('BUSY', 'this batch decoder is already generating; wait for the other call');
    opts.signal?.throwIfAborted();
    const cap = this.kv.shared.shape.cap;
    const V = this.cfg.vocabSize;
    for (const [b, r] of batch.entries()) {
      if (r.prompt.length === 0) throw new WebqError('EMPTY_PROMPT', `prompt ${b} has no tokens; give at least one`);
      if (r.prompt.length > cap) throw new WebqError('CONTEXT_FULL', `prompt ${b} is ${r.prompt.length} tokens, more than the context of ${cap}`);
      r.prompt.forEach((id, i) => {
        if (!Number.isSafeInteger(id) || id < 0 || id >= V) throw new WebqError('TOKEN_OUT_OF_RANGE', `prompt ${b} token ${i} is ${id}, outside the vocabulary of ${V}`);
      });
    }
    this.busy = true;
    const q = this.ctx.dev.gpu.queue;
    // Row b's token k is fed back at position P_b + k - 1, which must stay inside the cache.
    const totals = batch.map((r) => Math.min(opts.maxTokens, cap - r.prompt.length + 1));
    const total = Math.max(...totals);
    const R = this.readEvery;
    for (const [b, r] of batch.entries()) {
      const seen = new Uint32Array(Math.ceil(V / 32));
      for (const id of r.prompt) seen[id >>> 5] |= 1 << (id & 31);
      q.writeBuffer(this.rows[b].sampler.seen.buffer, this.rows[b].sampler.seen.offset, seen);
    }
    const inputs = batch.map((r, b) => this.ctx.write(Uint32Array.from(r.prompt), [r.prompt.length], 'u32', `batch.${b}.prompt`));
    const writeStep = (b: number, k: number) => {
      this.stepWords[0] = k;
      this.stepWords[1] = batch[b].params.seed;
      q.writeBuffer(this.rows[b].sampler.step.buffer, 0, this.stepWords);
    };
    let issued = 0;
    const inFlight: { promise: Promise<void>; slot: number; count: number }[] = [];
    const issueBatch = () => {
      const first = issued;
      // The first read-back holds the prefills' tokens alone (time to first token); then R at a time.
      const count = Math.min(first === 0 ? 1 : R, total - first);
      const slot = this.slots++ % 2;
      for (let i = 0; i < count; i++) {
        const k = issued;
        if (k === 0) {
          for (let b = 0; b < B; b++) {
            const rec = this.ctx.record({ label: 'llm:batch-prefill' });
            const seq = this.kv.seqs[b];
            seq.setPosition(this.ctx, 0);
            const logits = llamaForward(this.ctx, rec, weights, this.cfg, seq, { ids: inputs[b], pos0: 0, lastOnly: true });
            writeStep(b, 0);
            sampleToken(this.ctx, rec, logits.view([V]), this.rows[b].sampler, batch[b].params);
            logits.dispose();
            if (count === 1 && b === B - 1) this.copyOut(rec, B, first, 1, slot);
            void rec.submit();
          }
        } else {
          const rec = this.ctx.record({ label: 'llm:batch-decode' });
          for (let b = 0; b < B; b++) {
            // A row past its room stays on its last position (its output is dropped).
            this.posWords[b] = Math.min(batch[b].prompt.length + k - 1, cap - 1);
            writeStep(b, k);
            rec.copy(this.rows[b].sampler.next.buffer, this.rows[b].sampler.next.offset, this.ids.buffer, this.ids.offset + 4 * b, 4);
          }
          q.writeBuffer(this.kv.whole.pos.buffer, this.kv.whole.pos.offset, this.posWords);
          const logits = llamaForward(this.ctx, rec, weights, this.cfg, this.kv.whole, { ids, pos0: 0, lastOnly: false, batch: this.kv });
          for (let b = 0; b < B; b++) sampleToken(this.ctx, rec, this.rowLogits(rec, logits, b), this.rows[b].sampler, batch[b].params);
          logits.dispose();
          if (i === count - 1) this.copyOut(rec, B, first, count, slot);
          void rec.submit();
        }
        issued++;
      }
      const promise = this.ctx.dev.race(this.staging[slot].mapAsync(MAP_READ, 0, 4 * B * count));
      // Awaited later (or in the finally): a rejection while the caller holds a yielded step (the
      // batch disposed under it) is not an unhandled one.
      promise.catch(() => {});
      inFlight.push({ promise, slot, count });
    };
    try {
      issueBatch();
      while (inFlight.length) {
        if (issued < total && inFlight.length < 2 && !opts.signal?.aborted) issueBatch();
        const f = inFlight.shift()!;
        await f.promise;
        const words = new Uint32Array(this.staging[f.slot].getMappedRange(0, 4 * B * f.count).slice(0));
        this.staging[f.slot].unmap();
        if (opts.signal?.aborted) throw abortError(opts.signal);
        yield Array.from({ length: B }, (_, b) => Array.from(words.subarray(b * f.count, (b + 1) * f.count)));
      }
    } finally {
      for (const f of inFlight) await f.promise.then(() => this.staging[f.slot].unmap(), () => {});
      inputs.forEach((t) => t.dispose());
      this.busy = false;
    }
  }

  /** Copies steps first..first+count-1 of every row's ring into staging[slot] (row b at b * count). */
  private copyOut(rec: ReturnType<GpuContext['record']>, B: number, first: number, count: number, slot: number): void {
    const dst = this.staging[slot];
    for (let b = 0; b < B; b++) {
      const ring = this.rows[b].sampler.ids;
      const Rn = ring.size;
      const a = first % Rn;
      const n1 = Math.min(count, Rn - a);
      rec.copy(ring.buffer, ring.offset + a * 4, dst, b * count * 4, n1 * 4);
      if (n1 < count) rec.copy(ring.buffer, ring.offset, dst, (b * count + n1) * 4, (count - n1) * 4);
    }
  }

  dispose(): void {
    this.owned.forEach((t) => t.dispose());
    this.rows.forEach((r) => r.logits?.dispose());
    this.staging.forEach((s) => s.destroy());
    this.kv.dispose();
  }
}
