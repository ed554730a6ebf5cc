/**
 * onnxruntime-node running the graph of onnx.ts the way transformers.js runs a decoder:
 * a prefill over the prompt with empty past tensors, then one run per token with the previous
 * run's present.* tensors fed back as past_key_values.*, greedy argmax of the logits on the CPU.
 * On the WebGPU EP the present.* outputs stay on the GPU (preferredOutputLocation 'gpu-buffer', as
 * transformers.js asks for on WebGPU), so the KV cache never crosses to the host; only the logits do.
 */
import type { LlamaConfig } from '../../src/models/llama/llama-config.ts';

/** The onnxruntime-node surface used here. */
export interface OrtTensor {
  readonly data: unknown;
  readonly dims: readonly number[];
  readonly location?: string;
  dispose?(): void;
}
export interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface Ort {
  Tensor: new (type: 'int64' | 'float32', data: BigInt64Array | Float32Array, dims: number[]) => OrtTensor;
  InferenceSession: {
    create(model: Uint8Array, opts: Record<string, unknown>): Promise<OrtSession>;
  };
}

export const ORT_INSTALL = 'npm i --no-save --ignore-scripts onnxruntime-node@1.30.0';

/** onnxruntime-node, or the reason it cannot be loaded. */
export async function loadOrt(): Promise<Ort | string> {
  try {
    const mod = (await import('onnxruntime-node')) as Ort & { default?: Ort };
    return mod.default ?? mod;
  } catch (e) {
    return (e as Error).message.split('\n')[0];
  }
}

export async function createLlmSession(ort: Ort, model: Uint8Array, cfg: LlamaConfig, ep: string, logSeverityLevel = 3): Promise<OrtSession> {
  const presents: Record<string, string> = { logits: 'cpu' };
  for (let l = 0; l < cfg.numLayers; l++) for (const kv of ['key', 'value']) presents[`present.${l}.${kv}`] = ep === 'webgpu' ? 'gpu-buffer' : 'cpu';
  return ort.InferenceSession.create(model, { executionProviders: [ep], logSeverityLevel, preferredOutputLocation: presents });
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** One sequence on one session: prefill, then decode steps, its KV cache fed back between runs. */
export class OrtSequence {
  private past: Record<string, OrtTensor> = {};
  private length = 0;

  constructor(
    private readonly ort: Ort,
    private readonly session: OrtSession,
    private readonly cfg: LlamaConfig,
  ) {
    this.reset();
  }

  /** Empty past tensors: the next run is a prefill. */
  reset(): void {
    this.dispose();
    const { numKvHeads: nkv, headDim: D } = this.cfg;
    for (let l = 0; l < this.cfg.numLayers; l++) {
      for (const kv of ['key', 'value']) this.past[`past_key_values.${l}.${kv}`] = new this.ort.Tensor('float32', new Float32Array(0), [1, nkv, 0, D]);
    }
    this.length = 0;
  }

  /** Runs `ids` after what the sequence holds; returns the last position's logits [V]. */
  async step(ids: readonly number[]): Promise<Float32Array> {
    const total = this.length + ids.length;
    const feeds: Record<string, OrtTensor> = {
      input_ids: new this.ort.Tensor('int64', BigInt64Array.from(ids, (x) => BigInt(x)), [1, ids.length]),
      attention_mask: new this.ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      ...this.past,
    };
    const out = await this.session.run(feeds);
    this.dispose();
    for (let l = 0; l < this.cfg.numLayers; l++) {
      for (const kv of ['key', 'value']) this.past[`past_key_values.${l}.${kv}`] = out[`present.${l}.${kv}`];
    }
    this.length = total;
    return out.logits.data as Float32Array;
  }

  /** A prefill from empty: one run, or runs of at most `chunk` tokens. Returns the last logits. */
  async prefill(prompt: readonly number[], chunk = Infinity): Promise<Float32Array> {
    this.reset();
    let logits: Float32Array = new Float32Array();
    for (let i = 0; i < prompt.length; i += chunk) logits = await this.step(prompt.slice(i, i + chunk));
    return logits;
  }

  /** Greedy decoding: `n` tokens after `prompt` (the prefill's included) and the prefill's logits. */
  async greedy(prompt: readonly number[], n: number, chunk = Infinity): Promise<{ ids: number[]; first: Float32Array }> {
    const first = (await this.prefill(prompt, chunk)).slice();
    const ids = [argmax(first)];
    while (ids.length < n) ids.push(argmax(await this.step([ids[ids.length - 1]])));
    return { ids, first };
  }

  /** Wall-clock ms of a one-run prefill of `prompt` and the mean ms of `n` greedy decode steps after it. */
  async time(prompt: readonly number[], n: number): Promise<{ prefillMs: number; decodeMs: number; logits: Float32Array }> {
    let t0 = performance.now();
    const logits = (await this.prefill(prompt)).slice();
    const prefillMs = performance.now() - t0;
    let id = argmax(logits);
    t0 = performance.now();
    for (let i = 0; i < n; i++) id = argmax(await this.step([id]));
    return { prefillMs, decodeMs: (performance.now() - t0) / n, logits };
  }

  dispose(): void {
    for (const t of Object.values(this.past)) t.dispose?.();
    this.past = {};
  }
}
