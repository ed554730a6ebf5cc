/**
 * Errors of constrained decoding and tool calling. Every one is raised before any GPU work: a
 * schema, regex or grammar is checked and compiled when the call starts.
 */
import { WebqError } from '../errors.ts';

export type ConstraintErrorCode =
  | 'BAD_RESPONSE_FORMAT' // response_format / constraint is not one of the accepted shapes
  | 'BAD_SCHEMA' // a JSON Schema that is not valid, or uses a keyword the engine cannot enforce
  | 'BAD_REGEX' // a regex the engine rejects
  | 'BAD_GRAMMAR' // a grammar that does not parse
  | 'BAD_TOOLS' // tools / tool_choice / tool messages malformed
  | 'NO_TOOL_SUPPORT' // the model's chat template does not render tools
  | 'ENGINE_UNAVAILABLE'; // the constraint engine (xgrammar's WASM) could not be loaded

export class ConstraintError extends WebqError {
  declare readonly code: ConstraintErrorCode;
  constructor(code: ConstraintErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
