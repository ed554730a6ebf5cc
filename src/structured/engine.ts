/**
 * The constraint engine for one model: XGrammar's tokenizer info (the vocabulary as text, built
 * once, ~0.4 s for a 150k vocabulary), its grammar compiler (compiled constraints cached by
 * content), and per-generation matchers that give the token bitmask for each step.
 */
import type { TextTokenizer } from '../text/tokenizer.ts';
import { constraintKey, type Constraint } from './constraint.ts';
import { controlFreeMask } from './forced-tokens.ts';
import { engineCall, loadXgrammar, quietly, type XgCompiled, type XgCompiler, type XgMatcher, type XgTokenizerInfo } from './xgrammar.ts';

/** JSON the way json.dumps writes it on one line ({"a": 1, "b": [2, 3]}): what models saw most. */
const JSON_STYLE = { anyWhitespace: false, indent: -1, separators: [', ', ': '] as [string, string] };
const CACHE_SIZE = 32;

export class ConstraintEngine {
  private readonly compiled = new Map<string, Promise<XgCompiled>>();
  private readonly allowMasks = new Map<string, Uint32Array>();

  private constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly info: XgTokenizerInfo,
    private readonly compiler: XgCompiler,
    /** Ids that end a generation (the model's end-of-sequence tokens). */
    readonly stopIds: readonly number[],
    /** Logits per step (config.json vocab_size; may exceed the tokenizer's). */
    readonly vocabSize: number,
  ) {}

  /**
   * For `tokenizer` with `vocabSize` logits. Special tokens (chat markers) are given no text, so a
   * constraint never lets them through; the stop ids stay allowed where the constraint can end.
   */
  static async create(tokenizer: TextTokenizer, vocabSize: number, stopIds: readonly number[]): Promise<ConstraintEngine> {
    const xg = await loadXgrammar();
    const tokens = tokenizer.tokensById();
    for (const id of tokenizer.spelling.specialIds) if (id < tokens.length) tokens[id] = '';
    if (tokens.length > vocabSize) tokens.length = vocabSize;
    const info = await xg.TokenizerInfo.createTokenizerInfo(tokens, tokenizer.spelling.kind, tokenizer.spelling.prependSpace, vocabSize, [...stopIds]);
    const compiler = await xg.GrammarCompiler.createGrammarCompiler(info, true);
    return new ConstraintEngine(tokenizer, info, compiler, stopIds, vocabSize);
  }

  /** Compiles (or finds compiled) `c`; a bad schema, regex or grammar throws ConstraintError with the engine's reason. */
  compile(c: Constraint): Promise<XgCompiled> {
    const key = constraintKey(c);
    let p = this.compiled.get(key);
    if (!p) {
      p = this.build(c);
      p.catch(() => this.compiled.delete(key));
      this.compiled.set(key, p);
      if (this.compiled.size > CACHE_SIZE) {
        const [oldest] = this.compiled.keys();
        const old = this.compiled.get(oldest)!;
        this.compiled.delete(oldest);
        void old.then((g) => g.dispose(), () => {});
      }
    }
    return p;
  }

  private build(c: Constraint): Promise<XgCompiled> {
    const k = this.compiler;
    switch (c.type) {
      case 'json_object':
        return engineCall('json_object', 'BAD_SCHEMA', () => k.compileBuiltinJSONGrammar());
      case 'json_schema':
        return engineCall(`json_schema ${c.json_schema.name}`, 'BAD_SCHEMA', () =>
          k.compileJSONSchema(JSON.stringify(c.json_schema.schema ?? {}), JSON_STYLE.anyWhitespace, JSON_STYLE.indent, JSON_STYLE.separators, true),
        );
      case 'regex':
        return engineCall(`regex ${JSON.stringify(c.pattern)}`, 'BAD_REGEX', () => k.compileStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: c.pattern } }));
      case 'grammar':
        return engineCall('grammar', 'BAD_GRAMMAR', () => k.compileGrammar(c.grammar, 'root'));
      case 'structural_tag':
        return engineCall('tool call format', 'BAD_TOOLS', async () => k.compileStructuralTag({ type: 'structural_tag', format: await compactJson(c.format) }));
    }
  }

  /** A matcher at the start of `c`. */
  async matcher(c: Constraint): Promise<TokenMatcher> {
    const g = await this.compile(c);
    const xg = await loadXgrammar();
    return new TokenMatcher(await xg.GrammarMatcher.createGrammarMatcher(g, [...this.stopIds], false), this.stopIds, this.allowFor(c));
  }

  /**
   * Tokens a constraint's own mask may wrongly allow: raw control characters, which JSON never
   * takes (tool calls keep \n, their tags are written with it). Null for regex and grammar, whose
   * author says which characters are allowed.
   */
  private allowFor(c: Constraint): Uint32Array | null {
    if (c.type === 'regex' || c.type === 'grammar') return null;
    const keep = c.type === 'structural_tag' ? '\n' : '';
    let m = this.allowMasks.get(keep);
    if (!m) this.allowMasks.set(keep, (m = controlFreeMask(this.tokenizer, this.vocabSize, keep)));
    return m;
  }

  dispose(): void {
    for (const p of this.compiled.values()) void p.then((g) => g.dispose(), () => {});
    this.compiled.clear();
    this.compiler.dispose();
    this.info.dispose();
  }
}

