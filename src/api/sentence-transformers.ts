/** What a sentence-transformers export says beside config.json (pooling, max_seq_length, lowercasing). */
import { WebqError } from '../errors.ts';
import type { ModelFiles } from '../io/hub/model-files.ts';
import { CONFIG_BOUNDS, fields, isObject, toJson } from '../models/config-json.ts';
import type { EmbedOptions } from './bert.ts';

/** What a sentence-transformers export says beside config.json; a plain checkpoint gets the defaults. */
export interface SentenceTransformersConfig {
  /** 1_Pooling/config.json and a Normalize module in modules.json; else mean, unnormalized. */
  pooling: Required<Pick<EmbedOptions, 'pooling' | 'normalize'>>;
  /** sentence_bert_config.json max_seq_length. */
  maxSeqLength: number | undefined;
  /** sentence_bert_config.json do_lower_case: lowercase texts before tokenizing. */
  lowerCase: boolean;
}

/**
 * Reads a sentence-transformers export as that library does: 1_Pooling/config.json
 * (pooling_mode_cls_token, pooling_mode_mean_tokens), sentence_bert_config.json (max_seq_length,
 * do_lower_case) and a Normalize module in modules.json. An export is known by its 1_Pooling
 * folder, so a plain checkpoint costs one optional-file request. Other pooling modes (max, weighted
 * mean) are not implemented: such a model gets a clear error rather than wrong vectors.
 */
export async function sentenceTransformersConfig(files: ModelFiles): Promise<SentenceTransformersConfig> {
  const out: SentenceTransformersConfig = { pooling: { pooling: 'mean', normalize: false }, maxSeqLength: undefined, lowerCase: false };
  if (!(await files.exists('1_Pooling/config.json'))) return out;
  const cfg = toJson(await files.readJson('1_Pooling/config.json'), `${files.describe}/1_Pooling/config.json`);
  const modes = Object.keys(cfg).filter((k) => k.startsWith('pooling_mode_') && cfg[k] === true);
  if (modes.length !== 1 || !['pooling_mode_cls_token', 'pooling_mode_mean_tokens'].includes(modes[0])) {
    throw new WebqError('UNSUPPORTED_POOLING', `${files.describe}/1_Pooling/config.json enables ${modes.slice(0, 4).map((m) => m.slice(0, 60)).join(' + ') || 'no pooling mode'}${modes.length > 4 ? ` and ${modes.length - 4} more` : ''}; webq implements exactly one of pooling_mode_mean_tokens or pooling_mode_cls_token`);
  }
  const sbert = 'sentence_bert_config.json';
  if (await files.exists(sbert)) {
    const where = `${files.describe}/${sbert}`;
    const f = fields(toJson(await files.readJson(sbert), where), where);
    out.maxSeqLength = f.has('max_seq_length') ? f.int('max_seq_length', 1, CONFIG_BOUNDS.positions) : undefined;
    out.lowerCase = f.bool('do_lower_case', false);
  }
  let normalize = false;
  if (await files.exists('modules.json')) {
    const mods = await files.readJson('modules.json');
    normalize = Array.isArray(mods) && mods.some((m) => isObject(m) && typeof m.type === 'string' && m.type.endsWith('.Normalize'));
  }
  out.pooling = { pooling: modes[0] === 'pooling_mode_cls_token' ? 'cls' : 'mean', normalize };
  return out;
}
