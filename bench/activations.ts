/**
 * `npm run bench -- activations`: what q8/q4 Linears' activations ('float': weight-only kernels;
 * 'int8': per-block int8 codes and dot4I8Packed) cost in accuracy, against the fp32 CPU forward
 * (src/reference/), per model family:
 *   llama  mean KL(p_fp32 || p_webq) per token and top-1 agreement over every position of a few
 *          prompts (run by prefill, all positions' logits), the cosine of the last position's
 *          logits, and how far the last position computed by one prefill is from the same
 *          position reached token by token through decode (max |d logit|);
 *   bert   cosine of mean-pooled embeddings against fp32 (mean and minimum over the texts).
 * Models: tiny synthetic ones with massive channels (`--outliers`, the factor on a few channels:
 * fixtures/tiny-llama.ts, tiny-bert.ts), or a Hugging Face folder (`--llama DIR`, `--bert
 * DIR`; read with its tokenizer). Speed is the llm and bert suites' job (`q4:int8` rows there).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BertModel } from '../src/api/bert.ts';
import { Decoder } from '../src/generate/decoder.ts';
import { kvCacheFor } from '../src/generate/kv.ts';
import { openModelFiles } from '../src/io/hub/hub.ts';
import { parseBertConfig } from '../src/models/config.ts';
import { uploadLlamaWeights } from '../src/models/llama/llama.ts';
import { parseLlamaConfig } from '../src/models/llama/llama-config.ts';
import { resolveLlamaWeights } from '../src/models/llama/llama-weights.ts';
import type { KvDType } from '../src/ops/kv-cache.ts';
import type { Activations, LinearDType } from '../src/ops/linear.ts';
import { cosine, decoderError } from '../src/quant/guard.ts';
import { bertEncode, meanPool } from '../src/reference/bert.ts';
import { llamaReferenceForward } from '../src/reference/llama.ts';
import { loadTokenizer } from '../src/text/tokenizer.ts';
import { writeTinyBert, writeTinyLlama } from '../fixtures/index.ts';
import { createBenchContext, parseKernels } from './lib/device.ts';
import { fmt, table, type BenchIO } from './lib/measure.ts';

const USAGE = `usage: npm run bench -- activations [--json] [--family llama,bert] [--outliers 20,50] [--llama DIR] [--bert DIR]
    [--dtypes q8,q4] [--kv f32] [--kernels gpu|cpu]
  --outliers  synthetic models, one per factor on their massive channels (0: none)
  --llama, --bert  a Hugging Face folder instead of the synthetic models of that family
  --kv        the decoders' KV cache (f32 isolates the Linears)
`;

const STORIES = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.',
  'One day, a big dog came to the house. The dog was very friendly and wanted to play.',
  'Tom had a red ball. He liked to throw it high in the sky and catch it with his hands.',
  'The sun was shining and the birds were singing. Mom said, "Let\'s go to the beach today!"',
];
const TEXTS = ['the cat sat on the mat', 'hello world', 'a quick brown fox jumps over the lazy dog', 'webq runs models on the gpu'];

interface Row {
  family: 'llama' | 'bert';
  model: string;
  dtype: LinearDType;
  activations: Activations;
  kernels: string;
  /** llama: mean KL per token and top-1 over every prompt position (prefill); cosine of the last logits (min over prompts). */
  kl?: number;
  top1?: number;
  cosine_last?: number;
  /** llama: max |d logit| between the last position by prefill and by token-by-token decode, and that over max |logit|. */
  prefill_vs_decode?: number;
  prefill_vs_decode_rel?: number;
  /** bert: cosine of mean-pooled embeddings against fp32. */
  cosine_mean?: number;
  cosine_min?: number;
}

