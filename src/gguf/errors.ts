/** Errors of GGUF files: each names the file and the field, tensor or type it is about. */
import { WebqError } from '../errors.ts';

export type GgufErrorCode =
  | 'GGUF_BAD_FILE' // not a GGUF file, or its header does not parse
  | 'GGUF_METADATA' // a metadata key is missing or has the wrong type or value
  | 'GGUF_UNSUPPORTED_ARCH' // general.architecture is not one webq runs
  | 'GGUF_UNSUPPORTED_TYPE' // a tensor type webq cannot read (IQ*, TQ*, MXFP4, ...), named
  | 'GGUF_TENSOR' // a tensor is missing, misshapen, out of the file, or unexpected
  | 'GGUF_TOKENIZER'; // the tokenizer metadata cannot be turned into a tokenizer

export class GgufError extends WebqError {
  declare readonly code: GgufErrorCode;
  constructor(code: GgufErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
