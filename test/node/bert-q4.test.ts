// BERT's q4 default (Linears int4, symmetric groups of 64 with the range search, int8 table rows) against the fp32
// CPU forward (src/reference/bert.ts), on the test BERT with outlier channels as trained BERTs have
// them (quantize-fixtures.ts: three hidden channels 25x in every LayerNorm): quantized at load and
// written by `webq quantize`, the worst cosine of mean-pooled embeddings over eight texts.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { parseBertConfig } from '../../src/models/config.ts';
import { bertEncode, meanPool } from '../../src/reference/bert.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { writeOutlierBert } from '../helpers/quantize-fixtures.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const TEXTS = [
  'the cat sat on the mat', 'a much longer sentence about the weather and the city in the morning', 'hello world',
  'the quick brown fox jumps over the lazy dog', 'we went to the park in the afternoon and played with a red ball',
  'is it going to rain today', 'my brother likes to read books about history and science', 'good morning',
];
const tmp = useTempDir('webq-bert-q4-');
let ctx: GpuContext;
let dir: string;
let ref: Float32Array;
const H = 128;

beforeAll(async () => {
  ctx = await GpuContext.create();
  dir = (await writeOutlierBert(join(tmp.dir, 'bert'), { hidden: H, heads: 4, intermediate: 256, layers: 2, seed: 9 })).dir;
  const files = await openModelFiles(dir);
  const cfg = parseBertConfig(await files.readJson('config.json'));
  const store = await files.checkpoint();
  const w: Record<string, Float32Array> = {};
  for (const t of store.tensors) w[t.name] = (await store.readAs(t.name, 'f32')) as Float32Array;
  await store.close();
  const tok = await loadTokenizer(files, { padTokenId: cfg.padTokenId });
  const enc = tok.encodeBatch(TEXTS, { maxLength: cfg.maxPositions });
  ref = meanPool(bertEncode(cfg, w, { ids: enc.ids, attentionMask: enc.attentionMask, tokenTypeIds: enc.tokenTypeIds, batch: enc.batch }), enc.attentionMask, enc.batch);
});
afterAll(() => ctx?.dispose());

function worstCosine(emb: Float32Array[]): number {
  return Math.min(...emb.map((e, i) => {
    const r = ref.subarray(i * H, (i + 1) * H);
    let [ab, aa, bb] = [0, 0, 0];
    for (let k = 0; k < H; k++) [ab, aa, bb] = [ab + e[k] * r[k], aa + e[k] * e[k], bb + r[k] * r[k]];
    return ab / Math.sqrt(aa * bb);
  }));
}

describe('BERT q4 default against fp32', () => {
  it('worst cosine >= 0.995, quantized at load and as written by webq quantize', async () => {
    const onLoad = await BertModel.load(dir, { dtype: 'q4', context: ctx });
    const a = worstCosine(await onLoad.embed(TEXTS));
    onLoad.dispose();
    const out = join(tmp.dir, 'q4');
    let err = '';
    expect(await main(['quantize', dir, '--dtype', 'q4', '--out', out], { stdout: () => {}, stderr: (t) => void (err += t), gpuContext: ctx } as Parameters<typeof main>[1]), err).toBe(0);
    const file = await BertModel.load(out, { context: ctx });
    const b = worstCosine(await file.embed(TEXTS));
    file.dispose();
    console.log(`BERT with outlier channels, q4 default: worst cosine vs fp32 ${a.toFixed(5)} at load, ${b.toFixed(5)} from the file`);
    expect(a).toBeGreaterThanOrEqual(0.995);
    expect(b).toBeGreaterThanOrEqual(0.995);
  });
});
