/**
 * The bounds on one chat template render (template-sandbox.ts enforces them). Apart from the
 * renderer so that the public types never reach @huggingface/jinja's own declarations, which do
 * not compile under moduleResolution nodenext.
 */
export interface TemplateLimits {
  /** Nodes evaluated plus items worked over. */
  maxSteps: number;
  /** Wall-clock milliseconds for one render. */
  maxMillis: number;
  /** Longest string made, and the most text written in all. */
  maxChars: number;
  /** Longest list, most keys of a mapping. */
  maxItems: number;
  /** Longest range(). */
  maxRange: number;
  /** Deepest nesting of calls (macros calling macros). */
  maxCallDepth: number;
  /** Deepest evaluation nesting, and deepest list/mapping nesting written as text. */
  maxDepth: number;
}

/**
 * Real templates (Llama 3, Qwen3, SmolLM, Mistral: a loop over the messages, a few macros) take
 * a few hundred steps per message, well under a millisecond each, write what the messages hold
 * plus some markup, and nest a handful of levels; these bounds are 100x and more above that.
 * maxRange is Jinja's own sandbox's (MAX_RANGE). chat-template.ts raises maxChars and maxSteps
 * with the size of the messages, so a long conversation is never refused for its length.
 */
export const TEMPLATE_LIMITS: Readonly<TemplateLimits> = Object.freeze({
  maxSteps: 1_000_000,
  maxMillis: 2_000,
  maxChars: 4 * 1024 * 1024,
  maxItems: 256 * 1024,
  maxRange: 100_000,
  maxCallDepth: 100,
  maxDepth: 500,
});
