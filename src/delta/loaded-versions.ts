/**
 * The weight versions of a loaded model: the current one, and older ones that calls started before
 * an update still run on. Versions share GPU objects (an update re-uploads only what changed), so
 * each object is counted once per live version holding it and destroyed when the last one goes:
 *
 *   v1 { a, b, c }  --applyDelta-->  v2 { a, b', c }      b is freed when v1's last call ends,
 *                                                         a and c when v2 (or a later one) goes
 */
import type { GpuObject } from '../models/upload.ts';

export interface VersionedWeights {
  /** Every GPU object the weights hold (BertGpuWeights.objects, LlamaGpuWeights.objects). */
  readonly objects: ReadonlyMap<string, GpuObject>;
}

interface Live<W> {
  weights: W;
  users: number;
  retired: boolean;
}

export class WeightVersions<W extends VersionedWeights> {
  private readonly counts = new Map<GpuObject, number>();
  private live: Live<W>;
  private disposed = false;

  constructor(weights: W) {
    this.live = this.hold(weights);
  }

  get current(): W {
    return this.live.weights;
  }

  /** The current weights, kept alive until release() (a call holds them from its start to its end). */
  use(): { weights: W; release(): void } {
    const v = this.live;
    v.users++;
    let done = false;
    return {
      weights: v.weights,
      release: () => {
        if (done) return;
        done = true;
        v.users--;
        if (v.retired && v.users === 0) this.drop(v);
      },
    };
  }

  /** Makes `weights` current; the previous version is freed (what only it holds) after its last user. */
  replace(weights: W): void {
    const old = this.live;
    this.live = this.hold(weights);
    old.retired = true;
    if (old.users === 0) this.drop(old);
  }

  /** Frees the objects of `weights` (a candidate never made current) that no live version holds. */
  discard(weights: W): void {
    for (const x of new Set(weights.objects.values())) if (!this.counts.has(x)) x.dispose();
  }

  /** Frees every version now, whoever still uses them. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const x of this.counts.keys()) x.dispose();
    this.counts.clear();
  }

  private hold(weights: W): Live<W> {
    for (const x of new Set(weights.objects.values())) this.counts.set(x, (this.counts.get(x) ?? 0) + 1);
    return { weights, users: 0, retired: false };
  }

  private drop(v: Live<W>): void {
    if (this.disposed) return;
    for (const x of new Set(v.weights.objects.values())) {
      const n = (this.counts.get(x) ?? 1) - 1;
      if (n > 0) this.counts.set(x, n);
      else {
        this.counts.delete(x);
        x.dispose();
      }
    }
  }
}
