/**
 * BertModel.tokenClassify's GPU part and checks: one forward over the batch, the
 * *ForTokenClassification classifier on every token, one readback of the logits [B*T, labels];
 * token-groups.ts turns each text's rows into labelled tokens or entity spans.
 */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { bertForward, bertTokenHead, type BertBatch, type BertGpuWeights } from '../models/bert/bert.ts';
import type { BertConfig } from '../models/config.ts';
import { architectureFor, modelTypeEntry } from '../models/registry.ts';
import { AGGREGATIONS, type Aggregation, type EntityGroup, type TokenEntity } from './token-groups.ts';

export { groupTokens, type Aggregation, type EntityGroup, type TokenEntity } from './token-groups.ts';

export interface TokenClassifyOptions {
  /** 'none' (default): every token's label; 'simple', 'first', 'max', 'average': entity spans (token-groups.ts). */
  aggregation?: Aggregation;
  /** Results with these labels (or entity groups) are left out; default ['O']. */
  ignoreLabels?: string[];
}

/** The aggregation asked for, after checking the options and that the model has a token head. */
export function checkTokenClassify(opts: TokenClassifyOptions, cfg: BertConfig, describe: string): Aggregation {
  const how = opts.aggregation ?? 'none';
  if (!(AGGREGATIONS as readonly string[]).includes(how)) {
    throw new WebqError('BAD_OPTION', `tokenClassify(): aggregation must be one of ${AGGREGATIONS.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(how)}`);
  }
  if (opts.ignoreLabels !== undefined && !(Array.isArray(opts.ignoreLabels) && opts.ignoreLabels.every((l) => typeof l === 'string'))) {
    throw new WebqError('BAD_OPTION', 'tokenClassify(): ignoreLabels must be an array of label names');
  }
  if (cfg.head !== 'token') {
    throw new WebqError(
      'NO_CLASSIFIER',
      `${describe}: config.json architectures is ${cfg.architectures.join(', ') || 'absent'}; token classification needs a ${architectureFor(modelTypeEntry(cfg.family)!, 'token-classify')} checkpoint (a "classifier" on every token)`,
    );
  }
  return how;
}

/** Logits [B*T, labels] of an uploaded batch, read back once. */
export async function tokenLogits(ctx: GpuContext, weights: BertGpuWeights, cfg: BertConfig, b: BertBatch): Promise<Float32Array> {
  const rec = ctx.record({ label: 'bert:tokenClassify' });
  const h = bertForward(ctx, rec, weights, cfg, b); // [B*T, H]
  const logits = bertTokenHead(ctx, rec, weights, h); // [B*T, labels]
  h.dispose();
  await rec.submit();
  const flat = await ctx.readFloat(logits);
  logits.dispose();
  return flat;
}

/** Per text: TokenEntity[] for aggregation 'none', EntityGroup[] otherwise. */
export type TokenClassification = TokenEntity[] | EntityGroup[];
