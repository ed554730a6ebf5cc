/**
 * Constrained decoding end to end (responseFormat through LlmModel.generate and
 * chat.completions.create) on random tiny Llamas with real tokenizers: llama2's SentencePiece
 * (byte fallback, 32000) and Qwen3's byte-level BPE (151680). A random model is the hard case for a
 * constraint: without it almost nothing it writes would parse. 200 generations over 10 schemas must
 * each parse and validate with ajv, unless cut by max tokens ('length'); regex outputs must match;
 * grammar outputs must parse. Bad constraints fail before any GPU work.
 */
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LlmModel } from '../../src/api/llm.ts';
import type { ConstrainedStats } from '../../src/generate/constrained.ts';
import type { ResponseFormat } from '../../src/structured/constraint.ts';
import { ConstraintError } from '../../src/structured/errors.ts';
import { CHATML } from '../helpers/llm-fixture.ts';
import { ARITH_GRAMMAR, parsesArith, REGEXES, SCHEMAS } from '../helpers/structured-cases.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-structured-');
const Ajv = ((Ajv2020 as unknown as { default?: unknown }).default ?? Ajv2020) as typeof Ajv2020;
const ajv = new Ajv({ strict: true });
let llama: LlmModel;
let qwen: LlmModel;

beforeAll(async () => {
  const a = await writeTinyLlama(join(tmp.dir, 'llama'), { tokenizer: 'llama2', chatTemplate: CHATML, hidden: 64, layers: 2, seed: 11 });
  const b = await writeTinyLlama(join(tmp.dir, 'qwen'), { modelType: 'qwen3', tokenizer: 'qwen3', hidden: 32, heads: 2, kvHeads: 1, intermediate: 64, layers: 1, seed: 12 });
  llama = await LlmModel.load(a.dir, { dtype: 'f32', kv: 'f32' });
  qwen = await LlmModel.load(b.dir, { dtype: 'q4' });
}, 120_000);
afterAll(() => {
  llama?.dispose();
  qwen?.dispose();
});

const schemaFormat = (name: string): ResponseFormat => ({ type: 'json_schema', json_schema: { name, schema: SCHEMAS[name], strict: true } });

describe('json_schema', () => {
  it('200 generations over 10 schemas on two models all parse and validate (or say length)', async () => {
    const names = Object.keys(SCHEMAS);
    expect(names.length).toBeGreaterThanOrEqual(8);
    const stats: ConstrainedStats = { sampled: 0, forced: 0, forwards: 0, maskMs: 0 };
    let valid = 0;
    let cut = 0;
    let n = 0;
    const failures: string[] = [];
    for (const [model, perSchema] of [[llama, 14], [qwen, 6]] as const) {
      for (const name of names) {
        const validate = ajv.compile(SCHEMAS[name]);
        for (let k = 0; k < perSchema; k++) {
          const temperature = [0, 0.7, 1, 1.5][k % 4];
          const r = await model.generate(`Answer in JSON (${name}):`, { maxTokens: 48, temperature, seed: 1000 * k + n, responseFormat: schemaFormat(name), constraintStats: stats });
          n++;
          if (r.finishReason === 'length') {
            cut++;
            continue;
          }
          let value: unknown;
          try {
            value = JSON.parse(r.text);
          } catch {
            failures.push(`${name} #${k}: does not parse: ${JSON.stringify(r.text)}`);
            continue;
          }
          if (validate(value)) valid++;
          else failures.push(`${name} #${k}: ${JSON.stringify(r.text)} ${ajv.errorsText(validate.errors)}`);
        }
      }
    }
    console.log(`json_schema: ${n} generations, ${valid} valid, ${cut} cut by max tokens; ${stats.sampled} drawn + ${stats.forced} forced tokens in ${stats.forwards} forwards, mask ${(stats.maskMs / (stats.sampled + stats.forced)).toFixed(2)} ms/token`);
    expect(failures).toEqual([]);
    expect(n).toBe(200);
    expect(valid + cut).toBe(200);
    expect(cut).toBeLessThanOrEqual(20);
    expect(stats.forced).toBeGreaterThan(stats.sampled / 4); // keys and braces were jumped over
  }, 600_000);

  it('json_object gives a JSON object; chat.completions takes response_format', async () => {
    for (let k = 0; k < 4; k++) {
      const r = await llama.generate('JSON please:', { maxTokens: 40, temperature: 1, seed: k, responseFormat: { type: 'json_object' } });
      if (r.finishReason === 'stop') expect(typeof JSON.parse(r.text)).toBe('object');
    }
    const c = await llama.chat.completions.create({ messages: [{ role: 'user', content: 'label?' }], response_format: schemaFormat('enumLabel'), temperature: 0.8, seed: 5, max_completion_tokens: 30 });
    expect(c.choices[0].finish_reason).toBe('stop');
    expect(ajv.validate(SCHEMAS.enumLabel, JSON.parse(c.choices[0].message.content!))).toBe(true);
  }, 120_000);

  it('an output cut by max tokens says length; a constraint that cannot end in time ends with length', async () => {
    const long = { type: 'object', properties: { s: { type: 'string', minLength: 40, maxLength: 60 } }, required: ['s'] };
    const r = await llama.generate('x', { maxTokens: 6, temperature: 1, seed: 1, responseFormat: { type: 'json_schema', json_schema: { name: 'long', schema: long } } });
    expect(r.finishReason).toBe('length');
    expect(r.tokens.length).toBe(6);
    const g = await llama.generate('x', { maxTokens: 5, temperature: 1, seed: 2, responseFormat: { type: 'regex', pattern: '[a-z]{80}' } });
    expect(g.finishReason).toBe('length');
  }, 60_000);
});

