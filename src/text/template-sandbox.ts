/**
 * Renders a parsed chat template with bounded work. A chat template ships with the model, so
 * whoever publishes a model writes code that runs here.
 *
 * What a template can reach is already confined by @huggingface/jinja: a name resolves only in
 * the template's own environment (the variables passed in and the globals set below: true, false,
 * none, range, namespace, raise_exception, strftime_now), and an attribute only in a value's own
 * Map (a dict's keys, a string's methods), so no JavaScript global, prototype, file or network
 * is reachable. What it does not bound is work: `range(10**9)` allocates a billion-element array
 * and kills the process, `{% for i in range(10**8) %}` or a macro calling itself twice per level
 * runs for hours, and a function printed as text shows the engine's JavaScript source.
 *
 * So this interpreter counts as it goes (TemplateLimits, values in TEMPLATE_LIMITS):
 *
 *   steps   every node evaluated is one; work over n items is n more (4n for a for loop's
 *           iterations; a filter's pass over a list, a list a call or `+` builds, an `in` scan)
 *   time    the clock is read every 64 steps; a single step is bounded by the size limits
 *   chars   every string made, and the text written in all ({{ }} and text, counted where it is
 *           written, so text a macro returns counts once inside it and again where it is printed)
 *   items   every list and mapping made; range() past maxRange is refused before it allocates
 *   calls   macro (and call) nesting; depth: evaluation nesting, and the nesting of a list or
 *           mapping written as text, so the JavaScript stack cannot overflow
 *
 * Where a result's size is known before it is built (range, `~` and `+`, join, replace, split,
 * indent, tojson, a list or mapping turned into text) the limit is checked first; every value made
 * is checked too. Past a limit: ChatTemplateError CHAT_TEMPLATE_LIMIT. Functions print as
 * "<function>", never as source.
 *
 * How: the interpreter's public `evaluate` is the door every node goes through. For the nodes
 * whose cost depends on their operands (for loops, binary operators, filters, calls) this class
 * evaluates the operands itself, checks them, and hands the base class the same node with the
 * operands replaced by their values (VALUE nodes, returned as they are), so nothing is evaluated
 * twice and the library's own semantics stay.
 */
import { Environment, Interpreter } from '@huggingface/jinja';
import { limitError } from './chat-template-error.ts';
import { hideSource, templateGlobals } from './template-globals.ts';
import type { TemplateLimits } from './template-limits.ts';


type Statement = NonNullable<Parameters<Interpreter['evaluate']>[0]>;
type Value = ReturnType<Interpreter['evaluate']>;
type Program = Parameters<Interpreter['run']>[0];
/** @huggingface/jinja's AST classes are not exported: nodes are read by `type` and fields. */
type Node = Statement & Record<string, any>;

/** A node standing for an already evaluated value. */
const VALUE = 'WebqValue';
const valueNode = (value: Value): Statement => ({ type: VALUE, value }) as unknown as Statement;

/** Argument nodes kept as they are: cheap to evaluate again, and some filters look at their type. */
const LITERALS = new Set(['StringLiteral', 'IntegerLiteral', 'FloatLiteral']);
/** Steps per for-loop iteration. */
const ITERATION_STEPS = 4;
/** Statements whose value evaluateBlock does not write itself (it writes their own output). */
const BLOCKS = new Set(['If', 'For', 'Set', 'Macro', 'CallStatement', 'FilterStatement', 'Comment', 'Break', 'Continue']);
/** Filters that do not pass over their list (no step per item). */
const CONSTANT_FILTERS = new Set(['length', 'first', 'last', 'default', 'safe', 'list', 'string', 'tojson', 'bool', 'int', 'float', 'abs', 'trim']);
const isList = (v: Value) => v.type === 'ArrayValue' || v.type === 'TupleValue';
const isMapping = (v: Value) => v.type === 'ObjectValue' || v.type === 'KeywordArgumentsValue' || v.type === 'NamespaceValue';

