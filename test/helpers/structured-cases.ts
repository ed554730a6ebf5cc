/**
 * JSON Schemas, regexes and a grammar for the constrained-decoding tests and the structured bench,
 * with a checker for the grammar. Strings are bounded (maxLength) so that a random model, which
 * almost never closes a free string, still ends within a few dozen tokens.
 */
export const SCHEMAS: Record<string, Record<string, unknown>> = {
  nested: {
    type: 'object',
    properties: { user: { type: 'object', properties: { name: { type: 'string', maxLength: 6 }, age: { type: 'integer', minimum: 0, maximum: 99 } }, required: ['name', 'age'] }, active: { type: 'boolean' } },
    required: ['user', 'active'],
  },
  arrayOfObjects: {
    type: 'object',
    properties: { items: { type: 'array', minItems: 1, maxItems: 3, items: { type: 'object', properties: { id: { type: 'integer', minimum: 1, maximum: 50 }, tag: { enum: ['red', 'green', 'blue'] } }, required: ['id', 'tag'] } } },
    required: ['items'],
  },
  enumLabel: { type: 'object', properties: { label: { enum: ['positive', 'negative', 'neutral', 'mixed', 'unknown'] } }, required: ['label'] },
  integerRanges: { type: 'object', properties: { x: { type: 'integer', minimum: -10, maximum: 10 }, y: { type: 'integer', minimum: 100, maximum: 200 } }, required: ['x', 'y'] },
  optionalFields: {
    type: 'object',
    properties: { a: { type: 'integer', minimum: 0, maximum: 9 }, b: { type: 'string', maxLength: 4 }, c: { type: 'boolean' } },
    required: ['a'],
  },
  refs: {
    $defs: { point: { type: 'object', properties: { x: { type: 'integer', minimum: 0, maximum: 9 }, y: { type: 'integer', minimum: 0, maximum: 9 } }, required: ['x', 'y'] } },
    type: 'object',
    properties: { from: { $ref: '#/$defs/point' }, to: { $ref: '#/$defs/point' } },
    required: ['from', 'to'],
  },
  anyOf: { type: 'object', properties: { v: { anyOf: [{ type: 'integer', minimum: 0, maximum: 9 }, { enum: ['x', 'y'] }] } }, required: ['v'] },
  constAndNull: {
    type: 'object',
    properties: { kind: { const: 'circle' }, r: { type: 'integer', minimum: 1, maximum: 9 }, note: { type: ['string', 'null'], maxLength: 3 } },
    required: ['kind', 'r', 'note'],
  },
  enumArray: { type: 'object', properties: { tags: { type: 'array', minItems: 1, maxItems: 3, items: { enum: ['a', 'b', 'c'] } } }, required: ['tags'] },
  topLevelArray: { type: 'array', minItems: 2, maxItems: 2, items: { type: 'boolean' } },
};

export const REGEXES = ['[0-9]{3}-[a-z]{2,4}', '(yes|no|maybe)', '[A-Z][a-z]{1,5} [0-9]{1,2}', '#[0-9a-f]{6}', '(ab|cd)+x'];

/** Sums of one- or two-digit numbers with parentheses, as GBNF-style EBNF. */
export const ARITH_GRAMMAR = `root ::= expr
expr ::= term (("+" | "-") term){0,3}
term ::= num | "(" expr ")"
num ::= [0-9] [0-9]?
`;

/** True when `s` is exactly an `expr` of ARITH_GRAMMAR (recursive descent). */
export function parsesArith(s: string): boolean {
  let i = 0;
  const num = () => {
    if (!/[0-9]/.test(s[i] ?? '')) return false;
    i++;
    if (/[0-9]/.test(s[i] ?? '')) i++;
    return true;
  };
  const term = (): boolean => {
    if (s[i] === '(') {
      i++;
      if (!expr() || s[i] !== ')') return false;
      i++;
      return true;
    }
    return num();
  };
  const expr = (): boolean => {
    if (!term()) return false;
    for (let k = 0; k < 3 && (s[i] === '+' || s[i] === '-'); k++) {
      i++;
      if (!term()) return false;
    }
    return true;
  };
  return expr() && i === s.length;
}
