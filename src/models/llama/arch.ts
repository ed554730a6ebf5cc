/** The decoder forward's answers to ../arch.ts (llama.ts runs every decoder family, Gemma included). */
import { WebqError } from '../../errors.ts';
import type { ModelArch } from '../arch.ts';
import type { WeightRef } from '../weight-ref.ts';
import type { LlamaConfig } from './llama-config.ts';
import { LLAMA_TABLES, llamaQuantDefaults, llamaTableDefault } from './llama.ts';
import { resolveLlamaWeights } from './llama-weights.ts';
import { estimateLlm } from '../memory-estimate.ts';
import type { LinearPart } from '../upload.ts';

export const decoderArch: ModelArch<LlamaConfig> = {
  forward: 'decoder',
  defaultDType: 'q4',
  defaultActivations: (dtype) => llamaQuantDefaults(dtype).activations,
  tensorRoles(store, config, dtype) {
    if (config.fusedProjections) {
      throw new WebqError('UNSUPPORTED_MODEL', `${store.name}: webq quantize does not yet write ${config.modelType}'s fused qkv_proj / gate_up_proj; load the float checkpoint with dtype q8 or q4 instead`);
    }
    const refs = resolveLlamaWeights(store, config);
    const all: WeightRef[] = [refs.embed];
    const linears = new Set<string>();
    const linear = (p: LinearPart) => {
      all.push(p.weight);
      if (p.bias) all.push(p.bias);
      linears.add(p.weight.name);
    };
    for (const l of refs.layers) {
      for (const n of [l.inputNorm, l.postNorm, l.qNorm, l.kNorm, l.attnOutNorm, l.mlpOutNorm]) if (n) all.push(n);
      [l.q, l.k, l.v, l.o, l.gate, l.up, l.down].forEach(linear);
    }
    all.push(refs.norm);
    if (refs.lmHead) linear({ weight: refs.lmHead });
    const d = llamaQuantDefaults(dtype);
    return { all, linears, tables: new Set([refs.embed.name]), tableSpecs: LLAMA_TABLES, tableDefault: llamaTableDefault(!refs.lmHead), defaultGroup: d.group, defaultClipSearch: d.clipSearch };
  },
  mixedDefaults: {},
  padTokenId: () => undefined,
  calibration: 'sampled',
  estimate: (config, o) => estimateLlm(config, { dtype: o.dtype, context: o.context, kv: o.f16 ? 'f16' : 'f32', f16: o.f16 }),
};
