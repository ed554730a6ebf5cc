import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/io/safetensors/checkpoint.ts';
import { BertWeightsError, readBertWeightsF32, resolveBertWeights } from '../../src/models/bert/bert-weights.ts';
import { ModelConfigError, parseBertConfig, parseModelConfig, type BertConfig } from '../../src/models/config.ts';
import { attend, bertClassify, bertEncode, clsPool, l2normalize, meanPool } from '../../src/reference/bert.ts';
import { gelu } from '../../src/reference/math.ts';
import { TextTokenizer } from '../../src/text/tokenizer.ts';
import { writeTinyBert, type TinyBert } from '../../fixtures/tiny-bert.ts';
import { tinyTokenizerFiles } from '../../fixtures/tiny-tokenizer.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-bert-');

function configError(input: object | string): ModelConfigError {
  try {
    parseModelConfig(input);
  } catch (e) {
    expect(e).toBeInstanceOf(ModelConfigError);
    return e as ModelConfigError;
  }
  throw new Error('expected a ModelConfigError');
}

async function tiny(name: string, opts: Parameters<typeof writeTinyBert>[1] = {}): Promise<TinyBert> {
  return writeTinyBert(join(tmp.dir, name), opts);
}

describe('config.json', () => {
  it('parses a BERT config with transformers defaults', async () => {
    const t = await tiny('cfg', { labels: ['neg', 'pos'] });
    const cfg = parseBertConfig(JSON.stringify(t.config));
    expect(cfg).toMatchObject({ modelType: 'bert', hiddenSize: 32, numLayers: 2, numHeads: 4, headDim: 8, intermediateSize: 64 });
    expect(cfg).toMatchObject({ maxPositions: 64, typeVocabSize: 2, layerNormEps: 1e-12, hiddenAct: 'gelu', padTokenId: 0, numLabels: 2 });
    expect(cfg.vocabSize).toBeGreaterThanOrEqual(t.vocab.length);
    expect(cfg.id2label).toEqual({ 0: 'neg', 1: 'pos' });
    expect(cfg.architectures).toEqual(['BertForSequenceClassification']);
    const { type_vocab_size: _a, layer_norm_eps: _b, pad_token_id: _c, hidden_act: _d, ...bare } = t.config;
    expect(parseBertConfig(bare)).toMatchObject({ typeVocabSize: 2, layerNormEps: 1e-12, padTokenId: 0, id2label: { 0: 'neg', 1: 'pos' } });
  });

  it('names an unsupported model_type and what is supported', () => {
    const e = configError({ model_type: 'gpt2', n_embd: 768 });
    expect(e.code).toBe('CONFIG_UNSUPPORTED_MODEL_TYPE');
    expect(e.message).toContain("unsupported model_type 'gpt2'");
    expect(e.message).toContain('config.json');
    expect(e.message).toContain('bert');
    expect(configError({ hidden_size: 8 }).message).toContain('"model_type" is missing');
  });

  it('names a missing or mistyped field and the expected type', async () => {
    const t = await tiny('cfg2');
    const { hidden_size: _, ...noHidden } = t.config;
    const missing = configError(noHidden);
    expect(missing.code).toBe('CONFIG_MISSING_FIELD');
    expect(missing.message).toMatch(/"hidden_size" is missing; expected an integer/);
    const typed = configError({ ...t.config, num_attention_heads: '4' });
    expect(typed.code).toBe('CONFIG_BAD_FIELD');
    expect(typed.message).toContain('"num_attention_heads" must be an integer from 1 to 1024, got string "4"');
    const heads = configError({ ...t.config, num_attention_heads: 5 });
    expect(heads.message).toContain('hidden_size 32 is not divisible by num_attention_heads 5');
    const act = configError({ ...t.config, hidden_act: 'relu' });
    expect(act.code).toBe('CONFIG_UNSUPPORTED_FEATURE');
    expect(act.message).toContain('"relu"');
    expect(configError({ ...t.config, id2label: { 0: 'a', 2: 'b' } }).message).toContain('id2label["2"]');
    expect(configError('{"model_type": "bert",').code).toBe('CONFIG_NOT_JSON');
  });
});

