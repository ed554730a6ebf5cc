/// <reference lib="deno.ns" />
// BERT end to end on Deno's WebGPU: a tiny generated checkpoint, loaded from its folder by the
// same BertModel as in Node, against the CPU fp32 forward (f32 path: 1e-4 max abs error).
import assert from 'node:assert/strict';
import { BertModel } from '../../src/api/bert.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { parseBertConfig } from '../../src/models/config.ts';
import { bertEncode } from '../../src/reference/bert.ts';
import { loadTokenizer } from '../../src/text/tokenizer.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';

Deno.test('BERT f32 on Deno WebGPU matches the CPU fp32 forward', async () => {
  const dir = await Deno.makeTempDir({ prefix: 'webq-deno-bert-' });
  try {
    const tiny = await writeTinyBert(dir, { hidden: 64, heads: 2, intermediate: 128, layers: 2, maxPositions: 32, linearStd: 0.1, seed: 5 });
    const texts = ['the cat sat on the mat', 'hello world'];
    const model = await BertModel.load(dir, { dtype: 'f32' });
    try {
      assert.equal(model.ctx.caps.runtime, 'deno');
      const got = await model.hidden(texts);
      const cfg = parseBertConfig(tiny.config);
      const tok = await loadTokenizer(await openModelFiles(dir), { padTokenId: cfg.padTokenId });
      const enc = tok.encodeBatch(texts, { maxLength: cfg.maxPositions });
      const ref = bertEncode(cfg, tiny.weights, { ids: enc.ids, attentionMask: enc.attentionMask, tokenTypeIds: enc.tokenTypeIds, batch: enc.batch });
      let err = 0;
      for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs(got.data[i] - ref[i]));
      console.log(`deno bert: max abs error ${err.toExponential(2)} over ${ref.length} values`);
      assert.ok(err <= 1e-4, `max abs error ${err} > 1e-4`);
      const emb = await model.embed(texts, { normalize: true });
      assert.deepEqual([emb.length, emb[0].length], [2, 64]);
      assert.ok(Math.abs(Math.hypot(...emb[0]) - 1) < 1e-5, 'normalized embedding');
    } finally {
      model.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test('applyDelta on Deno WebGPU: a loaded q4 model moves to the patched version, bit for bit; signed deltas (WebCrypto Ed25519)', async () => {
  const { main } = await import('../../src/cli/main.ts');
  const { editCheckpoint } = await import('../../fixtures/checkpoint-edit.ts');
  const dir = await Deno.makeTempDir({ prefix: 'webq-deno-delta-' });
  const cli = async (...argv: string[]) => {
    let err = '';
    const code = await main(argv, { stdout: () => undefined, stderr: (t: string) => void (err += t) });
    assert.equal(code, 0, err);
  };
  try {
    const v1 = `${dir}/v1`;
    await writeTinyBert(v1, { hidden: 64, heads: 2, intermediate: 128, layers: 2, maxPositions: 32, seed: 5 });
    const v2 = await editCheckpoint(v1, `${dir}/v2`, { nudge: /^encoder\.layer\.1\.attention\.self\.key\.weight$/ });
    await cli('quantize', v1, '--dtype', 'q4', '--out', `${dir}/q1`);
    await cli('keygen', '--out', `${dir}/k`);
    await cli('diff', `${dir}/q1`, v2, '--out', `${dir}/d.safetensors`, '--sign', `${dir}/k`);
    await cli('diff', `${dir}/q1`, v2, '--out', `${dir}/unsigned.safetensors`);
    await cli('patch', `${dir}/q1`, `${dir}/d.safetensors`, '--out', `${dir}/p`, '--public-key', `${dir}/k.pub`);
    const publicKey = await Deno.readTextFile(`${dir}/k.pub`);
    const texts = ['the cat sat on the mat', 'hello world'];
    const model = await BertModel.load(`${dir}/q1`);
    const fresh = await BertModel.load(`${dir}/p`, { context: model.ctx });
    try {
      const old = await model.embed(texts);
      await assert.rejects(model.applyDelta(`${dir}/unsigned.safetensors`, { publicKey }), /is not signed, and a public key was given/);
      const r = await model.applyDelta(`${dir}/d.safetensors`, { publicKey });
      assert.deepEqual(r.units, ['encoder.layer.1.attention.self.key.weight']);
      assert.equal(model.version, fresh.version);
      assert.ok(r.uploadedBytes < model.weightBytes / 5, `uploaded ${r.uploadedBytes} of ${model.weightBytes} bytes`);
      const now = await model.embed(texts);
      assert.deepEqual(now, await fresh.embed(texts));
      assert.notDeepEqual(now, old);
    } finally {
      fresh.dispose();
      model.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
