/** The decoder forward's answers to ../arch.ts (llama.ts runs every decoder family, Gemma included). */
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
    const refs = resolveLlamaWeights(store, config);
    const all: WeightRef[] = [refs.embed];
    const linears = new Set<string>();
    // Phi-3's fused Linears (row ranges of one tensor: WeightRef.rows) are quantized and written
    // whole under their own name: rows are packed independently, so the loader slices the parts.
    const linear = (p: LinearPart) => {
      if (p.weight.rows) {
        const { rows: _, ...whole } = p.weight;
        if (!linears.has(whole.name)) all.push({ ...whole, shape: store.get(whole.name)!.shape });
      } else all.push(p.weight);
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