describe('BERT weight names', () => {
  it('resolves the bare BertModel layout', async () => {
    const t = await tiny('bare');
    const store = await openCheckpoint(t.dir);
    const w = resolveBertWeights(store, parseBertConfig(t.config));
    expect(w.prefix).toBe('');
    expect(w.layers).toHaveLength(2);
    expect(w.layers[1].intermediate.weight).toMatchObject({ name: 'encoder.layer.1.intermediate.dense.weight', shape: [64, 32], dtype: 'F32' });
    expect(w.pooler?.weight.shape).toEqual([32, 32]);
    expect(w.classifier).toBeNull();
    expect(w.all).toHaveLength(t.tensorNames.length);
    expect(await readBertWeightsF32(store, w)).toEqual(t.weights);
    await store.close();
  });

  it('resolves the "bert." prefixed layout with a classifier, BF16, sharded, old gamma/beta names', async () => {
    const t = await tiny('prefixed', { prefix: 'bert.', labels: ['a', 'b', 'c'], dtype: 'BF16', sharded: true, oldNormNames: true });
    const store = await openCheckpoint(t.dir);
    const w = resolveBertWeights(store, parseBertConfig(t.config));
    expect(w.prefix).toBe('bert.');
    expect(w.embeddings.word.name).toBe('bert.embeddings.word_embeddings.weight');
    expect(w.layers[0].attnNorm.weight).toMatchObject({ key: 'encoder.layer.0.attention.output.LayerNorm.weight', name: 'bert.encoder.layer.0.attention.output.LayerNorm.gamma' });
    expect(w.classifier?.weight).toMatchObject({ name: 'classifier.weight', shape: [3, 32], dtype: 'BF16' });
    expect(await readBertWeightsF32(store, w)).toEqual(t.weights);
    await store.close();
  });

  it('reports a wrong shape with the tensor, got and expected', async () => {
    const t = await tiny('shape');
    const store = await openCheckpoint(t.dir);
    const cfg = parseBertConfig({ ...t.config, intermediate_size: 48 });
    const e = (() => {
      try {
        return resolveBertWeights(store, cfg);
      } catch (err) {
        return err;
      }
    })() as BertWeightsError;
    expect(e).toBeInstanceOf(BertWeightsError);
    expect(e.code).toBe('WEIGHTS_SHAPE');
    expect(e.message).toContain('"encoder.layer.0.intermediate.dense.weight" has shape [64, 32], expected [48, 32]');
    expect(e.message).toContain('model.safetensors');
    expect(() => resolveBertWeights(store, parseBertConfig({ ...t.config, num_hidden_layers: 1 }))).toThrow(/encoder layer 1 .*num_hidden_layers is 1/);
    await store.close();
  });

  it('reports a missing tensor with its name and the file', async () => {
    const dropped = 'encoder.layer.1.attention.self.key.bias';
    const t = await tiny('missing', { omit: [dropped] });
    const store = await openCheckpoint(t.dir);
    const file = join(t.dir, 'model.safetensors');
    expect(() => resolveBertWeights(store, parseBertConfig(t.config))).toThrow(
      expect.objectContaining({ code: 'WEIGHTS_MISSING', message: expect.stringContaining(`${file}: missing tensor "${dropped}"`) }),
    );
    await store.close();
    const p = await tiny('missing-prefixed', { prefix: 'bert.', omit: ['embeddings.LayerNorm.weight'] });
    const store2 = await openCheckpoint(p.dir);
    expect(() => resolveBertWeights(store2, parseBertConfig(p.config))).toThrow(
      /missing tensor "bert\.embeddings\.LayerNorm\.weight" \(or "bert\.embeddings\.LayerNorm\.gamma"\)/,
    );
    await store2.close();
  });
});

/** A 4-wide config for hand-checkable cases. */
function handConfig(): BertConfig {
  return parseBertConfig({
    model_type: 'bert',
    vocab_size: 4,
    hidden_size: 4,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 4,
    max_position_embeddings: 4,
    id2label: { 0: 'x', 1: 'y' },
  });
}

/**
 * Weights chosen so the forward can be followed by hand: Q = K = 0 (all scores 0, so attention is
 * uniform over the unmasked keys), V, attention output, intermediate, output, pooler = identity,
 * LayerNorms plain, one intermediate bias of 1 so GELU sees 1, 0 and -1.
 */
