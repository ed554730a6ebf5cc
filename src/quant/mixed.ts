/**
 * Mixed precision by sensitivity: each Linear unit has a few candidate layouts (4 bits at some
 * group sizes, 8 bits, or 16-bit floats), each with its size in bytes and the model's output error
 * measured with that unit alone quantized that way. Choose one per unit to minimise the summed
 * error within a budget of average bits per weight (codes, scales and zero points as stored).
 *
 * A multiple-choice knapsack, solved by dynamic programming over the budget cut into `resolution`
 * steps (costs rounded up, so the choice never exceeds the budget). Summing single-unit errors
 * assumes they add up, which holds while each is small.
 */
import { WebqError } from '../errors.ts';

export interface MixedCandidate {
  /** 4, 8 or 16 (float). */
  bits: 4 | 8 | 16;
  group?: number | 'channel';
  /** Stored bytes of the unit's weights in this layout. */
  bytes: number;
  /** Measured output error with only this unit quantized this way. */
  error: number;
}

export interface MixedUnit {
  id: string;
  /** Weights in the unit (N x K summed over its parts). */
  params: number;
  candidates: MixedCandidate[];
}

export interface MixedChoice {
  /** Index into each unit's candidates. */
  choice: number[];
  bytes: number;
  bitsPerWeight: number;
  /** Sum of the chosen candidates' errors. */
  error: number;
}

export class BudgetError extends WebqError {
  constructor(message: string) {
    super('BUDGET', message);
  }
}

/** The cheapest choice for every unit: the smallest budget that can be met. */
export function minimumBits(units: readonly MixedUnit[]): number {
  const params = units.reduce((s, u) => s + u.params, 0);
  const bytes = units.reduce((s, u) => s + Math.min(...u.candidates.map((c) => c.bytes)), 0);
  return (8 * bytes) / params;
}

export function chooseBits(units: readonly MixedUnit[], budgetBits: number, resolution = 4096): MixedChoice {
  const params = units.reduce((s, u) => s + u.params, 0);
  const budget = (budgetBits * params) / 8;
  const min = minimumBits(units);
  if (min > budgetBits + 1e-9) throw new BudgetError(`--budget ${budgetBits} is below the smallest this model's Linears can be stored in (${min.toFixed(3)} bits per weight, scales included)`);
  const step = budget / resolution;
  const R = resolution;
  // best[r]: least error with cost r steps after the units so far; pick[u][r]: the candidate used.
  let best = new Float64Array(R + 1).fill(Infinity);
  best[0] = 0;
  const pick: Int16Array[] = [];
  const from: Int32Array[] = [];
  for (const u of units) {
    const next = new Float64Array(R + 1).fill(Infinity);
    const p = new Int16Array(R + 1).fill(-1);
    const f = new Int32Array(R + 1).fill(-1);
    u.candidates.forEach((c, ci) => {
      const cost = Math.ceil(c.bytes / step - 1e-9);
      for (let r = 0; r + cost <= R; r++) {
        if (best[r] === Infinity) continue;
        const e = best[r] + c.error;
        if (e < next[r + cost]) [next[r + cost], p[r + cost], f[r + cost]] = [e, ci, r];
      }
    });
    best = next;
    pick.push(p);
    from.push(f);
  }
  let end = -1;
  for (let r = 0; r <= R; r++) if (best[r] < Infinity && (end < 0 || best[r] < best[end])) end = r;
  if (end < 0) {
    // Rounding costs up can lose a choice that fits exactly: take the cheapest one.
    const choice = units.map((u) => u.candidates.reduce((bi, c, i, a) => (c.bytes < a[bi].bytes ? i : bi), 0));
    return summarize(units, choice, params);
  }
  const choice = new Array<number>(units.length);
  for (let u = units.length - 1, r = end; u >= 0; u--) {
    choice[u] = pick[u][r];
    r = from[u][r];
  }
  return summarize(units, choice, params);
}

function summarize(units: readonly MixedUnit[], choice: number[], params: number): MixedChoice {
  const bytes = units.reduce((s, u, i) => s + u.candidates[choice[i]].bytes, 0);
  const error = units.reduce((s, u, i) => s + u.candidates[choice[i]].error, 0);
  return { choice, bytes, bitsPerWeight: (8 * bytes) / params, error };
}
