/** The decoder forward under calibration (calibration.ts says what a run does). */
import type { GpuContext } from '../gpu/context.ts';
import type { TensorStore } from '../io/safetensors/reader.ts';
import type { KvCache } from '../ops/kv-cache.ts';
import { kvCacheFor } from '../generate/kv.ts';
import type { LinearDType } from '../ops/linear.ts';
import type { PrequantInfo } from '../quant/prequantized.ts';
import type { TextTokenizer } from '../text/tokenizer.ts';
import type { LlamaConfig } from '../models/llama/llama-config.ts';
import { llamaForward, uploadLlamaWeights } from '../models/llama/llama.ts';
import { resolveLlamaWeights } from '../models/llama/llama-weights.ts';
import { sampleCalibration } from './calibration-samples.ts';
import { CALIB_MAX_TOKENS, checkIds, type CalibSample, type ModelRunner } from './runner.ts';
import { llamaUnits } from './units.ts';

/** Decoders: one sample at a time from position 0, every position's logits. */
export async function openDecoderRunner(ctx: GpuContext, store: TensorStore, config: LlamaConfig, tokenizer: TextTokenizer, dtype: LinearDType, prequant: PrequantInfo | null, opts: { activations?: 'float' | 'int8' }): Promise<ModelRunner> {
  const refs = resolveLlamaWeights(store, config);
  const w = await uploadLlamaWeights(ctx, store, config, refs, dtype, { prequant, activations: opts.activations });
  const cap = Math.min(config.maxPositions, CALIB_MAX_TOKENS);
  let cache: KvCache;
  try {
    cache = kvCacheFor(ctx, config, cap, w.precision);
  } catch (e) {
    w.dispose();
    throw e;
  }
  const encode = (text: CalibSample) => (typeof text === 'string' ? tokenizer.encode(text, { maxLength: cap, truncation: true }).ids : text.slice(0, cap));
  const runner: ModelRunner = {
    kind: 'decoder', units: llamaUnits(refs, config), weights: w, vocab: config.vocabSize,
    tokens: (texts) => texts.reduce((s, t) => s + encode(t).length, 0),
    async run(texts, opts = {}) {
      const out: Float32Array[] = [];
      for (const text of texts) {
        const ids = encode(text);
        if (!ids.length) continue;
        checkIds(ids, config.vocabSize, store.name);
        cache.setPosition(ctx, 0);
        const idt = ctx.write(new Uint32Array(ids), [ids.length], 'u32');
        const rec = ctx.record({ label: 'quantize:calibrate' });
        const logits = llamaForward(ctx, rec, w, config, cache, { ids: idt, pos0: 0, lastOnly: false }, opts.tap && ((r, unit, x) => opts.tap!(r, unit, x)));
        await rec.submit();
        if (opts.outputs) out.push(await ctx.readFloat(logits));
        logits.dispose();
        idt.dispose();
      }
      return out;
    },
    sample(tok, o) {
      return sampleCalibration(ctx, runner, config, tok, o);
    },
    dispose: () => (cache.dispose(), w.dispose()),
  };
  return runner;
}
