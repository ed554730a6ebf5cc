import { WebqError } from '../errors.ts';

export type ChatTemplateErrorCode =
  | 'NO_CHAT_TEMPLATE' // the model ships no chat template
  | 'CHAT_TEMPLATE' // the template does not parse, raises (raise_exception), or cannot be picked
  | 'CHAT_TEMPLATE_LIMIT' // rendering went past a limit (steps, time, output size, items, nesting)
  | 'BAD_MESSAGES'; // messages are not an array of {role: string, content: string}

export class ChatTemplateError extends WebqError {
  declare readonly code: ChatTemplateErrorCode;
  constructor(code: ChatTemplateErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Rendering went past one of TemplateLimits; `message` says which and by how much. */
export function limitError(message: string): ChatTemplateError {
  return new ChatTemplateError('CHAT_TEMPLATE_LIMIT', message);
}
