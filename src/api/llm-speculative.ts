/**
 * The drafter of an LlmModel's speculative call (src/generate/drafters.ts), resolved before
 * generation starts: 'lookup' needs nothing; 'draft' drafts with a second LlmModel on the same GPU
 * context whose vocabulary is the target's (checked, naming both); 'self' drafts with the same
 * checkpoint at a cheaper setting:
 * - by default, its q4 weights when the model runs at another dtype (loaded from the same files
 *   on the first 'self' call and kept: the weights cost a q4 copy on the GPU), else (a q4 model, a
 *   model not loaded from files, or files that do not load at q4)
 * - its own first `layers` layers, final norm and LM head (a Decoder over the same GPU buffers,
 *   made once and kept until the weights change).
 * On the trained fixture (bench speculative, README) the q4 copy of an f32 model accepted 49 of 53
 * drafts at k = 4 (4.27 tokens per target forward), its first 3 of 4 layers 35 of 53 (2.21 at
 * k = 2) and its first 2 of 4 layers 24 of 150 (1.60): the q4 copy pays most, and per drafted
 * token it reads about a quarter of an f32 forward's bytes where early exit reads layers / N.
 * A draft given as a path is loaded once and kept, freed with the target.
 */
import { WebqError } from '../errors.ts';
import type { Decoder } from '../generate/decoder.ts';
import { DecoderDrafter, lookupDrafter, selfDecoder, type Drafter } from '../generate/drafters.ts';
import type { SpeculativeOptions } from '../generate/speculative.ts';
import { LlmModel, type LlmLoadOptions } from './llm.ts';

/** A resolved drafter, and what to give back when the call ends (a lent draft model's queue). */
export interface HeldDrafter {
  drafter: Drafter;
  release(): void;
}

/** 'self' by layers without `layers` given (a q4 model, or `layers` asked for): half, rounded down, at least one. */
export function defaultSelfLayers(numLayers: number): number {
  return Math.max(1, Math.floor(numLayers / 2));
}

/** Dtypes 'self' drafts for by layers: a q4 copy would be no cheaper. */
const Q4_LIKE: readonly string[] = ['q4', 'w4a8'];

export class SpeculativeDrafters {
  /** Where the target was loaded from (set by LlmModel.load): 'self' loads its q4 weights from there. */
  source: { location: string; opts: LlmLoadOptions } | null = null;
  private self: { decoder: Decoder; layers: number; weights: object } | null = null;
  private selfQ4: Promise<LlmModel> | null = null;
  private readonly owned = new Set<LlmModel>();
  private disposed = false;
  private noQ4 = false;
  private readonly loaded = new Map<string, Promise<LlmModel>>();
  private readonly fits = new WeakSet<LlmModel>();

  constructor(private readonly target: LlmModel) {}

  /** The drafter for `s` (checked by checkSpeculative), holding a draft model's queue until release(). */
  async resolve(s: SpeculativeOptions, lend: () => { decoder: Decoder; weights: object }, signal?: AbortSignal): Promise<HeldDrafter> {
    if (s.method === 'lookup') return { drafter: lookupDrafter, release: () => {} };
    const byLayers = () => ({ drafter: new DecoderDrafter(this.selfDecoder(s.layers, lend())), release: () => {} });
    if (s.method === 'self' && (s.layers !== undefined || !this.source || this.noQ4 || Q4_LIKE.includes(this.target.dtype))) return byLayers();
    let draft: unknown;
    if (s.method === 'self') {
      // A checkpoint that will not load at q4 (stored at another quantization, say) drafts by layers from now on.
      draft = await this.q4().catch(() => null);
      if (!draft) {
        this.noQ4 = true;
        return byLayers();
      }
    } else draft = typeof s.model === 'string' ? await this.load(s.model) : s.model;
    if (!(draft instanceof LlmModel)) throw new WebqError('BAD_OPTION', `speculative.model must be an LlmModel or a path / hub id, got ${Object.prototype.toString.call(draft)}`);
    if (draft === this.target) throw new WebqError('BAD_OPTION', `speculative.model is ${this.target.describe} itself; use method 'self' to draft with the model's own layers`);
    if (!this.fits.has(draft)) checkDraftFits(this.target, draft);
    this.fits.add(draft);
    const held = await draft.lendDecoder(signal);
    return { drafter: new DecoderDrafter(held.decoder), release: held.release };
  }

