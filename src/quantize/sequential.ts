/**
 * Sequential calibration, as the GPTQ reference quantizes a model: units in the model's order,
 * each one's input statistics collected with every earlier unit already quantized, so a later
 * layer compensates the error its inputs really carry (the float model's activations are not what
 * the quantized model will feed it). Each unit's Hessian X^T X then costs one forward of the
 * calibration text; the quantized units run weight-only in f32 on the GPU meanwhile, and the
 * float weights are put back at the end.
 */
import type { GpuContext } from '../gpu/context.ts';
import type { InputStats } from '../ops/calib-stats.ts';
import type { LinearWeight } from '../ops/linear.ts';
import { prepareQuantizedLinear } from '../models/prepare-linear.ts';
import type { QuantizedWeight } from '../quant/layout.ts';
import { collectStats, type CalibSample, type ModelRunner } from './calibration.ts';
import { swapUnitWeight, type LinearUnit } from './units.ts';

/**
 * Runs `quantize` on every unit in order with its statistics from `runner` (the float model, with
 * any per-channel scales folded in) after the units before it were replaced by their quantized
 * weights. `quantize` returns the unit's quantized weight, or null when it stays float.
 */
export async function quantizeSequentially(
  ctx: GpuContext,
  runner: ModelRunner,
  calib: readonly CalibSample[],
  quantize: (u: LinearUnit, stats: InputStats | undefined) => Promise<QuantizedWeight | null>,
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const swapped: { id: string; old: LinearWeight }[] = [];
  try {
    for (const [i, u] of runner.units.entries()) {
      onProgress?.(i, runner.units.length);
      const stats = (await collectStats(ctx, runner, calib, { gram: true, units: new Set([u.id]) })).get(u.id);
      const q = await quantize(u, stats);
      if (!q) continue;
      const lin = prepareQuantizedLinear(ctx, q, q.bits === 4 ? 'q4' : 'q8', { precision: 'f32', activations: 'float', label: `sequential:${u.id}` });
      swapped.push({ id: u.id, old: swapUnitWeight(runner.weights, u.id, lin) });
    }
    onProgress?.(runner.units.length, runner.units.length);
  } finally {
    for (const { id, old } of swapped.reverse()) swapUnitWeight(runner.weights, id, old).dispose();
  }
}
