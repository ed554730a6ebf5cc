/// <reference lib="deno.ns" />
// A tiny chat Llama on Deno's WebGPU (f32 weights, f32 KV cache): greedy and seeded-sample tokens.
//
// Two modes. Run with the rest of test/deno (test/node/deno.test.ts), it writes the model itself and
// holds the tokens to the fp32 CPU reference. test/node/llm-runtimes.test.ts runs this file again
// with WEBQ_LLM_FIXTURE=<folder>: the model Node wrote, with Node's ids in expected.json beside it,
// so Node, Deno and Chromium are held to the same tokens.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { LlmModel } from '../../src/api/llm.ts';
import { parseLlamaConfig } from '../../src/models/llama/llama-config.ts';
import { GREEDY, referenceIds, RUNTIME_PROMPT, SEEDED, TINY_CHAT_LLAMA, type RuntimeIds } from '../helpers/llm-fixture.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';

Deno.test('tiny Llama on Deno WebGPU: greedy and seeded-sample tokens', async () => {
  const fixture = Deno.env.get('WEBQ_LLM_FIXTURE');
  const dir = fixture ?? (await Deno.makeTempDir({ prefix: 'webq-deno-llm-' }));
  try {
    const tiny = fixture ? undefined : await writeTinyLlama(dir, TINY_CHAT_LLAMA);
    const model = await LlmModel.load(dir, { dtype: 'f32', kv: 'f32' });
    let got: RuntimeIds;
    try {
      assert.equal(model.ctx.caps.runtime, 'deno');
      const greedy = await model.generate(RUNTIME_PROMPT, GREEDY);
      const sample = await model.generate(RUNTIME_PROMPT, SEEDED);
      // Speculation (lookup drafts, verified by shaders/verify.wgsl on wgpu) gives the greedy tokens.
      const spec = await model.generate(RUNTIME_PROMPT, { ...GREEDY, speculative: { method: 'lookup', k: 4 } });
      assert.deepEqual(spec.tokens, greedy.tokens, 'greedy tokens differ with speculative lookup');
      // Sampled verification (sample.wgsl's sample_rows on wgpu) draws the seeded tokens; 'self' drafts greedily.
      const specSample = await model.generate(RUNTIME_PROMPT, { ...SEEDED, speculative: { method: 'lookup', k: 4 } });
      assert.deepEqual(specSample.tokens, sample.tokens, 'sampled tokens differ with speculative lookup');
      const self = await model.generate(RUNTIME_PROMPT, { ...GREEDY, speculative: { method: 'self', k: 3 } });
      assert.deepEqual(self.tokens, greedy.tokens, "greedy tokens differ with speculative 'self'");
      got = { promptIds: greedy.promptIds, greedy: greedy.tokens, sample: sample.tokens };
    } finally {
      model.dispose();
    }
    console.log(`deno llm (${fixture ? 'fixture from Node' : 'own model'}): ${JSON.stringify(got)}`);
    if (fixture) {
      const want: RuntimeIds = JSON.parse(await Deno.readTextFile(join(dir, 'expected.json')));
      assert.deepEqual(got, want, 'Deno tokens differ from Node');
    } else {
      const ref = referenceIds(parseLlamaConfig(tiny!.config), tiny!.weights, got.promptIds);
      console.log(`deno llm: sampling margin ${ref.margin.toExponential(2)}`);
      assert.deepEqual(got.greedy, ref.greedy, 'greedy tokens differ from the fp32 CPU reference');
      assert.deepEqual(got.sample, ref.sample, 'seeded-sample tokens differ from the fp32 CPU reference');
    }
  } finally {
    if (!fixture) await Deno.remove(dir, { recursive: true });
  }
});
