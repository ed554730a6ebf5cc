import { WebqError } from '../errors.ts';

/**
 * Everything a delta can be refused for. Codes: DELTA_CORRUPT (the file or its manifest is damaged,
 * forged or malformed), DELTA_MISSING, DELTA_BASE (another model or version, or the model's files
 * changed), DELTA_UNSIGNED / DELTA_SIGNATURE (a public key was given), DELTA_IO (the model folder
 * could not be written), DELTA_RELOAD, DELTA_DTYPE, DELTA_UNSUPPORTED, DELTA_GUARD, OUTPUT_EXISTS.
 */
export class DeltaError extends WebqError {
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
