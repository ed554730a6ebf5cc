/** The texts argument of BertModel.embed / classify, checked with messages that say what came instead. */
import { WebqError } from '../errors.ts';
import type { BertConfig } from '../models/config.ts';

/** A value in a message: strings quoted and cut short, anything else by its kind. */
function shown(v: unknown): string {
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)})`;
  if (v === null || v === undefined) return String(v);
  return Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** The texts argument of embed / classify: a non-empty array of strings, or a WebqError saying what came instead. */
export function checkTexts(texts: unknown, method: string): asserts texts is string[] {
  if (!Array.isArray(texts)) {
    const one = typeof texts === 'string' ? `; for one text pass [text]` : '';
    throw new WebqError('BAD_TEXTS', `${method}() takes an array of strings, got ${shown(texts)}${one}`);
  }
  if (texts.length === 0) throw new WebqError('EMPTY_BATCH', `${method}(): no texts to encode: pass at least one string`);
  const bad = texts.findIndex((t) => typeof t !== 'string');
  if (bad >= 0) throw new WebqError('BAD_TEXTS', `${method}(): text ${bad + 1} of ${texts.length} is ${shown(texts[bad])}; every text must be a string`);
}

/** One document's cross-encoder score (BertModel.rerank): sigmoid of its logit; `index` is its place in docs. */
export interface Reranked {
  index: number;
  score: number;
}

/** rerank()'s arguments: a non-empty query, non-empty documents, a one-label head. */
export function checkRerank(query: unknown, docs: unknown, numLabels: number, model: string): asserts docs is string[] {
  if (typeof query !== 'string') throw new WebqError('BAD_TEXTS', `rerank() takes the query as a string, got ${shown(query)}`);
  if (query.trim() === '') throw new WebqError('EMPTY_TEXT', 'rerank(): the query is empty or only whitespace; there is nothing to rank against');
  checkTexts(docs, 'rerank');
  const empty = docs.findIndex((d) => d.trim() === '');
  if (empty >= 0) throw new WebqError('EMPTY_TEXT', `rerank(): document ${empty + 1} of ${docs.length} is empty or only whitespace; leave it out`);
  if (numLabels !== 1) {
    throw new WebqError('NOT_A_RERANKER', `${model}: its classification head has ${numLabels} labels (config.json num_labels / id2label); a cross-encoder reranker has one (a relevance logit)`);
  }
}

/** Each family's sequence-classification head tensors and task class, for NO_CLASSIFIER messages. */
const HEAD_NAMES: Readonly<Record<BertConfig['family'], { heads: string; arch: string }>> = {
  bert: { heads: 'pooler/classifier', arch: 'Bert' },
  roberta: { heads: 'classifier.dense/classifier.out_proj', arch: 'Roberta' },
  'xlm-roberta': { heads: 'classifier.dense/classifier.out_proj', arch: 'XLMRoberta' },
  distilbert: { heads: 'pre_classifier/classifier', arch: 'DistilBert' },
  mpnet: { heads: 'classifier.dense/classifier.out_proj', arch: 'MPNet' },
  modernbert: { heads: 'head.dense/head.norm/classifier', arch: 'ModernBert' },
};

/** classify() / rerank() on a model without a sequence-classification head. */
export function noClassifier(cfg: BertConfig, model: string): WebqError {
  const { heads, arch } = HEAD_NAMES[cfg.family];
  return new WebqError('NO_CLASSIFIER', `${model}: has no ${heads} weights (architectures: ${cfg.architectures.join(', ') || 'none'}); use a ${arch}ForSequenceClassification checkpoint`);
}
