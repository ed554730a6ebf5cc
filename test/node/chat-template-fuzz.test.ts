// Seeded fuzz of hostile chat templates (issue 29): the reproducers, and generated templates that
// loop, recurse, nest, double strings and lists, and feed the results to filters that amplify
// them (join, tojson(indent), indent, replace, split, string concatenation). Each must end in a
// rendered string within maxChars or a ChatTemplateError (CHAT_TEMPLATE or CHAT_TEMPLATE_LIMIT),
// within a few seconds, without printing function source; a render that succeeds must equal what
// @huggingface/jinja renders unconfined (the same work, known now to be bounded). Every failure is
// listed with its seed and template. FUZZ_SEED=n FUZZ_CASES=m rerun other cases.
import { Template } from '@huggingface/jinja';
import { describe, expect, it } from 'vitest';
import { ChatTemplate, ChatTemplateError, type TemplateLimits } from '../../src/text/chat-template.ts';
import { rng } from '../kernels/check.ts';

const FIRST_SEED = Number(process.env.FUZZ_SEED ?? 1);
const CASES = Number(process.env.FUZZ_CASES ?? 2000);
// Smaller than the defaults so the cases that run to a limit stay quick; the mechanisms are the same.
const LIMITS: Partial<TemplateLimits> = { maxSteps: 200_000, maxMillis: 500, maxChars: 1 << 20, maxItems: 1 << 16 };
/** Wall-clock bound per case: maxMillis plus one bounded step, on a busy 2-core machine. */
const CASE_MS = 5_000;
const SOURCE = /=>|function\s*\w*\s*\(|native code/;
const MESSAGES = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hello\nthere, a b c' },
];

const REPRODUCERS = [
  '{{ range(10**9)|length }}',
  '{% for i in range(10**9) %}{% endfor %}',
  '{% for i in range(10**8) %}{% endfor %}',
  '{% macro f(n) %}{% if n > 0 %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}',
  '{% macro f(x=f) %}{{ x }}{% endmacro %}{{ f() }}',
  "{{ 'a' * 10**9 }}",
  "{{ 'a' * 1000 * 1000 }}",
];

