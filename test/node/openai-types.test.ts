// Type-level: the official `openai` client's TypeScript types accept webq's chat and embeddings
// requests and responses. `npm run typecheck` checks this file; the test below only runs it.
import type OpenAI from 'openai';
import { expect, it } from 'vitest';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest } from '../../src/api/chat.ts';
import type { EmbeddingRequest, EmbeddingResponse } from '../../src/api/embeddings.ts';

/** A request literal that both webq's and OpenAI's request types accept. */
const both = <T extends ChatCompletionRequest & OpenAI.Chat.ChatCompletionCreateParamsNonStreaming>(r: T): T => r;

const requests = [
  both({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 8, temperature: 0.5, top_p: 0.9, seed: 1, stop: ['x'], n: 2, logprobs: true, top_logprobs: 3, logit_bias: { '42': -100 } }),
  both({ model: 'm', messages: [{ role: 'system', content: 's' }, { role: 'user', content: 'hi' }], response_format: { type: 'json_schema', json_schema: { name: 'p', schema: { type: 'object' }, strict: true } } }),
  both({ model: 'm', messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_object' }, max_tokens: 5 }),
  both({
    model: 'm',
    messages: [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"t": 21}' },
    ],
    tools: [{ type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
    parallel_tool_calls: false,
  }),
  both({ model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: 'required' }),
];

// webq's responses are OpenAI's responses (no cast: plain assignability).
export function acceptCompletion(c: ChatCompletion): OpenAI.Chat.ChatCompletion {
  return c;
}
export function acceptChunk(c: ChatCompletionChunk): OpenAI.Chat.ChatCompletionChunk {
  return c;
}
export function acceptEmbeddingRequest(r: EmbeddingRequest & { model: string }): OpenAI.EmbeddingCreateParams {
  return { ...r, input: typeof r.input === 'string' ? r.input : [...r.input] };
}
export function acceptEmbeddings(r: EmbeddingResponse<number[]>): OpenAI.CreateEmbeddingResponse {
  return r;
}

it('is checked by the type checker (npm run typecheck)', () => {
  expect(requests.length).toBe(5);
});
