/**
 * Typed errors. Every error webq throws is a WebqError with a stable `code`, so callers can branch
 * on the kind of failure and the CLI can print one clear line without a stack trace.
 */
export class WebqError extends Error {
  /** Stable machine-readable kind, e.g. 'SAFETENSORS_GAP' or 'NO_WEBGPU'. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** WebGPU is missing, no adapter was found, or the device could not be created. */
export class WebGPUUnavailableError extends WebqError {}

/** The device was lost or reported an uncaptured error; pending work is rejected with this. */
export class GPUDeviceError extends WebqError {}

/** A caller passed tensors whose shapes or dtypes an op cannot take. */
export class ShapeError extends WebqError {
  constructor(message: string) {
    super('SHAPE', message);
  }
}