function generator(seed: number) {
  const r = rng(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const NUMBERS = ['10**9', '10**8', '2**31', '10**6', '100000', '100001', '65536', '1000', '37', '3', '1', '0', '-1', '2**53', '1.5', "'7'"];
  const STRINGS = ["''", "'a'", "'ab'", "' '", "','", "'\\n'", "'xxxxxxxxxxxxxxxx'", 'messages[1].content', 'ns.s', "(ns.s ~ ns.s)"];
  const LISTS = ['messages', 'range(N)', '[1, 2, 3]', '[ns.s, ns.s]', 'ns.l', '(ns.l + ns.l)', "ns.s.split()", "ns.s.split(',')", "{'k': ns.s}", 'ns'];
  const FILTERS = [
    'length', 'join', "join(S)", 'tojson', 'tojson(indent=N)', 'string', 'indent(N)', "replace('a', S)", "replace('', S)", 'sort', 'unique', 'reverse',
    'list', 'first', 'last', 'upper', 'trim', 'items', "map(attribute='content')", "selectattr('role', 'equalto', 'user')", 'int', 'default(S)',
  ];
  const sub = (e: string): string => e.replace(/\bN\b/g, () => pick(NUMBERS)).replace(/\bS\b/g, () => pick(STRINGS));
  const atom = (): string => sub(pick([...STRINGS, ...LISTS, 'N', 'range', 'none', 'loop', 'namespace']));
  const expr = (depth: number): string => {
    if (depth <= 0 || r() < 0.3) return atom();
    switch (int(0, 5)) {
      case 0:
        return `(${expr(depth - 1)} ${pick(['~', '+', '*', 'in', '==', '-', '**', 'and', 'or'])} ${expr(depth - 1)})`;
      case 1:
        return `${expr(depth - 1)}|${sub(pick(FILTERS))}`;
      case 2:
        return `${expr(depth - 1)}.${pick(['split()', "split(',')", "replace('a', S)", "replace('', S)", 'upper()', 'strip()', 'items()'])}`.replace(/\bS\b/g, () => pick(STRINGS));
      case 3:
        return `${expr(depth - 1)}[${pick(['0', '-1', '::-1', '1:', 'N:', ':N'])}]`.replace(/\bN\b/g, () => pick(NUMBERS));
      case 4:
        return `(${expr(depth - 1)} if ${expr(depth - 1)} else ${expr(depth - 1)})`;
      default:
        return `range(${pick(NUMBERS)}, ${pick(NUMBERS)}, ${pick(NUMBERS)})`;
    }
  };
  // Grows ns.s and ns.l by doubling, the cheap way to big values.
  // Half the time a little, half the time far past every limit.
  const times = () => (r() < 0.5 ? int(0, 6) : int(0, 40));
  const grow = () =>
    `{% set ns = namespace(s=${pick(["'a'", "'a,'", "'a b '", "'\\n'"])}, l=[1]) %}` +
    `{% for i in range(${times()}) %}{% set ns.s = ns.s ${pick(['~', '+'])} ns.s %}{% endfor %}` +
    `{% for i in range(${times()}) %}{% set ns.l = ns.l + ${pick(['ns.l', '[ns.s]', '[ns.l]'])} %}{% endfor %}`;
  const statement = (depth: number): string => {
    if (depth <= 0 || r() < 0.25) return `{{ ${expr(3)} }}`;
    switch (int(0, 6)) {
      case 0:
        return `{% for x${depth} in ${expr(2)} %}${statement(depth - 1)}{% endfor %}`;
      case 1:
        return `{% if ${expr(2)} %}${statement(depth - 1)}{% else %}${statement(depth - 1)}{% endif %}`;
      case 2: {
        const calls = int(0, 3);
        const base = r() < 0.5 ? '{% if n > 0 %}' : '{% if true %}';
        return `{% macro f(n, x=f) %}${base}${'{{ f(n - 1) }}'.repeat(calls)}${statement(depth - 1)}{% endif %}{% endmacro %}{{ f(${pick(NUMBERS)}) }}`;
      }
      case 3:
        return `{% set y = ${expr(3)} %}{{ y }}${statement(depth - 1)}`;
      case 4:
        return `{% filter ${sub(pick(['upper', 'indent(N)', "replace('a', S)", 'trim']))} %}${statement(depth - 1)}{% endfilter %}`;
      case 5:
        return `{% set ns.self = ns %}{{ ${pick(['ns', 'ns|tojson', "ns == 'x'", 'ns.self.self'])} }}`;
      default:
        return pick(['{% if true %}', '{{ (', '{{ [']).repeat(int(1, 3000)) + 'x';
    }
  };
  return () => (r() < 0.05 ? pick(REPRODUCERS) : grow() + statement(int(1, 4)));
}

/**
 * Templates from a grammar with nothing big in it (loops over the messages and short lists, no
 * recursion, no growth), so the library can run them unconfined beside us: the constructs real
 * templates use, in random combinations.
 */
function benignGenerator(seed: number) {
  const r = rng(seed);
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const ATOMS = [
    'messages', 'messages[0]', 'messages[-1].content', "messages[0]['role']", 'messages[1:]', 'messages[::-1]', "'a b\\nc'", "''", '3', '-2', '1.5',
    'true', 'none', '[1, 2, 3]', "['x', 'y']", "{'k': 'v', 'n': 2}", 'range(4)', 'range(1, 7, 2)', 'ns.n', 'ns.s', 'add_generation_prompt', 'undefined_name',
    "messages|selectattr('role', 'equalto', 'user')|list", "messages|rejectattr('role', 'equalto', 'system')|list", "messages|map(attribute='content')|list",
  ];
  const FILTERS = [
    'length', 'first', 'last', 'upper', 'lower', 'trim', 'title', 'capitalize', 'string', 'tojson', 'tojson(indent=2)', 'list', 'reverse', 'sort',
    'unique', 'join', "join(', ')", 'indent(2)', "indent(4, true)", "replace('a', 'b')", "replace('', '-')", 'int', 'float', 'abs', "default('d')", 'items',
    "map(attribute='role')", "selectattr('role', 'equalto', 'user')", "rejectattr('role')", 'dictsort', 'safe',
  ];
  const METHODS = ['strip()', 'upper()', "split()", "split('a')", "replace('x', 'y')", "startswith('H')", "endswith(('a', 'b'))", 'items()', 'keys()', 'values()', "get('k', 0)", 'lstrip()'];
  const expr = (d: number): string => {
    if (d <= 0 || r() < 0.35) return pick(ATOMS);
    switch (Math.floor(r() * 6)) {
      case 0:
        return `(${expr(d - 1)} ${pick(['~', '+', '-', '*', '/', '//', '%', '==', '!=', '<', '>=', 'in', 'not in', 'and', 'or', '**'])} ${expr(d - 1)})`;
      case 1:
        return `${expr(d - 1)}|${pick(FILTERS)}`;
      case 2:
        return `${expr(d - 1)}.${pick(METHODS)}`;
      case 3:
        return `(${expr(d - 1)} if ${expr(d - 1)} else ${expr(d - 1)})`;
      case 4:
        return `(${expr(d - 1)} is ${pick(['defined', 'none', 'string', 'number', 'mapping', 'iterable', 'odd', 'even', 'true'])})`;
      default:
        return `${pick(['not ', '-'])}${expr(d - 1)}`;
    }
  };
  const stmt = (d: number): string => {
    if (d <= 0 || r() < 0.3) return r() < 0.2 ? pick(['text ', '\n', '<|im_start|>']) : `{{ ${expr(2)} }}`;
    switch (Math.floor(r() * 7)) {
      case 0:
        return `{% for ${pick(['m', 'x'])} in ${pick(['messages', '[1, 2, 3]', "{'a': 1, 'b': 2}", 'range(3)', 'messages[::-1]', "messages if m is defined"])} %}{{ loop.index }}${stmt(d - 1)}{% ${pick(['', 'if loop.first %}{% break %}{% endif', 'if loop.last %}{% continue %}{% endif'])} %}{% else %}none{% endfor %}`.replace('{%  %}', '');
      case 1:
        return `{% if ${expr(2)} %}${stmt(d - 1)}{% elif ${expr(1)} %}${stmt(d - 1)}{% else %}${stmt(d - 1)}{% endif %}`;
      case 2:
        return `{% set ${pick(['y', 'ns.n', 'ns.s', '(a, b)'])} = ${expr(2)} %}${stmt(d - 1)}`;
      case 3:
        return `{% macro g(a, b=2) %}[{{ a }}|{{ b }}]${stmt(d - 1)}{% endmacro %}{{ g(${expr(1)}) }}{{ g(1, b=${expr(1)}) }}`;
      case 4:
        return `{% filter ${pick(['upper', 'trim', 'indent(2)', "replace('e', 'E')"])} %}${stmt(d - 1)}{% endfilter %}`;
      case 5:
        return `{% set cap %}${stmt(d - 1)}{% endset %}{{ cap|length }}`;
      default:
        return `{% macro w() %}<{{ caller() }}>{% endmacro %}{% call w() %}${stmt(d - 1)}{% endcall %}`;
    }
  };
  return () => `{% set ns = namespace(n=1, s='q') %}${stmt(3)}${stmt(2)}`;
}

describe('chat template fuzz', () => {
  it(`${CASES} seeded templates of the constructs real ones use: the library's output exactly, and its failures`, () => {
    const failures: string[] = [];
    const counts = { same: 0, bothFail: 0 };
    for (let seed = FIRST_SEED; seed < FIRST_SEED + CASES; seed++) {
      const src = benignGenerator(seed)();
      const fail = (why: string) => failures.push(`seed ${seed}: ${why}\n  template: ${src.slice(0, 400)}`);
      const run = (f: () => string) => {
        try {
          return { out: f() };
        } catch (e) {
          return { error: e };
        }
      };
      const lib = run(() => new Template(src).render({ messages: MESSAGES, add_generation_prompt: true }));
      const ours = run(() => ChatTemplate.fromString(src, {}, 'fuzz').render(MESSAGES, { addGenerationPrompt: true }));
      if (lib.out !== undefined && SOURCE.test(lib.out)) continue; // we print <function> on purpose
      if (ours.error !== undefined && !(ours.error instanceof ChatTemplateError && ours.error.code === 'CHAT_TEMPLATE')) fail(`threw ${String(ours.error)}`);
      else if ((lib.out === undefined) !== (ours.out === undefined)) fail(`library ${lib.out === undefined ? `failed (${String(lib.error)})` : 'rendered'}, webq ${ours.out === undefined ? `failed (${String(ours.error)})` : 'rendered'}`);
      else if (lib.out !== ours.out) fail(`differs: ${JSON.stringify(ours.out?.slice(0, 100))} vs ${JSON.stringify(lib.out?.slice(0, 100))}`);
      else counts[lib.out === undefined ? 'bothFail' : 'same']++;
    }
    console.log(`benign template fuzz: ${CASES} cases: ${counts.same} rendered as the library does, ${counts.bothFail} failed where it fails`);
    expect(failures, failures.slice(0, 20).join('\n')).toEqual([]);
    expect(counts.same).toBeGreaterThan(CASES / 8);
  });


  it(`${CASES} seeded hostile templates from seed ${FIRST_SEED}: a result or a typed error, quickly, no source`, () => {
    const failures: string[] = [];
    const counts = { rendered: 0, limit: 0, error: 0, same: 0 };
    const t0 = performance.now();
    for (let seed = FIRST_SEED; seed < FIRST_SEED + CASES; seed++) {
      const src = generator(seed)();
      const fail = (why: string) => failures.push(`seed ${seed}: ${why}\n  template: ${src.slice(0, 400)}`);
      const start = performance.now();
      let out: string | undefined;
      try {
        let t: ChatTemplate;
        try {
          t = ChatTemplate.fromString(src, {}, 'fuzz');
        } catch (e) {
          if (!(e instanceof ChatTemplateError) || e.code !== 'CHAT_TEMPLATE') fail(`compile threw ${e instanceof Error ? `${e.name} ${e.message}` : e}`);
          counts.error++;
          continue;
        }
        out = t.render(MESSAGES, { limits: LIMITS });
        counts.rendered++;
      } catch (e) {
        if (!(e instanceof ChatTemplateError) || (e.code !== 'CHAT_TEMPLATE' && e.code !== 'CHAT_TEMPLATE_LIMIT')) fail(`threw ${e instanceof Error ? `${e.name} ${e.message}` : e}`);
        else if (SOURCE.test(e.message)) fail(`error shows source: ${e.message.slice(0, 200)}`);
        counts[e instanceof ChatTemplateError && e.code === 'CHAT_TEMPLATE_LIMIT' ? 'limit' : 'error']++;
      }
      const ms = performance.now() - start;
      if (ms > CASE_MS) fail(`took ${ms.toFixed(0)} ms`);
      if (out === undefined) continue;
      if (out.length > LIMITS.maxChars!) fail(`rendered ${out.length} characters`);
      if (SOURCE.test(out)) fail(`output shows source: ${out.slice(0, 200)}`);
      // Where the library prints a function's source, the outputs differ on purpose.
      const lib = new Template(src).render({ messages: MESSAGES, add_generation_prompt: false });
      if (SOURCE.test(lib)) continue;
      if (lib !== out) fail(`differs from the library: ${JSON.stringify(out.slice(0, 100))} vs ${JSON.stringify(lib.slice(0, 100))}`);
      else counts.same++;
    }
    const seconds = (performance.now() - t0) / 1000;
    console.log(`chat template fuzz: ${CASES} cases in ${seconds.toFixed(1)} s: ${counts.rendered} rendered (${counts.same} equal to the library), ${counts.limit} CHAT_TEMPLATE_LIMIT, ${counts.error} CHAT_TEMPLATE`);
    expect(failures, failures.join('\n')).toEqual([]);
    // The generator must reach all three outcomes, or it tests less than it claims.
    expect(counts.rendered).toBeGreaterThan(CASES / 20);
    expect(counts.limit).toBeGreaterThan(CASES / 20);
    expect(counts.same).toBeGreaterThan(CASES / 40);
  });
});
