/**
 * What a generation may be constrained to, in OpenAI's response_format shapes plus a regex and a
 * grammar, and the checks each one gets before any work starts.
 */
import { ConstraintError } from './errors.ts';
import { checkSchema } from './schema-check.ts';

export interface JsonSchemaFormat {
  type: 'json_schema';
  json_schema: { name: string; description?: string; schema?: Record<string, unknown> | boolean; strict?: boolean | null };
}

/**
 * `text`: no constraint. `json_object`: any JSON object. `json_schema`: JSON valid for the schema.
 * `regex`: text the whole of which matches the pattern. `grammar`: text the EBNF grammar (XGrammar's
 * dialect, which reads GBNF: `root ::= ...`) derives from its `root` rule.
 */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | JsonSchemaFormat
  | { type: 'regex'; pattern: string }
  | { type: 'grammar'; grammar: string };

/** A constraint webq builds itself (tool calls): an XGrammar structural tag. */
export interface StructuralTagConstraint {
  type: 'structural_tag';
  format: Record<string, unknown>;
}

export type Constraint = Exclude<ResponseFormat, { type: 'text' }> | StructuralTagConstraint;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Regex features the engine refuses, found before it aborts on them. */
const UNSUPPORTED_REGEX: [RegExp, string][] = [
  [/\(\?<?[=!]/, 'lookahead and lookbehind'],
  [/\\[1-9]/, 'backreferences'],
  [/\\[bB]/, 'word boundaries (\\b, \\B)'],
];

export function checkRegex(pattern: unknown, where: string): asserts pattern is string {
  if (typeof pattern !== 'string' || pattern === '') throw new ConstraintError('BAD_REGEX', `${where}: expected a non-empty regex string, got ${JSON.stringify(pattern)}`);
  try {
    new RegExp(pattern, 'u');
  } catch (e) {
    throw new ConstraintError('BAD_REGEX', `${where}: ${JSON.stringify(pattern)} is not a valid regular expression: ${e instanceof Error ? e.message : e}`);
  }
  for (const [re, what] of UNSUPPORTED_REGEX) {
    if (re.test(pattern.replace(/\\\\/g, ''))) throw new ConstraintError('BAD_REGEX', `${where}: ${JSON.stringify(pattern)} uses ${what}, which the constraint engine does not support`);
  }
}

/**
 * Checks `format` (as given by a caller) and returns the constraint, or null for none (`text`).
 * `where` names the option in messages, e.g. "response_format".
 */
export function parseResponseFormat(format: unknown, where: string): Constraint | null {
  if (format === undefined || format === null) return null;
  if (!isObject(format)) throw new ConstraintError('BAD_RESPONSE_FORMAT', `${where}: expected an object like { type: 'json_object' }, got ${Array.isArray(format) ? 'an array' : typeof format}`);
  switch (format.type) {
    case 'text':
      return null;
    case 'json_object':
      return { type: 'json_object' };
    case 'json_schema': {
      const js = format.json_schema;
      if (!isObject(js)) throw new ConstraintError('BAD_RESPONSE_FORMAT', `${where}.json_schema: expected { name, schema, strict? }, got ${JSON.stringify(js) ?? 'undefined'}`);
      if (typeof js.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(js.name)) {
        throw new ConstraintError('BAD_RESPONSE_FORMAT', `${where}.json_schema.name: expected 1-64 letters, digits, _ or -, got ${JSON.stringify(js.name)}`);
      }
      const schema = js.schema ?? {};
      checkSchema(schema, `${where}.json_schema.schema (${js.name})`);
      return { type: 'json_schema', json_schema: { name: js.name, schema: schema as Record<string, unknown> | boolean, strict: js.strict as boolean | null | undefined } };
    }
    case 'regex':
      checkRegex(format.pattern, `${where}.pattern`);
      return { type: 'regex', pattern: format.pattern };
    case 'grammar': {
      const g = format.grammar;
      if (typeof g !== 'string' || !/(^|\n)\s*root\s*::=/.test(g)) {
        throw new ConstraintError('BAD_GRAMMAR', `${where}.grammar: expected EBNF/GBNF text with a rule 'root ::= ...', got ${typeof g === 'string' ? JSON.stringify(g.slice(0, 80)) : typeof g}`);
      }
      return { type: 'grammar', grammar: g };
    }
    default:
      throw new ConstraintError('BAD_RESPONSE_FORMAT', `${where}.type: expected 'text', 'json_object', 'json_schema', 'regex' or 'grammar', got ${JSON.stringify(format.type)}`);
  }
}

/** A stable key for caching compiled constraints. */
export function constraintKey(c: Constraint): string {
  return JSON.stringify(c);
}
