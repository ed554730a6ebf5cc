/** The encoder forward's answers to ../arch.ts (bert.ts runs every encoder family, ModernBERT included). */
import type { ModelArch } from '../arch.ts';
import { BERT_ACTIVATIONS, BERT_TABLES, bertQuantDefaults, bertTableDefault } from './bert.ts';
import { resolveBertWeights } from './bert-weights.ts';
import type { BertConfig } from '../config.ts';
import { estimateBert } from '../memory-estimate.ts';

export const encoderArch: ModelArch<BertConfig> = {
  forward: 'encoder',
  defaultDType: 'q8',
  defaultActivations: () => BERT_ACTIVATIONS,
  tensorRoles(store, config, dtype) {
    const refs = resolveBertWeights(store, config);
    const linears = new Set<string>();
    // ModernBERT: Wqkv (one stored tensor), both Wo, Wi and the head's two Linears.
    for (const l of refs.modern?.layers ?? []) for (const lin of [l.qkv, l.attnOut, l.wi, l.mlpOut]) linears.add(lin.weight.name);
    if (refs.modern?.head) for (const lin of [refs.modern.head.dense, refs.modern.head.classifier]) linears.add(lin.weight.name);
    for (const l of refs.layers) for (const lin of [l.query, l.key, l.value, l.attnOut, l.intermediate, l.output]) linears.add(lin.weight.name);
    if (refs.pooler) linears.add(refs.pooler.weight.name);
    if (refs.classifier) linears.add(refs.classifier.weight.name);
    const d = bertQuantDefaults(dtype);
    return { all: [...refs.all], linears, tables: new Set([refs.embeddings.word.name]), tableSpecs: BERT_TABLES, tableDefault: bertTableDefault(dtype), defaultGroup: d.group, defaultSymmetric: d.symmetric };
  },
  // The q4 file dtype would make the table int4; the budget is over the Linears, and int4 rows
  // would bound the error mixed can reach. Its candidates choose their own groups, from q4's plain
  // spec (asymmetric groups of 32), not bertQuantDefaults' q4.
  mixedDefaults: { embeddings: 'int8', group: 32, symmetric: false },
  padTokenId: (config) => config.padTokenId,
  calibration: 'built-in',
  estimate: (config, o) => estimateBert(config, { dtype: o.dtype, tokens: config.maxPositions, f16: o.f16 }),
};
