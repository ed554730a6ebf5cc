/**
 * Chat messages -> prompt text, with the model's own Jinja chat template (@huggingface/jinja), the
 * way transformers' `apply_chat_template(messages, tokenize=False, add_generation_prompt=...)` does.
 *
 * Where the template comes from (as in recent transformers): chat_template.jinja beside the
 * tokenizer wins; else tokenizer_config.json `chat_template`, either a string or a list of
 * {name, template} of which "default" is used ("tool_use" when `tools` are passed and it exists).
 *
 * Tokenizing the result: the rendered text already holds BOS and every other special token where
 * the template wants them, so transformers encodes it WITHOUT adding special tokens again. Encode
 * it with `tokenizer.encode(text, { addSpecialTokens: false })`; adding them would double the BOS
 * of Llama-style templates.
 */
import { Template } from '@huggingface/jinja';
import { parseJsonText, type ModelFiles } from '../io/hub/model-files.ts';
import { ChatTemplateError } from './chat-template-error.ts';
import { renderConfined } from './template-sandbox.ts';
import { TEMPLATE_LIMITS, type TemplateLimits } from './template-limits.ts';

export { ChatTemplateError, type ChatTemplateErrorCode } from './chat-template-error.ts';
export { TEMPLATE_LIMITS, type TemplateLimits } from './template-limits.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content: string;
  /** An assistant's calls (OpenAI's shape); the template sees their arguments as objects. */
  tool_calls?: readonly { id?: string; type?: 'function'; function: { name: string; arguments: string | Record<string, unknown> } }[];
  /** A tool message: the call it answers. */
  tool_call_id?: string;
  name?: string;
}

/** Token strings the template may use (tokenizer_config.json's special tokens map). */
export interface SpecialTokens {
  bos_token?: string;
  eos_token?: string;
  pad_token?: string;
  unk_token?: string;
  sep_token?: string;
  cls_token?: string;
  mask_token?: string;
  additional_special_tokens?: string[];
}

export interface RenderOptions {
  /** Ends the prompt with the assistant's turn header, so the model answers. Default false. */
  addGenerationPrompt?: boolean;
  /** More template variables: `tools`, `enable_thinking`, `date_string`, ... */
  extra?: Record<string, unknown>;
  /**
   * Bounds on rendering (template-sandbox.ts); unset ones are TEMPLATE_LIMITS, with maxChars and
   * maxSteps raised to fit long conversations (see effectiveLimits).
   */
  limits?: Partial<TemplateLimits>;
}

const TOKEN_FIELDS = ['bos_token', 'eos_token', 'unk_token', 'sep_token', 'pad_token', 'cls_token', 'mask_token'] as const;

/** "<s>" or an AddedToken {"content": "<s>", ...}; null and anything else is "not set". */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** tokenizer_config.json -> the special tokens map transformers passes to the template. */
function specialTokensOf(config: Record<string, unknown>): SpecialTokens {
  const out: SpecialTokens = {};
  for (const k of TOKEN_FIELDS) {
    const s = tokenContent(config[k]);
    if (s !== undefined) out[k] = s;
  }
  const extra = config.additional_special_tokens;
  if (Array.isArray(extra)) out.additional_special_tokens = extra.map(tokenContent).filter((s): s is string => s !== undefined);
  return out;
}

/** tokenizer_config.json `chat_template` -> named templates; undefined when there is none. */
function templatesOf(value: unknown, where: string): Map<string, string> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return new Map([['default', value]]);
  const bad = () => new ChatTemplateError('CHAT_TEMPLATE', `${where}: chat_template must be a string or a list of {"name", "template"}`);
  if (!Array.isArray(value)) throw bad();
  const named = new Map<string, string>();
  for (const t of value as { name?: unknown; template?: unknown }[]) {
    if (typeof t !== 'object' || t === null || typeof t.name !== 'string' || typeof t.template !== 'string') throw bad();
    named.set(t.name, t.template);
  }
  return named.size === 0 ? undefined : named;
}