  private selfDecoder(layers: number | undefined, t: { decoder: Decoder; weights: object }): Decoder {
    const cfg = this.target.config;
    const n = layers ?? defaultSelfLayers(cfg.numLayers);
    if (n >= cfg.numLayers) throw new WebqError('BAD_OPTION', `speculative.layers must be less than ${this.target.describe}'s ${cfg.numLayers} layers (the draft runs a prefix of them), got ${n}`);
    if (cfg.numLayers < 2) throw new WebqError('BAD_OPTION', `speculative method 'self' needs a model of two or more layers; ${this.target.describe} has ${cfg.numLayers}`);
    if (!this.self || this.self.layers !== n || this.self.weights !== t.weights) {
      this.self?.decoder.dispose();
      this.self = null;
      const c = t.decoder.cache.shape;
      this.self = { decoder: selfDecoder(this.target.ctx, cfg, t.decoder.weights, n, c.cap, c.dtype), layers: n, weights: t.weights };
    }
    return this.self.decoder;
  }

  /** The target's checkpoint at q4 on the same context, loaded once (a failed load is tried again next call). */
  private q4(): Promise<LlmModel> {
    const { location, opts } = this.source!;
    this.selfQ4 ??= this.own(LlmModel.load(location, { ...opts, dtype: 'q4', context: this.target.ctx, contextLength: this.target.contextLength, kv: this.target.kv }));
    this.selfQ4.catch(() => (this.selfQ4 = null));
    return this.selfQ4;
  }

  /** Keeps a model this object loaded, to free it with the target (at once: the target may free the device next). */
  private own(p: Promise<LlmModel>): Promise<LlmModel> {
    void p.then((m) => (this.disposed ? m.dispose() : this.owned.add(m)), () => {});
    return p;
  }

  private load(location: string): Promise<LlmModel> {
    let m = this.loaded.get(location);
    if (!m) {
      m = this.own(LlmModel.load(location, { context: this.target.ctx, contextLength: this.target.contextLength, kv: this.target.kv }));
      this.loaded.set(location, m);
      m.catch(() => this.loaded.delete(location));
    }
    return m;
  }

  dispose(): void {
    this.self?.decoder.dispose();
    this.self = null;
    this.disposed = true;
    for (const m of this.owned) m.dispose();
    this.owned.clear();
    this.selfQ4 = null;
    this.loaded.clear();
  }
}

/** A draft model must run on the target's GPU context and share its vocabulary, token for token. */
export function checkDraftFits(target: LlmModel, draft: LlmModel): void {
  const names = `target ${target.describe}, draft ${draft.describe}`;
  if (draft.ctx !== target.ctx) throw new WebqError('BAD_OPTION', `speculative.model must be loaded on the target's GPU context (LlmModel.load(..., { context: target.ctx })) (${names})`);
  const tv = target.config.vocabSize, dv = draft.config.vocabSize;
  if (tv !== dv) throw new WebqError('DRAFT_VOCABULARY', `speculative: the draft model's vocabulary differs from the target's: vocab_size ${dv} vs ${tv} (${names})`);
  const a = target.tokenizer.tokensById(), b = draft.tokenizer.tokensById();
  const i = a.findIndex((t, j) => t !== b[j]);
  if (a.length !== b.length || i >= 0) {
    throw new WebqError('DRAFT_VOCABULARY', `speculative: the draft model's tokenizer differs from the target's: ${i >= 0 ? `token ${i} is ${JSON.stringify(b[i])} vs ${JSON.stringify(a[i])}` : `${b.length} vs ${a.length} tokens`} (${names})`);
  }
}
