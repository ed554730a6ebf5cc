/**
 * Checks a JSON Schema before the engine sees it. XGrammar enforces the keywords listed here and
 * silently ignores others (multipleOf, uniqueItems, not, if/then, contains), which would let an
 * output through that a validator rejects: those are refused by name, with the path to them.
 */
import { ConstraintError } from './errors.ts';

/** Keywords the engine enforces. */
const ENFORCED = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'prefixItems', 'minItems', 'maxItems',
  'enum', 'const', 'anyOf', 'allOf', '$ref', '$defs', 'definitions', 'minimum', 'maximum', 'exclusiveMinimum',
  'exclusiveMaximum', 'pattern', 'format', 'minLength', 'maxLength', 'minProperties', 'maxProperties', 'patternProperties',
]);
/** Keywords that say nothing about which values are valid. */
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated', 'readOnly', 'writeOnly']);
const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean', 'null']);
const FORMATS = new Set(['date', 'time', 'date-time', 'duration', 'email', 'uuid', 'ipv4', 'ipv6', 'hostname', 'uri']);
const HINTS: Record<string, string> = {
  oneOf: 'use anyOf (the engine cannot exclude values that match two branches)',
  not: 'describe the allowed values positively instead',
  multipleOf: 'use an enum or a range',
};

function fail(where: string, path: string, msg: string): never {
  throw new ConstraintError('BAD_SCHEMA', `${where}: ${path || '(root)'}: ${msg}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Throws BAD_SCHEMA naming the first problem in `schema` (`where` says which schema, e.g. "response_format.json_schema.schema"). */
export function checkSchema(schema: unknown, where: string): void {
  if (typeof schema === 'boolean') return;
  if (!isObject(schema)) fail(where, '', `a schema must be an object (or true/false), got ${Array.isArray(schema) ? 'an array' : schema === null ? 'null' : typeof schema}`);
  walk(schema, schema, where, '', new Set());
}

function walk(s: unknown, root: Record<string, unknown>, where: string, path: string, seen: Set<unknown>): void {
  if (typeof s === 'boolean') return;
  if (!isObject(s)) fail(where, path, `expected a schema object, got ${Array.isArray(s) ? 'an array' : s === null ? 'null' : typeof s}`);
  if (seen.has(s)) return;
  seen.add(s);
  for (const k of Object.keys(s)) {
    if (ENFORCED.has(k) || ANNOTATIONS.has(k)) continue;
    fail(where, path, `keyword '${k}' is not supported by the constraint engine${HINTS[k] ? `; ${HINTS[k]}` : ''} (supported: ${[...ENFORCED].join(', ')})`);
  }
  const at = (k: string) => `${path}/${k}`;
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    for (const t of types) if (typeof t !== 'string' || !TYPES.has(t)) fail(where, at('type'), `unknown type ${JSON.stringify(t)}; use ${[...TYPES].join(', ')}`);
  }
  if (s.properties !== undefined) {
    if (!isObject(s.properties)) fail(where, at('properties'), 'must be an object of schemas');
    for (const [k, v] of Object.entries(s.properties)) walk(v, root, where, `${at('properties')}/${k}`, seen);
  }
  if (s.required !== undefined && (!Array.isArray(s.required) || s.required.some((r) => typeof r !== 'string'))) fail(where, at('required'), 'must be an array of property names');
  if (s.additionalProperties !== undefined) walk(s.additionalProperties, root, where, at('additionalProperties'), seen);
  if (s.patternProperties !== undefined) {
    if (!isObject(s.patternProperties)) fail(where, at('patternProperties'), 'must be an object of schemas');
    for (const [k, v] of Object.entries(s.patternProperties)) walk(v, root, where, `${at('patternProperties')}/${k}`, seen);
  }
  if (s.items !== undefined) walk(s.items, root, where, at('items'), seen);
  if (s.prefixItems !== undefined) {
    if (!Array.isArray(s.prefixItems)) fail(where, at('prefixItems'), 'must be an array of schemas');
    s.prefixItems.forEach((v, i) => walk(v, root, where, `${at('prefixItems')}/${i}`, seen));
  }
  for (const k of ['anyOf', 'allOf'] as const) {
    if (s[k] === undefined) continue;
    const list = s[k];
    if (!Array.isArray(list) || list.length === 0) fail(where, at(k), 'must be a non-empty array of schemas');
    if (k === 'allOf' && list.length > 1) fail(where, at(k), 'allOf with more than one schema is not supported by the constraint engine; merge them into one');
    list.forEach((v, i) => walk(v, root, where, `${at(k)}/${i}`, seen));
  }
  for (const k of ['$defs', 'definitions'] as const) {
    if (s[k] === undefined) continue;
    if (!isObject(s[k])) fail(where, at(k), 'must be an object of schemas');
    for (const [n, v] of Object.entries(s[k] as object)) walk(v, root, where, `${at(k)}/${n}`, seen);
  }
  if (s.$ref !== undefined) {
    if (typeof s.$ref !== 'string') fail(where, at('$ref'), 'must be a string');
    if (resolveRef(root, s.$ref) === undefined) fail(where, at('$ref'), `${JSON.stringify(s.$ref)} does not resolve inside the schema (use "#" or "#/$defs/Name")`);
  }
  if (s.enum !== undefined && (!Array.isArray(s.enum) || s.enum.length === 0)) fail(where, at('enum'), 'must be a non-empty array');
  for (const k of ['minItems', 'maxItems', 'minLength', 'maxLength', 'minProperties', 'maxProperties']) {
    if (s[k] !== undefined && !isCount(s[k])) fail(where, at(k), `must be a non-negative integer, got ${JSON.stringify(s[k])}`);
  }
  for (const [lo, hi] of [['minItems', 'maxItems'], ['minLength', 'maxLength'], ['minProperties', 'maxProperties'], ['minimum', 'maximum']] as const) {
    if (typeof s[lo] === 'number' && typeof s[hi] === 'number' && (s[lo] as number) > (s[hi] as number)) fail(where, path, `${lo} ${s[lo]} is greater than ${hi} ${s[hi]}`);
  }
  for (const k of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) {
    if (s[k] !== undefined && (typeof s[k] !== 'number' || !Number.isFinite(s[k]))) fail(where, at(k), `must be a finite number, got ${JSON.stringify(s[k])}`);
  }
  if (s.pattern !== undefined) {
    if (typeof s.pattern !== 'string') fail(where, at('pattern'), 'must be a string');
    try {
      new RegExp(s.pattern, 'u');
    } catch (e) {
      fail(where, at('pattern'), `is not a valid regular expression: ${e instanceof Error ? e.message : e}`);
    }
  }
  if (s.format !== undefined && (typeof s.format !== 'string' || !FORMATS.has(s.format))) {
    fail(where, at('format'), `format ${JSON.stringify(s.format)} is not supported; use one of ${[...FORMATS].join(', ')} or a pattern`);
  }
}

/** A local JSON pointer ("#", "#/$defs/A") inside `root`; undefined when it does not resolve. */
function resolveRef(root: Record<string, unknown>, ref: string): unknown {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let cur: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObject(cur) || !(part in cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}