/** Items of a list or mapping; 0 for anything else. */
function itemCount(v: Value): number {
  if (isList(v)) return (v.value as Value[]).length;
  if (isMapping(v)) return (v.value as Map<string, Value>).size;
  return 0;
}

/** Occurrences of `part` in `s` (non-overlapping, as replace and split count them). */
function occurrences(s: string, part: string): number {
  if (part === '') return s.length + 1;
  let n = 0;
  for (let i = s.indexOf(part); i >= 0; i = s.indexOf(part, i + part.length)) n++;
  return n;
}

/** A value written as text: characters (an upper bound before JSON escapes), values in it, and nesting. */
interface TextSize {
  chars: number;
  nodes: number;
  depth: number;
}

class ConfinedInterpreter extends Interpreter {
  private steps = 0;
  private written = 0;
  private depth = 0;
  private callDepth = 0;
  private readonly deadline: number;
  /** Statements directly in a block: evaluateBlock writes their value as text. */
  private readonly outputs = new WeakSet<object>();
  /** Text sizes of lists and mappings, which do not change once made (namespaces can: not kept). */
  private readonly sizes = new WeakMap<object, TextSize>();

  constructor(
    env: Environment,
    private readonly limits: TemplateLimits,
  ) {
    super(env);
    this.deadline = performance.now() + limits.maxMillis;
  }

  override evaluate(statement: Statement | undefined, environment: Environment): Value {
    if (statement === undefined) return super.evaluate(statement, environment);
    const node = statement as Node;
    if (node.type === VALUE) return node.value as Value;
    this.step(1);
    try {
      if (++this.depth > this.limits.maxDepth) throw limitError(`nests deeper than ${this.limits.maxDepth} levels (maxDepth)`);
      const v = this.dispatch(node, environment);
      this.checkValue(node, v);
      return v;
    } finally {
      this.depth--;
    }
  }

  private dispatch(node: Node, env: Environment): Value {
    for (const key of ['body', 'alternate', 'defaultBlock']) {
      const block = node[key];
      if (Array.isArray(block)) for (const s of block) this.outputs.add(s);
    }
    switch (node.type) {
      case 'For':
        return this.loop(node, env);
      case 'BinaryExpression':
        return this.binary(node, env);
      case 'FilterExpression':
        return this.filtered(node, env);
      case 'FilterStatement': {
        // {% filter f %}body{% endfilter %}: the body's text, then the same checks as {{ text|f }}.
        const text = super.evaluate({ type: 'Program', body: node.body } as unknown as Statement, env);
        return this.filtered({ type: 'FilterExpression', operand: valueNode(text), filter: node.filter } as Node, env);
      }
      case 'CallExpression':
        return this.called(node, env);
      case 'CallStatement':
        return this.nested(() => super.evaluate(node, env));
      case 'MemberExpression': {
        const v = super.evaluate(node, env);
        if (node.computed && node.property.type === 'SliceExpression') this.step(itemCount(v));
        return v;
      }
      default:
        return super.evaluate(node, env);
    }
  }

  /** Charges n steps; reads the clock every 64. */
  private step(n: number): void {
    const before = this.steps;
    this.steps += n;
    if (this.steps > this.limits.maxSteps) throw limitError(`takes more than ${this.limits.maxSteps} steps (maxSteps)`);
    if (before >>> 6 !== this.steps >>> 6 && performance.now() > this.deadline) {
      throw limitError(`takes longer than ${this.limits.maxMillis} ms (maxMillis)`);
    }
  }

  private checkValue(node: Node, v: Value): void {
    const { maxChars, maxItems } = this.limits;
    if (v.type === 'StringValue' && (v.value as string).length > maxChars) {
      throw limitError(`makes a string of ${(v.value as string).length} characters, more than ${maxChars} (maxChars)`);
    }
    const items = itemCount(v);
    if (items > maxItems) throw limitError(`makes a ${isList(v) ? 'list' : 'mapping'} of ${items} items, more than ${maxItems} (maxItems)`);
    if (v.type === 'FunctionValue') hideSource(v.value as object);
    if (this.outputs.has(node) && !BLOCKS.has(node.type) && v.type !== 'NullValue' && v.type !== 'UndefinedValue') {
      this.written += this.textChars(v);
      if (this.written > maxChars) throw limitError(`writes more than ${maxChars} characters (maxChars)`);
    }
  }