export async function run(args: string[], io: BenchIO): Promise<number> {
  const options = Object.fromEntries([...['family', 'outliers', 'llama', 'bert', 'dtypes', 'kv', 'kernels'].map((k) => [k, { type: 'string' }]), ['json', { type: 'boolean' }], ['help', { type: 'boolean' }]]);
  const v = parseArgs({ args, options }).values as Record<string, string | boolean | undefined>;
  if (v.help) return io.stdout(USAGE), 0;
  const families = String(v.family ?? 'llama,bert').split(',');
  const scales = String(v.outliers ?? '20,50').split(',').map(Number);
  const dtypes = String(v.dtypes ?? 'q8,q4').split(',') as LinearDType[];
  const kv = (v.kv ?? 'f32') as KvDType;
  if (families.some((f) => f !== 'llama' && f !== 'bert') || scales.some((s) => !(s >= 0)) || dtypes.some((d) => d !== 'q8' && d !== 'q4')) {
    io.stderr(`bench activations: bad --family, --outliers or --dtypes\n${USAGE}`);
    return 2;
  }
  const { ctx } = await createBenchContext({ kernels: parseKernels(v.kernels) });
  const dir = await mkdtemp(join(tmpdir(), 'webq-bench-acts-'));
  const rows: Row[] = [];
  const base = { kernels: ctx.caps.kernels };
  try {
    io.stderr(`adapter: ${ctx.caps.adapter} (${ctx.caps.kernels} kernels)\n`);
    if (families.includes('llama')) {
      const models = v.llama ? [{ name: String(v.llama), dir: String(v.llama) }] : await Promise.all(scales.map(async (s) => ({ name: `tiny llama, ${s}x channels`, dir: (await writeTinyLlama(join(dir, `llama-${s}`), { hidden: 128, heads: 4, kvHeads: 2, intermediate: 256, seed: 21, outliers: s > 0, outlierScale: s || undefined })).dir })));
      for (const m of models) {
        const files = await openModelFiles(m.dir);
        const cfg = parseLlamaConfig(await files.readJson('config.json'));
        const store = await files.checkpoint();
        const weights = Object.fromEntries(await Promise.all(store.tensors.map(async (t) => [t.name, (await store.readAs(t.name, 'f32')) as Float32Array] as const)));
        const tok = v.llama ? await loadTokenizer(files, { name: m.name }) : null;
        const prompts = tok ? STORIES.map((s) => tok.encode(s, { addSpecialTokens: true, truncation: false, maxLength: 1 << 20 }).ids) : [0, 1, 2, 3].map((p) => Array.from({ length: 24 }, (_, i) => (i * 37 + p * 101 + 11) % cfg.vocabSize));
        const refs = prompts.map((p) => llamaReferenceForward(cfg, weights, p));
        for (const dtype of dtypes) {
          for (const activations of ['float', 'int8'] as const) {
            const w = await uploadLlamaWeights(ctx, store, cfg, resolveLlamaWeights(store, cfg), dtype, { activations });
            const cache = kvCacheFor(ctx, cfg, Math.max(...prompts.map((p) => p.length)), kv);
            const dec = new Decoder(ctx, cfg, w, cache);
            try {
              const all: Float32Array[] = [];
              let cosLast = 1;
              let gap = 0;
              let rel = 0;
              for (let i = 0; i < prompts.length; i++) {
                const p = prompts[i];
                const got = await dec.logitsAt(p);
                all.push(got);
                const V = cfg.vocabSize;
                cosLast = Math.min(cosLast, cosine(got.subarray((p.length - 1) * V), refs[i].subarray((p.length - 1) * V)));
                cache.truncate(0);
                const byPrefill = await dec.logits(p);
                cache.truncate(0);
                let byDecode = byPrefill;
                for (let t = 1; t <= p.length; t++) byDecode = await dec.logits(p.slice(0, t));
                let d = 0;
                let top = 0;
                for (let j = 0; j < V; j++) [d, top] = [Math.max(d, Math.abs(byPrefill[j] - byDecode[j])), Math.max(top, Math.abs(byPrefill[j]))];
                [gap, rel] = [Math.max(gap, d), Math.max(rel, d / top)];
                cache.truncate(0);
              }
              const e = decoderError(refs, all, cfg.vocabSize);
              rows.push({ family: 'llama', model: m.name, dtype, activations, ...base, kl: e.kl, top1: e.top1, cosine_last: cosLast, prefill_vs_decode: gap, prefill_vs_decode_rel: rel });
              io.stderr(`  ${m.name} ${dtype} ${activations}: KL ${e.kl!.toExponential(2)}, last-position cosine ${cosLast.toFixed(6)}, prefill vs decode ${gap.toExponential(2)} (${rel.toExponential(2)} of max |logit|)\n`);
            } finally {
              dec.dispose();
              w.dispose();
            }
          }
        }
        await store.close?.();
      }
    }
    if (families.includes('bert')) {
      const base0 = { hidden: 128, heads: 4, intermediate: 512, layers: 2, maxPositions: 64, linearStd: 0.075, seed: 1 };
      const models = v.bert ? [{ name: String(v.bert), dir: String(v.bert) }] : await Promise.all(scales.map(async (s) => ({ name: `tiny bert, ${s}x LayerNorm channels`, dir: (await writeTinyBert(join(dir, `bert-${s}`), { ...base0, normOutliers: s || undefined })).dir })));
      for (const m of models) {
        const files = await openModelFiles(m.dir);
        const cfg = parseBertConfig(await files.readJson('config.json'));
        const store = await files.checkpoint();
        const weights = Object.fromEntries(await Promise.all(store.tensors.map(async (t) => [t.name.replace(/^bert\./, '').replace(/\.gamma$/, '.weight').replace(/\.beta$/, '.bias'), (await store.readAs(t.name, 'f32')) as Float32Array] as const)));
        await store.close?.();
        const tok = await loadTokenizer(files, { padTokenId: cfg.padTokenId });
        const enc = tok.encodeBatch(TEXTS, { maxLength: cfg.maxPositions });
        const ref = meanPool(bertEncode(cfg, weights, { ids: enc.ids, attentionMask: enc.attentionMask, tokenTypeIds: enc.tokenTypeIds, batch: enc.batch }), enc.attentionMask, enc.batch);
        const H = cfg.hiddenSize;
        for (const dtype of dtypes) {
          for (const activations of ['float', 'int8'] as const) {
            const bm = await BertModel.load(m.dir, { dtype, activations, context: ctx });
            try {
              const emb = await bm.embed(TEXTS);
              const c = emb.map((e, i) => cosine(e, ref.subarray(i * H, (i + 1) * H)));
              const mean = c.reduce((a, b) => a + b, 0) / c.length;
              rows.push({ family: 'bert', model: m.name, dtype, activations, ...base, cosine_mean: mean, cosine_min: Math.min(...c) });
              io.stderr(`  ${m.name} ${dtype} ${activations}: cosine mean ${mean.toFixed(6)} min ${Math.min(...c).toFixed(6)}\n`);
            } finally {
              bm.dispose();
            }
          }
        }
      }
    }
  } finally {
    ctx.dispose();
    await rm(dir, { recursive: true, force: true });
  }
  if (v.json) io.stdout(`${JSON.stringify(rows)}\n`);
  else {
    const num = (x: number | undefined, f: (x: number) => string) => (x === undefined ? '-' : f(x));
    io.stdout(
      table(
        ['family', 'model', 'dtype', 'activations', 'KL/token', 'top-1', 'last cosine', 'prefill vs decode', 'relative', 'emb cosine mean', 'emb cosine min'],
        rows.map((r) => [r.family, r.model, r.dtype, r.activations, num(r.kl, (x) => x.toExponential(2)), num(r.top1, fmt), num(r.cosine_last, (x) => x.toFixed(6)), num(r.prefill_vs_decode, (x) => x.toExponential(2)), num(r.prefill_vs_decode_rel, (x) => x.toExponential(2)), num(r.cosine_mean, (x) => x.toFixed(6)), num(r.cosine_min, (x) => x.toFixed(6))]),
      ),
    );
  }
  return 0;
}
