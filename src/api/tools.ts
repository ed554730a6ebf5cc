/**
 * Tool calling for chat.completions: the OpenAI request shapes checked, the tools handed to the
 * model's own chat template (its `tools` variable, as transformers passes them), the model's
 * tool-call syntax read from the template, and, when a call is required or named, a constraint
 * that makes the model write exactly that syntax with arguments valid for their schema.
 *
 * Syntaxes (what the template teaches the model to write):
 *   hermes:  <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>   Qwen2.5, Qwen3, Hermes, SmolLM3
 *   llama3:  {"name": "f", "parameters": {...}}                              Llama 3.1 / 3.2 (JSON tool calling)
 *   mistral: [TOOL_CALLS][{"name": "f", "arguments": {...}}]                Mistral v3 templates
 */
import { ConstraintError } from '../structured/errors.ts';
import { checkSchema } from '../structured/schema-check.ts';
import type { StructuralTagConstraint } from '../structured/constraint.ts';
import type { ChatTemplate } from '../text/chat-template.ts';

export interface ChatTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean | null };
}

export type ToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export type ToolFormat = 'hermes' | 'llama3' | 'mistral';

export interface ToolPlan {
  format: ToolFormat;
  /** Parse the reply for calls (false for tool_choice 'none'). */
  parse: boolean;
  /** Set when a call is required or named. */
  constraint: StructuralTagConstraint | null;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The syntax the template teaches, or null when it does not render tools at all. */
export function toolFormatOf(template: ChatTemplate): ToolFormat | null {
  const src = [...template.templates.values()].join('\n');
  if (!/\btools\b/.test(src)) return null;
  if (src.includes('<tool_call>')) return 'hermes';
  if (src.includes('[TOOL_CALLS]')) return 'mistral';
  return 'llama3';
}

/** Checks `tools` and `tool_choice` (names, schemas) and plans the generation. */
export function planTools(tools: unknown, choice: unknown, parallel: boolean | null | undefined, template: ChatTemplate, model: string): ToolPlan {
  if (!Array.isArray(tools) || tools.length === 0) throw new ConstraintError('BAD_TOOLS', 'tools: expected a non-empty array of { type: "function", function: { name, parameters } }');
  const names = new Set<string>();
  tools.forEach((t: unknown, i) => {
    const where = `tools[${i}]`;
    if (!isObject(t) || t.type !== 'function' || !isObject(t.function)) throw new ConstraintError('BAD_TOOLS', `${where}: expected { type: "function", function: { name, description?, parameters? } }`);
    const { name, parameters } = t.function;
    if (typeof name !== 'string' || !NAME.test(name)) throw new ConstraintError('BAD_TOOLS', `${where}.function.name: expected 1-64 letters, digits, _ or -, got ${JSON.stringify(name) ?? 'nothing'}`);
    if (names.has(name)) throw new ConstraintError('BAD_TOOLS', `${where}.function.name: '${name}' is given twice`);
    names.add(name);
    if (parameters !== undefined) checkSchema(parameters, `${where}.function.parameters (${name})`);
  });
  const format = toolFormatOf(template);
  if (!format) {
    throw new ConstraintError('NO_TOOL_SUPPORT', `${model}: the chat template does not render tools (it never uses a 'tools' variable), so the model was not taught to call them; leave out tools, or use a model whose template supports tool calling`);
  }
  const c = choice ?? 'auto';
  let only: string | null = null;
  if (isObject(c)) {
    const name = isObject(c.function) ? c.function.name : undefined;
    if (c.type !== 'function' || typeof name !== 'string') throw new ConstraintError('BAD_TOOLS', `tool_choice: expected 'auto', 'none', 'required' or { type: "function", function: { name } }, got ${JSON.stringify(c)}`);
    if (!names.has(name)) throw new ConstraintError('BAD_TOOLS', `tool_choice names '${name}', which is not among the tools (${[...names].join(', ')})`);
    only = name;
  } else if (c !== 'auto' && c !== 'none' && c !== 'required') {
    throw new ConstraintError('BAD_TOOLS', `tool_choice: expected 'auto', 'none', 'required' or { type: "function", function: { name } }, got ${JSON.stringify(c)}`);
  }
  if (c === 'none' || c === 'auto') return { format, parse: c === 'auto', constraint: null };
  const chosen = (tools as ChatTool[]).filter((t) => only === null || t.function.name === only);
  return { format, parse: true, constraint: callConstraint(format, chosen, only === null && parallel !== false) };
}

/** The structural tag that admits one call (or several, separated as the syntax separates them) and nothing else. */
function callConstraint(format: ToolFormat, tools: readonly ChatTool[], many: boolean): StructuralTagConstraint {
  const argKey = format === 'llama3' ? 'parameters' : 'arguments';
  const [open, close, sep] = format === 'hermes' ? ['<tool_call>\n', '\n</tool_call>', '\n'] : ['', '', format === 'mistral' ? ', ' : '; '];
  const tags = tools.map((t) => ({
    type: 'tag',
    begin: `${open}{"name": "${t.function.name}", "${argKey}": `,
    content: { type: 'json_schema', json_schema: t.function.parameters ?? { type: 'object' } },
    end: `}${close}`,
  }));
  const calls = { type: 'tags_with_separator', tags, separator: sep, at_least_one: true, stop_after_first: !many };
  const format_ = format === 'mistral' ? { type: 'sequence', elements: [{ type: 'const_string', value: '[' }, calls, { type: 'const_string', value: ']' }] } : calls;
  return { type: 'structural_tag', format: format_ };
}

let counter = 0;
export const toolCallId = () => `call_${Date.now().toString(36)}${(counter++).toString(36).padStart(4, '0')}`;

/** {"name", "arguments" | "parameters"} -> a call, or null when it is not one. */
function callOf(v: unknown): ToolCall | null {
  if (!isObject(v) || typeof v.name !== 'string') return null;
  const args = v.arguments ?? v.parameters ?? {};
  const text = typeof args === 'string' ? args : JSON.stringify(args);
  return { id: toolCallId(), type: 'function', function: { name: v.name, arguments: text } };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export interface ParsedReply {
  content: string | null;
  calls: ToolCall[];
}

const HERMES = /<tool_call>\s*([\s\S]*?)\s*<\/tool_call>/g;

/** The reply's tool calls, and the text outside them (trimmed; null when empty). */
export function parseToolCalls(text: string, format: ToolFormat): ParsedReply {
  if (format === 'hermes') {
    const calls: ToolCall[] = [];
    const rest = text.replace(HERMES, (whole, body: string) => {
      const c = callOf(parseJson(body));
      if (!c) return whole;
      calls.push(c);
      return '';
    });
    return { content: rest.trim() || null, calls };
  }
  const t = text.trim().replace(/^(<\|python_tag\|>|\[TOOL_CALLS\])/, '').trim();
  if (format === 'mistral' || t.startsWith('[')) {
    const list = parseJson(t);
    const calls = Array.isArray(list) ? list.map(callOf) : [];
    if (calls.length && calls.every((c) => c !== null)) return { content: null, calls: calls as ToolCall[] };
  }
  // llama3: one JSON object, or several separated by ';' or new lines.
  const whole = callOf(parseJson(t));
  if (whole) return { content: null, calls: [whole] };
  const parts = t.split(/;\s*|\n+/).filter((p) => p.trim());
  const calls = parts.map((p) => callOf(parseJson(p)));
  if (parts.length > 1 && calls.every((c) => c !== null)) return { content: null, calls: calls as ToolCall[] };
  return { content: text.trim() || null, calls: [] };
}