  /** Characters `v` takes as text, refused past maxChars before the text is made. */
  private textChars(v: Value): number {
    if (v.type === 'StringValue') return (v.value as string).length;
    const chars = this.textSize(v).chars;
    if (chars > this.limits.maxChars) throw limitError(`turns a ${isList(v) ? 'list' : 'mapping'} into more than ${this.limits.maxChars} characters of text (maxChars)`);
    return chars;
  }

  /**
   * The text a value turns into (toJSON for lists and mappings, "[object Map]" for a raw mapping),
   * walked without recursion and given up past maxChars (a namespace can hold itself).
   */
  private textSize(root: Value): TextSize {
    const known = this.sizes.get(root);
    if (known) return known;
    const { maxChars, maxDepth } = this.limits;
    const out: TextSize = { chars: 0, nodes: 0, depth: 0 };
    let namespace = false;
    const stack: [Value, number][] = [[root, 0]];
    while (stack.length > 0 && out.chars <= maxChars) {
      const [v, depth] = stack.pop()!;
      out.nodes++;
      if (depth > out.depth) out.depth = depth;
      if (depth > maxDepth) throw limitError(`writes lists or mappings nested deeper than ${maxDepth} levels (maxDepth)`);
      if (v.type === 'StringValue') out.chars += (v.value as string).length + 2;
      else if (isList(v)) {
        out.chars += 12;
        for (const x of v.value as Value[]) {
          out.chars += 2;
          stack.push([x, depth + 1]);
        }
      } else if (isMapping(v)) {
        out.chars += 12;
        namespace ||= v.type === 'NamespaceValue';
        for (const [k, x] of v.value as Map<string, Value>) {
          out.chars += k.length + 6;
          stack.push([x, depth + 1]);
        }
      } else out.chars += 24;
    }
    if (!namespace && out.chars <= maxChars && (isList(root) || isMapping(root))) this.sizes.set(root, out);
    this.step(out.nodes);
    return out;
  }

  private nested<T>(run: () => T): T {
    try {
      if (++this.callDepth > this.limits.maxCallDepth) throw limitError(`nests calls deeper than ${this.limits.maxCallDepth} (maxCallDepth: a macro that calls itself without end?)`);
      return run();
    } finally {
      this.callDepth--;
    }
  }

  private loop(node: Node, env: Environment): Value {
    const iterable = node.iterable as Node;
    const select = iterable.type === 'SelectExpression';
    const items = this.evaluate(select ? iterable.lhs : iterable, env);
    // Paid up front, so a loop with an empty body still costs: an iteration (a scope, the `loop`
    // mapping) takes the interpreter about as long as a few nodes.
    this.step(ITERATION_STEPS * itemCount(items));
    const given = valueNode(items);
    return super.evaluate({ ...node, iterable: select ? { ...iterable, lhs: given } : given } as Node, env);
  }