/**
 * A structural tag's JSON Schema parts as grammars in JSON_STYLE: the engine writes a tag's
 * json_schema content with any whitespace, and a model (a random one surely) may then write
 * whitespace until it runs out of tokens.
 */
async function compactJson(node: unknown): Promise<unknown> {
  if (Array.isArray(node)) return Promise.all(node.map(compactJson));
  if (typeof node !== 'object' || node === null) return node;
  const o = node as Record<string, unknown>;
  if (o.type === 'json_schema' && 'json_schema' in o) {
    const xg = await loadXgrammar();
    const g = await xg.Grammar.fromJSONSchema(JSON.stringify(o.json_schema), JSON_STYLE.anyWhitespace, JSON_STYLE.indent, JSON_STYLE.separators, true);
    try {
      return { type: 'grammar', grammar: g.toString() };
    } finally {
      g.dispose();
    }
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k] = await compactJson(v);
  return out;
}

/** One generation's position in its constraint. */
export class TokenMatcher {
  private readonly stop: Set<number>;
  constructor(
    private readonly m: XgMatcher,
    stopIds: readonly number[],
    /** ANDed into every mask (see ConstraintEngine.allowFor). */
    private readonly allow: Uint32Array | null = null,
  ) {
    this.stop = new Set(stopIds);
  }

  /** Advances by `id`; false when the constraint does not allow it (the state is unchanged). */
  accept(id: number): boolean {
    return this.m.acceptToken(id);
  }

  /**
   * The allowed next tokens into `out` (bit i set = token i allowed; ceil(V/32) words). Returns
   * 'end' when only stop tokens are allowed (the constraint is complete), 'none' when nothing is
   * (cannot happen for a well-formed constraint), else 'open'.
   */
  async fillMask(out: Uint32Array): Promise<'open' | 'end' | 'none'> {
    const mask = await this.m.getNextTokenBitmask();
    out.set(new Uint32Array(mask.buffer, mask.byteOffset, Math.min(mask.length, out.length)));
    if (this.allow) for (let w = 0; w < out.length; w++) out[w] &= this.allow[w];
    let onlyStop = true;
    let any = false;
    for (let w = 0; w < out.length; w++) {
      let bits = out[w];
      if (bits === 0) continue;
      any = true;
      if (!onlyStop) break;
      while (bits !== 0) {
        const b = 31 - Math.clz32(bits);
        if (!this.stop.has(w * 32 + b)) {
          onlyStop = false;
          break;
        }
        bits &= ~(1 << b);
      }
    }
    return !any ? 'none' : onlyStop ? 'end' : 'open';
  }

  /**
   * Text the constraint forces next (empty when the next step is a real choice). The engine's
   * search for it has aborted on some grammars: then jump-forward is off for this matcher, and
   * every token is drawn (the mask still holds).
   */
  forcedText(): string {
    if (this.noJump) return '';
    const s = quietly(() => this.m.findJumpForwardString(), null);
    if (s === null) this.noJump = true;
    return s ?? '';
  }
  private noJump = false;

  get terminated(): boolean {
    return this.m.isTerminated();
  }

  dispose(): void {
    this.m.dispose();
  }
}
