/**
 * Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the status an
 * OpenAI client expects (400 bad request, 401 key, 404 model or URL, 413 body, 429 queue full,
 * 500 server, 503 shutting down). webq's own typed errors map to 400 where the request was at
 * fault (bad options, messages, templates, over-long prompts) and to 500 otherwise.
 */
import { WebqError } from '../errors.ts';

export type ApiErrorType = 'invalid_request_error' | 'requests' | 'server_error';

export class ApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 404 | 413 | 429 | 500 | 503,
    message: string,
    readonly type: ApiErrorType,
    readonly code: string | null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  body(): { error: { message: string; type: ApiErrorType; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A field of the request body is missing or wrong: 400 naming it. */
export function badRequest(message: string, param: string | null = null, code = 'invalid_value'): ApiError {
  return new ApiError(400, message, 'invalid_request_error', code, param);
}

/** webq error codes that mean the request itself cannot be served (400), with OpenAI's code for some. */
const CLIENT_CODES: Record<string, string> = {
  BAD_OPTION: 'invalid_value',
  BAD_PROMPT: 'invalid_value',
  BAD_MESSAGES: 'invalid_value',
  EMPTY_PROMPT: 'invalid_value',
  TOKEN_OUT_OF_RANGE: 'invalid_value',
  CHAT_TEMPLATE: 'invalid_value',
  NO_CHAT_TEMPLATE: 'invalid_value',
  EMPTY_TEXT: 'invalid_value',
  CONTEXT_FULL: 'context_length_exceeded',
  TOKENIZER_TOO_LONG: 'context_length_exceeded',
  TOKENIZER_BAD_OPTION: 'invalid_value',
};

export function isAbort(e: unknown): boolean {
  return (e instanceof Error || (typeof e === 'object' && e !== null)) && (e as { name?: string }).name === 'AbortError';
}

/** Any error as an ApiError: webq's request errors 400, context overflow 400 context_length_exceeded, the rest 500. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof WebqError && (CLIENT_CODES[e.code] || /^(SAMPLING|BAD_)/.test(e.code))) {
    return badRequest(e.message, null, CLIENT_CODES[e.code] ?? 'invalid_value');
  }
  const message = e instanceof Error ? e.message : String(e);
  return new ApiError(500, `the server failed: ${message}`, 'server_error', e instanceof WebqError ? e.code : null);
}