function handWeights(): Record<string, Float32Array> {
  const eye = Float32Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0));
  const zeros = (n: number) => new Float32Array(n);
  const ones = new Float32Array(4).fill(1);
  const w: Record<string, Float32Array> = {
    'embeddings.word_embeddings.weight': Float32Array.from([0, 0, 0, 0, 1, -1, 1, -1, 2, 0, -2, 0, 0, 0, 0, 0]),
    'embeddings.position_embeddings.weight': zeros(16),
    'embeddings.token_type_embeddings.weight': zeros(8),
    'embeddings.LayerNorm.weight': ones,
    'embeddings.LayerNorm.bias': zeros(4),
    'pooler.dense.weight': eye,
    'pooler.dense.bias': zeros(4),
    'classifier.weight': Float32Array.from([1, 0, 0, 0, 0, 1, 0, 0]),
    'classifier.bias': Float32Array.from([0.5, -0.5]),
  };
  const L = 'encoder.layer.0';
  for (const [name, W] of [['attention.self.query', zeros(16)], ['attention.self.key', zeros(16)], ['attention.self.value', eye], ['attention.output.dense', eye], ['intermediate.dense', eye], ['output.dense', eye]] as const) {
    w[`${L}.${name}.weight`] = W;
    w[`${L}.${name}.bias`] = zeros(4);
  }
  w[`${L}.intermediate.dense.bias`] = Float32Array.from([0, 1, 0, 0]);
  for (const n of ['attention.output.LayerNorm', 'output.LayerNorm']) {
    w[`${L}.${n}.weight`] = ones;
    w[`${L}.${n}.bias`] = zeros(4);
  }
  return w;
}

/** Biased-variance LayerNorm of 4 numbers, eps 1e-12 (negligible here). */
function ln(v: number[]): number[] {
  const m = v.reduce((a, b) => a + b) / v.length;
  const s = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length + 1e-12);
  return v.map((x) => (x - m) / s);
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol = 1e-6): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) expect(Math.abs(got[i] - want[i]), `index ${i}: ${got[i]} vs ${want[i]}`).toBeLessThanOrEqual(tol);
}

