/**
 * The WebCrypto type webq's public declarations name (a signing or verifying key), declared as
 * src/gpu/webgpu-types.ts declares the WebGPU ones: an empty global interface merges with the
 * consumer's own CryptoKey (lib DOM, Deno's lib) and is an opaque object where the build has none
 * (a Node project with @types/node and no lib DOM, which declares CryptoKey only inside
 * node:crypto's webcrypto namespace).
 */
declare global {
  interface CryptoKey {}
}

export type CryptoKey = globalThis.CryptoKey;
