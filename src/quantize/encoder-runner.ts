/** The encoder forward under calibration (calibration.ts says what a run does). */
import { WebqError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Recorder } from '../gpu/recorder.ts';
import type { Tensor } from '../gpu/tensor.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import { pool } from '../ops/encoder-io.ts';
import type { LinearDType } from '../ops/linear.ts';
import type { PrequantInfo } from '../quant/prequantized.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';
import { bertClassifierHead, bertForward, bertTokenHead, freeBertBatch, uploadBertBatch, uploadBertWeights } from '../models/bert/bert.ts';
import { resolveBertWeights } from '../models/bert/bert-weights.ts';
import type { BertConfig } from '../models/config.ts';
import { CALIB_MAX_TOKENS, checkIds, type CalibSample, type ModelRunner } from './runner.ts';
import { bertUnits } from './units.ts';

const BERT_BATCH = 8;

/** Encoders: batches of texts, mean-pooled outputs; the head runs too, so its Linears are tapped. */
export async function openEncoderRunner(ctx: GpuContext, store: TensorStore, config: BertConfig, tokenizer: TextTokenizer, dtype: LinearDType, prequant: PrequantInfo | null, opts: { activations?: 'float' | 'int8' }): Promise<ModelRunner> {
  const refs = resolveBertWeights(store, config);
  const w = await uploadBertWeights(ctx, store, config, refs, dtype, { prequant, activations: opts.activations });
  const maxLength = Math.min(config.maxTokens, CALIB_MAX_TOKENS);
  const encode = (texts: readonly CalibSample[]) => {
    if (texts.some((t) => typeof t !== 'string')) throw new WebqError('CALIBRATION', `${store.name}: an encoder calibrates on texts, not token ids`);
    return tokenizer.encodeBatch(texts as string[], { maxLength, truncation: true });
  };
  return {
    kind: 'encoder', units: bertUnits(refs), weights: w, vocab: config.vocabSize,
    tokens: (texts) => Array.from(encode(texts).lengths).reduce((s, n) => s + n, 0),
    async run(texts, opts = {}) {
      const out: Float32Array[] = [];
      for (let i = 0; i < texts.length; i += BERT_BATCH) {
        const enc = encode(texts.slice(i, i + BERT_BATCH));
        checkIds(enc.ids, config.vocabSize, store.name);
        const n = enc.batch * enc.seqLen;
        const b = uploadBertBatch(ctx, config, enc);
        const rows = Array.from(enc.lengths).reduce((s, v) => s + v, 0);
        const tap = opts.tap && ((rec: Recorder, unit: string, x: Tensor) => opts.tap!(rec, unit, x, x.size / x.shape[x.shape.length - 1] === n ? { mask: b.mask, rows } : undefined));
        const rec = ctx.record({ label: 'quantize:calibrate' });
        const h = bertForward(ctx, rec, w, config, b, tap);
        const pooled = pool(ctx, rec, h, b.mask, b.B, { mode: 'mean', normalize: false });
        if ((w.pooler && w.classifier) || w.modern?.head) {
          // ModernBERT's head may read the mean over real tokens (classifier_pooling); the others' read [CLS].
          const cls = pool(ctx, rec, h, b.mask, b.B, { mode: config.modern?.classifierPooling ?? 'cls', normalize: false });
          bertClassifierHead(ctx, rec, w, config, cls, tap).dispose();
          cls.dispose();
        } else if (w.classifier) bertTokenHead(ctx, rec, w, h, tap).dispose(); // a token classifier sees every token
        h.dispose();
        await rec.submit();
        if (opts.outputs) {
          const flat = await ctx.readFloat(pooled);
          const H = config.hiddenSize;
          for (let r = 0; r < b.B; r++) out.push(flat.slice(r * H, (r + 1) * H));
        }
        pooled.dispose();
        freeBertBatch(b);
      }
      return out;
    },
    dispose: () => w.dispose(),
  };
}