/**
 * TEMPLATE_LIMITS with the caller's overrides. Text and steps also grow with the input: a template
 * writes each message about once and spends some tens of steps on it (Qwen3: 50), so 4x the characters and
 * 1,000 steps per message keep a long conversation from being refused for its length.
 */
function effectiveLimits(messages: readonly ChatMessage[], extra: Record<string, unknown>, given: Partial<TemplateLimits> = {}): TemplateLimits {
  const limits = { ...TEMPLATE_LIMITS, ...given };
  for (const [k, v] of Object.entries(limits)) {
    if (typeof v !== 'number' || !(v >= 0)) throw new ChatTemplateError('CHAT_TEMPLATE', `render limits: ${k} must be a number >= 0, got ${JSON.stringify(v)}`);
  }
  if (given.maxChars === undefined) {
    let chars = messages.reduce((n, m) => n + m.content.length + (m.tool_calls ? JSON.stringify(m.tool_calls).length : 0), 0);
    try {
      chars += JSON.stringify(extra)?.length ?? 0;
    } catch {
      // not JSON (a function, a cycle): the template sees it as the library converts it
    }
    limits.maxChars = Math.max(limits.maxChars, 4 * chars);
  }
  if (given.maxSteps === undefined) limits.maxSteps = Math.max(limits.maxSteps, 1_000 * messages.length);
  return limits;
}

/** An error's message, cut short: a template can raise_exception() with any text it builds. */
function messageOf(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  return m.length > 1000 ? `${m.slice(0, 1000)}... (${m.length} characters)` : m;
}

function checkMessages(messages: unknown, model: string): void {
  const where = `${model}: chat messages`;
  if (!Array.isArray(messages)) {
    throw new ChatTemplateError('BAD_MESSAGES', `${where}: expected an array of {role, content}, got ${messages === null ? 'null' : typeof messages}`);
  }
  if (messages.length === 0) throw new ChatTemplateError('BAD_MESSAGES', `${where}: the list is empty; pass at least one {role: 'user', content}`);
  messages.forEach((m: unknown, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) {
      throw new ChatTemplateError('BAD_MESSAGES', `${where}: message ${i} is ${m === null ? 'null' : Array.isArray(m) ? 'an array' : typeof m}, expected {role, content}`);
    }
    const { role, content, tool_calls: calls } = m as { role?: unknown; content?: unknown; tool_calls?: unknown };
    if (typeof role !== 'string' || role === '') {
      throw new ChatTemplateError('BAD_MESSAGES', `${where}: message ${i} has role ${JSON.stringify(role) ?? 'undefined'}, expected a non-empty string like 'user'`);
    }
    if (calls !== undefined && (role !== 'assistant' || !Array.isArray(calls))) {
      throw new ChatTemplateError('BAD_MESSAGES', `${where}: message ${i} (${role}) has tool_calls, which only an assistant message may have, as an array`);
    }
    if (typeof content !== 'string') {
      throw new ChatTemplateError('BAD_MESSAGES', `${where}: message ${i} (${role}) has content of type ${content === null ? 'null' : typeof content}, expected a string`);
    }
  });
}

export class ChatTemplate {
  /** The model, for messages. */
  readonly name: string;
  /** Template sources by name; a single-string template is "default". */
  readonly templates: ReadonlyMap<string, string>;
  readonly specialTokens: Readonly<SpecialTokens>;
  private readonly compiled = new Map<string, Template>();

  private constructor(templates: Map<string, string>, specialTokens: SpecialTokens, name: string) {
    this.templates = templates;
    this.specialTokens = specialTokens;
    this.name = name;
  }

