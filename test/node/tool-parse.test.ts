// Tool-call syntaxes parsed back (no GPU): hermes <tool_call> blocks (Qwen2.5/Qwen3, Hermes,
// SmolLM3), Llama 3.1 JSON ("parameters", <|python_tag|>, several separated by ';'), Mistral
// [TOOL_CALLS] lists; and the streaming parser, fed every text in random pieces, must give the
// same content and calls as the whole-text parser.
import { describe, expect, it } from 'vitest';
import { ToolStreamParser } from '../../src/api/tool-stream.ts';
import { parseToolCalls, type ToolFormat } from '../../src/api/tools.ts';
import { rng } from '../kernels/check.ts';

const calls = (text: string, f: ToolFormat) => {
  const p = parseToolCalls(text, f);
  return { content: p.content, calls: p.calls.map((c) => [c.function.name, JSON.parse(c.function.arguments)]) };
};

describe('parseToolCalls', () => {
  it('hermes blocks, with text around them and a broken block left as text', () => {
    expect(calls('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>', 'hermes')).toEqual({ content: null, calls: [['get_weather', { city: 'Paris' }]] });
    expect(calls('Let me check.\n<tool_call>{"name": "a", "arguments": {}}</tool_call>\n<tool_call>{"name": "b", "arguments": {"x": 1}}</tool_call>', 'hermes')).toEqual({
      content: 'Let me check.',
      calls: [['a', {}], ['b', { x: 1 }]],
    });
    expect(calls('<tool_call>{"name": "a", "arguments": {</tool_call> done', 'hermes')).toEqual({ content: '<tool_call>{"name": "a", "arguments": {</tool_call> done', calls: [] });
    expect(calls('no calls here', 'hermes')).toEqual({ content: 'no calls here', calls: [] });
  });

  it('Llama 3.1 JSON: "parameters", a python tag, several calls; plain JSON that is no call stays text', () => {
    expect(calls('{"name": "get_time", "parameters": {"zone": "UTC"}}', 'llama3')).toEqual({ content: null, calls: [['get_time', { zone: 'UTC' }]] });
    expect(calls('<|python_tag|>{"name": "f", "parameters": {}}', 'llama3')).toEqual({ content: null, calls: [['f', {}]] });
    expect(calls('{"name": "f", "parameters": {"a": 1}}; {"name": "g", "parameters": {"b": 2}}', 'llama3')).toEqual({ content: null, calls: [['f', { a: 1 }], ['g', { b: 2 }]] });
    expect(calls('{"answer": 42}', 'llama3')).toEqual({ content: '{"answer": 42}', calls: [] });
  });

  it('Mistral [TOOL_CALLS] lists (the marker is a special token, so it may be gone from the text)', () => {
    const list = '[{"name": "f", "arguments": {"q": "x"}}, {"name": "g", "arguments": {}}]';
    expect(calls(`[TOOL_CALLS]${list}`, 'mistral')).toEqual({ content: null, calls: [['f', { q: 'x' }], ['g', {}]] });
    expect(calls(list, 'mistral')).toEqual({ content: null, calls: [['f', { q: 'x' }], ['g', {}]] });
  });

  it('arguments given as a string stay that string', () => {
    expect(parseToolCalls('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>', 'hermes').calls[0].function.arguments).toBe('{"a": 1}');
  });
});

describe('ToolStreamParser', () => {
  const texts: [ToolFormat, string][] = [
    ['hermes', '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'],
    ['hermes', '  Let me check.  \n<tool_call>{"name": "a", "arguments": {}}</tool_call> and <tool_call>{"name": "b", "arguments": {"x": [1, 2]}}</tool_call>  \n'],
    ['hermes', 'a < b, and <tool_ is not a tag; <tool_call>{"name": "a", "arguments": {</tool_call> done  '],
    ['hermes', 'plain text, no tools at all'],
    ['hermes', 'cut off: <tool_call>{"name": "a", "argu'],
    ['llama3', '{"name": "f", "parameters": {"a": 1}}; {"name": "g", "parameters": {"b": 2}}'],
    ['llama3', '  {"answer": 42}  '],
    ['llama3', 'Hello there, nothing to call.'],
    ['mistral', '[{"name": "f", "arguments": {"q": "x"}}]'],
  ];
  it('gives what parseToolCalls gives for the whole text, however the text is cut', () => {
    const r = rng(5);
    for (const [format, text] of texts) {
      const whole = parseToolCalls(text, format);
      for (let trial = 0; trial < 20; trial++) {
        const p = new ToolStreamParser(format);
        let content = '';
        const got: [string, string][] = [];
        for (let i = 0; i < text.length; ) {
          const n = 1 + Math.floor(r() * 6);
          const o = p.push(text.slice(i, i + n));
          content += o.content;
          got.push(...o.calls.map((c) => [c.function.name, c.function.arguments] as [string, string]));
          i += n;
        }
        const end = p.flush();
        content += end.content;
        got.push(...end.calls.map((c) => [c.function.name, c.function.arguments] as [string, string]));
        expect(content || null, `${format} ${JSON.stringify(text)}`).toBe(whole.content);
        expect(got).toEqual(whole.calls.map((c) => [c.function.name, c.function.arguments]));
      }
    }
  });
});