  private binary(node: Node, env: Environment): Value {
    const op = node.operator.value as string;
    if (op === 'and' || op === 'or') return super.evaluate(node, env); // short-circuits
    const left = this.evaluate(node.left, env);
    const right = this.evaluate(node.right, env);
    const { maxChars, maxItems } = this.limits;
    if (op === '~' || op === '+' || op === '==' || op === '!=') {
      // The library turns lists into text for ~, + with a string, and == against a string.
      if (op === '+' && isList(left) && isList(right)) {
        if (itemCount(left) + itemCount(right) > maxItems) throw limitError(`joins lists into more than ${maxItems} items (maxItems)`);
      } else if ((op !== '==' && op !== '!=') || left.type !== right.type) {
        if (this.textChars(left) + this.textChars(right) > maxChars) throw limitError(`joins strings into more than ${maxChars} characters (maxChars)`);
      }
    } else if (op === 'in' || op === 'not in') this.step(itemCount(right));
    else if (op === '*') {
      // String or list repetition (Python's 'ab' * 3), should the library support it.
      const [seq, n] = left.type === 'IntegerValue' ? [right, left] : [left, right];
      const length = seq.type === 'StringValue' ? (seq.value as string).length : itemCount(seq);
      if (n.type === 'IntegerValue' && length * Math.max(0, n.value as number) > (seq.type === 'StringValue' ? maxChars : maxItems)) {
        throw limitError(`repeats a ${seq.type === 'StringValue' ? 'string' : 'list'} of length ${length} ${n.value as number} times, past maxChars or maxItems`);
      }
    }
    const v = super.evaluate({ ...node, left: valueNode(left), right: valueNode(right) } as Node, env);
    this.step(itemCount(v));
    return v;
  }

  /** Evaluates call or filter arguments in the library's order; returns them as VALUE nodes. */
  private argumentValues(args: Node[], env: Environment): { nodes: Statement[]; positional: Value[]; keyword: Map<string, Value> } {
    const nodes: Statement[] = new Array(args.length);
    const positional: Value[] = [];
    const keyword = new Map<string, Value>();
    const isKeyword = (a: Node) => a.type === 'KeywordArgumentExpression' || a.type === 'KeywordSpreadExpression';
    args.forEach((a, i) => {
      if (isKeyword(a)) return;
      if (a.type === 'SpreadExpression') nodes[i] = { ...a, argument: valueNode(this.evaluate(a.argument, env)) } as Node;
      else {
        const v = this.evaluate(a, env);
        positional.push(v);
        nodes[i] = LITERALS.has(a.type) ? a : valueNode(v); // selectattr insists on literal arguments
      }
    });
    args.forEach((a, i) => {
      if (a.type === 'KeywordArgumentExpression') {
        const v = this.evaluate(a.value, env);
        keyword.set(a.key.value as string, v);
        nodes[i] = { ...a, value: valueNode(v) } as Node;
      } else if (a.type === 'KeywordSpreadExpression') nodes[i] = { ...a, argument: valueNode(this.evaluate(a.argument, env)) } as Node;
    });
    return { nodes, positional, keyword };
  }

  private filtered(node: Node, env: Environment): Value {
    const operand = this.evaluate(node.operand, env);
    let filter = node.filter as Node;
    let name = filter.type === 'Identifier' ? (filter.value as string) : '';
    let args: Value[] = [];
    let kwargs = new Map<string, Value>();
    if (filter.type === 'CallExpression') {
      name = filter.callee.type === 'Identifier' ? (filter.callee.value as string) : '';
      const a = this.argumentValues(filter.args as Node[], env);
      filter = { ...filter, args: a.nodes } as Node;
      args = a.positional;
      kwargs = a.keyword;
    }
    this.checkFilter(name, operand, args, kwargs);
    const v = super.evaluate({ ...node, operand: valueNode(operand), filter } as Node, env);
    this.step(itemCount(v));
    return v;
  }

