/** Moved to src/env.ts (knowing the runtime is not a GPU matter); re-exported for gpu/ callers. */
export { detectRuntime, getEnv, type Runtime } from '../env.ts';