  /**
   * From a model location; null when it has no chat template. Parsing waits for the first
   * render, so a broken template only matters to callers that chat.
   */
  static async load(files: Pick<ModelFiles, 'readText' | 'exists' | 'describe'>): Promise<ChatTemplate | null> {
    const configFile = 'tokenizer_config.json';
    const config = (await files.exists(configFile)) ? parseJsonText(await files.readText(configFile), `${files.describe}: ${configFile}`) : {};
    if (typeof config !== 'object' || config === null || Array.isArray(config)) {
      throw new ChatTemplateError('CHAT_TEMPLATE', `${files.describe}: ${configFile} is not a JSON object`);
    }
    const specials = specialTokensOf(config);
    if (await files.exists('chat_template.jinja')) {
      return new ChatTemplate(new Map([['default', await files.readText('chat_template.jinja')]]), specials, files.describe);
    }
    const templates = templatesOf(config.chat_template, `${files.describe}: ${configFile}`);
    return templates ? new ChatTemplate(templates, specials, files.describe) : null;
  }

  /** From template source; parsed at once, so a mistake in it throws CHAT_TEMPLATE here. */
  static fromString(template: string, specialTokens: SpecialTokens = {}, name = 'chat template'): ChatTemplate {
    const t = new ChatTemplate(new Map([['default', template]]), { ...specialTokens }, name);
    t.compile('default');
    return t;
  }

  /**
   * The prompt text transformers' apply_chat_template(messages, tokenize=False,
   * add_generation_prompt) gives. The template sees `messages`, `add_generation_prompt`, the
   * special token strings (bos_token, eos_token, ...) and `extra`.
   */
  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    checkMessages(messages, this.name);
    const extra = opts.extra ?? {};
    const template = this.compile(this.pick(extra.tools !== undefined && extra.tools !== null));
    const limits = effectiveLimits(messages, extra, opts.limits);
    try {
      return renderConfined(template.parsed, { ...this.specialTokens, ...extra, messages, add_generation_prompt: opts.addGenerationPrompt ?? false }, limits);
    } catch (e) {
      if (e instanceof ChatTemplateError && e.code === 'CHAT_TEMPLATE_LIMIT') {
        throw new ChatTemplateError('CHAT_TEMPLATE_LIMIT', `${this.name}: the chat template ${e.message}; refused (a model's template runs with bounded work)`, { cause: e });
      }
      throw new ChatTemplateError('CHAT_TEMPLATE', `${this.name}: the chat template failed: ${messageOf(e)}`, { cause: e });
    }
  }

  /** transformers' choice among named templates: "tool_use" when tools are given, else "default". */
  private pick(withTools: boolean): string {
    if (withTools && this.templates.has('tool_use')) return 'tool_use';
    if (this.templates.has('default')) return 'default';
    if (this.templates.size === 1) return [...this.templates.keys()][0];
    throw new ChatTemplateError(
      'CHAT_TEMPLATE',
      `${this.name}: the model has several chat templates (${[...this.templates.keys()].join(', ')}) and none is named "default"`,
    );
  }

  private compile(key: string): Template {
    let t = this.compiled.get(key);
    if (!t) {
      try {
        t = new Template(this.templates.get(key)!);
      } catch (e) {
        throw new ChatTemplateError('CHAT_TEMPLATE', `${this.name}: the chat template${key === 'default' ? '' : ` "${key}"`} does not parse: ${messageOf(e)}`, { cause: e });
      }
      this.compiled.set(key, t);
    }
    return t;
  }
}

/** The template, or NO_CHAT_TEMPLATE naming the model (`describe`) when it has none. */
export function requireChatTemplate(t: ChatTemplate | null, describe: string): ChatTemplate {
  if (t) return t;
  throw new ChatTemplateError(
    'NO_CHAT_TEMPLATE',
    `${describe}: has no chat template (no chat_template.jinja, no chat_template in tokenizer_config.json), so it cannot take chat messages; ` +
      'generate from a plain text prompt instead, or pass a template with ChatTemplate.fromString',
  );
}
