/// <reference lib="deno.ns" />
// Constrained decoding on Deno (the engine loaded as in Node; WebGPU from wgpu): a JSON Schema
// reply that parses and holds the schema's enum and range, a regex reply that matches, and a bad
// schema refused with the engine's reason.
import assert from 'node:assert/strict';
import { LlmModel } from '../../src/api/llm.ts';
import { ConstraintError } from '../../src/structured/errors.ts';
import { TINY_CHAT_LLAMA } from '../helpers/llm-fixture.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';

Deno.test('constrained generation on Deno: json_schema, regex, a bad schema', async () => {
  const dir = await Deno.makeTempDir({ prefix: 'webq-deno-structured-' });
  try {
    await writeTinyLlama(dir, TINY_CHAT_LLAMA);
    const model = await LlmModel.load(dir, { dtype: 'f32', kv: 'f32' });
    try {
      const schema = { type: 'object', properties: { label: { enum: ['a', 'b', 'c'] }, n: { type: 'integer', minimum: 1, maximum: 9 } }, required: ['label', 'n'] };
      const r = await model.generate('JSON:', { maxTokens: 32, temperature: 1, seed: 7, responseFormat: { type: 'json_schema', json_schema: { name: 's', schema } } });
      assert.equal(r.finishReason, 'stop');
      const v = JSON.parse(r.text);
      assert.ok(['a', 'b', 'c'].includes(v.label) && Number.isInteger(v.n) && v.n >= 1 && v.n <= 9, r.text);
      const g = await model.generate('code:', { maxTokens: 16, temperature: 1, seed: 8, responseFormat: { type: 'regex', pattern: '[0-9]{2}-[a-z]{3}' } });
      assert.match(g.text, /^[0-9]{2}-[a-z]{3}$/);
      const bad = { type: 'object', minProperties: 1, properties: {}, additionalProperties: false };
      const e = await model.generate('x', { maxTokens: 4, responseFormat: { type: 'json_schema', json_schema: { name: 'bad', schema: bad } } }).catch((x: unknown) => x);
      assert.ok(e instanceof ConstraintError && /minProperties/.test(e.message), String(e));
      console.log(`deno structured: ${r.text} | ${g.text}`);
    } finally {
      model.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