describe('regex and grammar', () => {
  it('regex outputs match the regex', async () => {
    let matched = 0;
    for (const [model, name] of [[llama, 'llama'], [qwen, 'qwen']] as const) {
      for (const pattern of REGEXES) {
        const re = new RegExp(`^(?:${pattern})$`, 'u');
        for (let k = 0; k < 3; k++) {
          const r = await model.generate('code:', { maxTokens: 24, temperature: [0, 1, 1.4][k], seed: k, responseFormat: { type: 'regex', pattern } });
          if (r.finishReason === 'length') continue;
          expect(r.text, `${name} ${pattern}`).toMatch(re);
          matched++;
        }
      }
    }
    expect(matched).toBeGreaterThanOrEqual(25);
  }, 300_000);

  it('grammar outputs parse with the grammar', async () => {
    let parsed = 0;
    for (const model of [llama, qwen]) {
      // Random weights nest parentheses freely, so some outputs run out of tokens: 16 tries, at
      // least 8 finished (the count keeps the test from passing on no parsed output at all).
      for (let k = 0; k < 8; k++) {
        const r = await model.generate('sum:', { maxTokens: 48, temperature: 1, seed: 40 + k, responseFormat: { type: 'grammar', grammar: ARITH_GRAMMAR } });
        if (r.finishReason === 'length') continue;
        expect(parsesArith(r.text), JSON.stringify(r.text)).toBe(true);
        parsed++;
      }
    }
    expect(parsed).toBeGreaterThanOrEqual(8);
  }, 300_000);
});

describe('bad constraints fail before any GPU work, with a clear error', () => {
  const cases: [string, ResponseFormat | Record<string, unknown>, string, RegExp][] = [
    ['invalid schema', { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'banana' } } }, 'BAD_SCHEMA', /unknown type "banana"/],
    ['unsupported keyword', { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'integer', multipleOf: 3 } } }, 'BAD_SCHEMA', /'multipleOf' is not supported/],
    ['unresolved $ref', { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { $ref: '#/$defs/nope' } } } } }, 'BAD_SCHEMA', /does not resolve/],
    ['impossible schema (engine)', { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', minProperties: 1, properties: {}, additionalProperties: false } } }, 'BAD_SCHEMA', /minProperties/],
    ['regex the engine rejects', { type: 'regex', pattern: '(?=a)b' }, 'BAD_REGEX', /lookahead/],
    ['regex that does not parse', { type: 'regex', pattern: '(ab' }, 'BAD_REGEX', /not a valid regular expression/],
    ['grammar that cannot parse', { type: 'grammar', grammar: 'root ::= "a" | ' }, 'BAD_GRAMMAR', /grammar: .*(parser|Expect)/i],
    ['grammar without root', { type: 'grammar', grammar: 'start ::= "a"' }, 'BAD_GRAMMAR', /root ::=/],
    ['unknown type', { type: 'xml' }, 'BAD_RESPONSE_FORMAT', /expected 'text', 'json_object'/],
  ];
  for (const [label, format, code, message] of cases) {
    it(label, async () => {
      const record = vi.spyOn(llama.ctx, 'record');
      const e = await llama.generate('x', { maxTokens: 4, responseFormat: format as ResponseFormat }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ConstraintError);
      expect((e as ConstraintError).code).toBe(code);
      expect((e as Error).message).toMatch(message);
      expect(record).not.toHaveBeenCalled();
      record.mockRestore();
    });
  }
  it('the model still generates after the engine refused input', async () => {
    const r = await llama.generate('x', { maxTokens: 12, temperature: 0, responseFormat: { type: 'regex', pattern: '(yes|no)' } });
    expect(r.text).toMatch(/^(yes|no)$/);
  });
});