  /** What a filter would make, refused before it is made when past a limit. */
  private checkFilter(name: string, operand: Value, args: Value[], kwargs: Map<string, Value>): void {
    const { maxChars } = this.limits;
    const arg = (i: number, key: string) => args[i] ?? kwargs.get(key);
    const int = (v: Value | undefined, fallback: number) => (v?.type === 'IntegerValue' ? Math.max(0, v.value as number) : fallback);
    if (!CONSTANT_FILTERS.has(name)) this.step(itemCount(operand));
    let chars = 0;
    if (name === 'join') {
      const sep = arg(0, 'separator');
      const count = operand.type === 'StringValue' ? (operand.value as string).length : itemCount(operand);
      chars = this.textChars(operand) + count * (sep?.type === 'StringValue' ? (sep.value as string).length : 0);
    } else if (name === 'string' || name === 'tojson') {
      if (!isList(operand) && !isMapping(operand)) return;
      this.textChars(operand);
      const size = this.textSize(operand);
      // tojson(indent=n) starts each value on a new line indented n per level.
      chars = size.chars + size.nodes * (1 + int(kwargs.get('indent'), 0) * (size.depth + 1));
    } else if (operand.type === 'StringValue' && name === 'indent') {
      const s = operand.value as string;
      chars = s.length + occurrences(s, '\n') * int(arg(0, 'width'), 4);
    } else if (operand.type === 'StringValue' && name === 'replace') {
      chars = this.replacedLength(operand.value as string, args);
    }
    if (chars > maxChars) throw limitError(`filter ${name} would make about ${chars} characters, more than ${maxChars} (maxChars)`);
  }

  /** Length of s.replace(old, new[, count]). */
  private replacedLength(s: string, args: Value[]): number {
    const [from, to, count] = args;
    if (from?.type !== 'StringValue' || to?.type !== 'StringValue') return s.length; // the library refuses it
    let n = occurrences(s, from.value as string);
    if (count?.type === 'IntegerValue' && (count.value as number) >= 0) n = Math.min(n, count.value as number);
    return s.length + n * ((to.value as string).length - (from.value as string).length);
  }

  private called(node: Node, env: Environment): Value {
    const a = this.argumentValues(node.args as Node[], env);
    // Arguments may become text: raise_exception's message, a string method's argument.
    for (const v of a.positional) this.textChars(v);
    let callee = node.callee as Node;
    if (callee.type === 'MemberExpression' && !(callee.computed && callee.property.type === 'SliceExpression')) {
      const object = this.evaluate(callee.object, env);
      const property = callee.computed ? this.evaluate(callee.property, env) : null;
      const method = property ? (property.type === 'StringValue' ? (property.value as string) : '') : (callee.property.value as string);
      if (object.type === 'StringValue') this.checkStringMethod(method, object.value as string, a.positional);
      callee = { ...callee, object: valueNode(object), ...(property && { property: valueNode(property) }) } as Node;
    }
    const v = this.nested(() => super.evaluate({ ...node, args: a.nodes, callee } as Node, env));
    this.step(itemCount(v));
    return v;
  }

  /** str.replace and str.split, refused before they make too much. */
  private checkStringMethod(method: string, s: string, args: Value[]): void {
    const { maxChars, maxItems } = this.limits;
    if (method === 'replace') {
      const chars = this.replacedLength(s, args);
      if (chars > maxChars) throw limitError(`replace() would make ${chars} characters, more than ${maxChars} (maxChars)`);
    } else if (method === 'split') {
      const sep = args[0];
      const parts = sep?.type === 'StringValue' ? occurrences(s, sep.value as string) + 1 : s.length / 2 + 1;
      if (parts > maxItems) throw limitError(`split() would make ${Math.floor(parts)} items, more than ${maxItems} (maxItems)`);
    }
  }
}

/**
 * Renders `program` (a Template's `parsed`) with `variables`; throws CHAT_TEMPLATE_LIMIT past a
 * limit, and whatever the template raises otherwise.
 */
export function renderConfined(program: Program, variables: Record<string, unknown>, limits: TemplateLimits): string {
  const env = new Environment();
  for (const [k, v] of Object.entries(templateGlobals(limits.maxRange))) env.set(k, v);
  for (const [k, v] of Object.entries(variables)) env.set(k, v);
  try {
    return new ConfinedInterpreter(env, limits).run(program).value as string;
  } catch (e) {
    // Nesting that slipped past maxDepth, or a string or list V8 cannot hold.
    if (e instanceof RangeError && /call stack|Invalid (string|array|typed array) length|allocation failed/i.test(e.message)) {
      throw limitError(`went past a JavaScript limit (${e.message})`);
    }
    throw e;
  }
}