describe('CPU reference BERT', () => {
  it('attention softmax matches a hand computation, masks keys, survives an all-masked row', () => {
    const q = Float64Array.from([1, 0, 0, 1]);
    const k = Float64Array.from([1, 0, 0, 1]);
    const v = Float64Array.from([1, 2, 3, 4]);
    const probs = new Float64Array(4);
    const ctx = attend(q, k, v, [1, 1], 2, 1, 2, probs);
    // Row 0: scores [1/sqrt 2, 0] -> p = [s, 1 - s] with s = sigmoid(1/sqrt 2) = 0.66976...
    const s = 1 / (1 + Math.exp(-Math.SQRT1_2));
    expectClose(probs, [s, 1 - s, 1 - s, s], 1e-15);
    expectClose(ctx, [s * 1 + (1 - s) * 3, s * 2 + (1 - s) * 4, (1 - s) * 1 + s * 3, (1 - s) * 2 + s * 4], 1e-14);
    expectClose(attend(q, k, v, [1, 0], 2, 1, 2, probs), [1, 2, 1, 2], 0);
    expectClose(probs, [1, 0, 1, 0], 0);
    expectClose(attend(q, k, v, [0, 0], 2, 1, 2, probs), [2, 3, 2, 3], 1e-12);
  });

  it('a 1-layer hidden-4 model matches the forward worked out by hand', () => {
    const cfg = handConfig();
    const w = handWeights();
    const e0 = [1, -1, 1, -1]; // LN([1, -1, 1, -1]) is itself
    const e1 = ln([2, 0, -2, 0]); // [sqrt 2, 0, -sqrt 2, 0]
    const ffn = (a: number[]) => ln(a.map((x, i) => x + gelu(x + (i === 1 ? 1 : 0))));
    // Token 1 masked: token 0 attends to itself, a0 = LN(e0 + e0) = e0; the FFN sees e0 + [0,1,0,0]
    // = [1, 0, 1, -1], GELU gives [0.8413, 0, 0.8413, -0.1587].
    const masked = bertEncode(cfg, w, { ids: [[1, 2]], attentionMask: [[1, 0]] });
    const want0 = ln([1 + 0.8413447460685429, -1 + 0, 1 + 0.8413447460685429, -1 - 0.15865525393145707]);
    expectClose(masked.subarray(0, 4), want0);
    // Both real: uniform attention, context = mean(e0, e1) for both tokens.
    const both = bertEncode(cfg, w, { ids: [[1, 2]] });
    const mean = e0.map((x, i) => (x + e1[i]) / 2);
    expectClose(both.subarray(0, 4), ffn(ln(e0.map((x, i) => x + mean[i]))));
    expectClose(both.subarray(4, 8), ffn(ln(e1.map((x, i) => x + mean[i]))));
    // Head: pooler = identity + tanh, classifier picks dims 0 and 1 and adds +-0.5.
    const logits = bertClassify(cfg, w, masked, 1, 2);
    expectClose(logits, [Math.tanh(want0[0]) + 0.5, Math.tanh(want0[1]) - 0.5]);
  });

  it('pooling and normalisation helpers', () => {
    const hidden = Float32Array.from([1, 2, 3, 4, 100, 100, 5, 6, 7, 8, 9, 10]); // [2, 3, 2]
    expectClose(meanPool(hidden, [[1, 1, 0], [1, 1, 1]]), [2, 3, 7, 8]);
    expectClose(meanPool(hidden, Int32Array.from([0, 0, 0, 1, 0, 0]), 2), [0, 0, 5, 6]);
    expectClose(clsPool(hidden, 2, 3), [1, 2, 5, 6]);
    expectClose(l2normalize(Float32Array.from([3, 4, 0, 0]), 2), [0.6, 0.8, 0, 0]);
  });

  it('padding in a batch does not change a sequence (right padding, masked keys)', async () => {
    const t = await tiny('pad', { dtype: 'F16' });
    const cfg = parseBertConfig(t.config);
    const store = await openCheckpoint(t.dir);
    const w = await readBertWeightsF32(store, resolveBertWeights(store, cfg));
    await store.close();
    const { tokenizerJson, tokenizerConfig } = tinyTokenizerFiles(cfg.maxPositions);
    const tok = TextTokenizer.fromJson(tokenizerJson, tokenizerConfig);
    const texts = ['the cat sat', 'a much longer sentence about the weather and the sea today', 'hello world'];
    const batch = tok.encodeBatch(texts);
    const all = bertEncode(cfg, w, { ids: batch.ids, attentionMask: batch.attentionMask, tokenTypeIds: batch.tokenTypeIds, batch: batch.batch });
    const pooled = meanPool(all, batch.attentionMask, batch.batch);
    const H = cfg.hiddenSize;
    for (const i of [0, 2]) {
      const one = tok.encodeBatch([texts[i]]);
      const alone = bertEncode(cfg, w, { ids: one.ids, batch: 1 });
      const n = one.seqLen;
      expect(batch.lengths[i]).toBe(n);
      expect(batch.seqLen).toBeGreaterThan(n);
      expectClose(all.subarray(i * batch.seqLen * H, (i * batch.seqLen + n) * H), alone, 1e-6);
      expectClose(pooled.subarray(i * H, (i + 1) * H), meanPool(alone, one.attentionMask, 1), 1e-6);
    }
    // Attention is not uniform at these weight scales: different tokens get different states.
    expect(Math.abs(all[0] - all[H])).toBeGreaterThan(1e-3);
    expect(all.every(Number.isFinite)).toBe(true);
    // Deterministic: the same input gives the same bits.
    const again = bertEncode(cfg, w, { ids: batch.ids, attentionMask: batch.attentionMask, tokenTypeIds: batch.tokenTypeIds, batch: batch.batch });
    expect(Buffer.from(again.buffer).equals(Buffer.from(all.buffer))).toBe(true);
    const unit = l2normalize(pooled, H);
    for (let b = 0; b < batch.batch; b++) expect(Math.hypot(...unit.subarray(b * H, (b + 1) * H))).toBeCloseTo(1, 6);
  });

  it('rejects inputs it cannot run', async () => {
    const cfg = handConfig();
    const w = handWeights();
    expect(() => bertEncode(cfg, w, { ids: [[1, 9]] })).toThrow(/ids\[0\]\[1\] = 9 is outside the vocabulary/);
    expect(() => bertEncode(cfg, w, { ids: [[1, 1, 1, 1, 1]] })).toThrow(/exceeds max_position_embeddings 4/);
    expect(() => bertEncode(cfg, w, { ids: Int32Array.from([1, 2, 3]) })).toThrow(/needs a positive integer batch/);
    expect(() => bertEncode(cfg, w, { ids: [[1, 2]], attentionMask: [[1]] })).toThrow(/differs from ids/);
    const { 'encoder.layer.0.output.dense.bias': _, ...partial } = w;
    expect(() => bertEncode(cfg, partial, { ids: [[1]] })).toThrow(/no weight "encoder.layer.0.output.dense.bias"/);
  });
});
