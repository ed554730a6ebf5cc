/**
 * `model.embeddings.create()` on an encoder (BertModel): OpenAI's embeddings request and response.
 * `dimensions` keeps the first N values and normalizes them again (what OpenAI's text-embedding-3
 * models do; meaningful for Matryoshka-trained encoders). `encoding_format: 'base64'` gives the
 * float32 little-endian bytes in base64, as OpenAI's API sends them.
 */
import { WebqError } from '../errors.ts';
import type { EmbedResult } from './bert.ts';
import { checkDimensions, truncateEmbedding } from './matryoshka.ts';

export interface EmbeddingRequest {
  input: string | readonly string[];
  model?: string;
  dimensions?: number;
  encoding_format?: 'float' | 'base64';
  user?: string;
}

/** `embedding` is number[] for encoding_format 'float', a base64 string for 'base64'. */
export interface Embedding<E extends number[] | string = number[] | string> {
  object: 'embedding';
  index: number;
  embedding: E;
}

export interface EmbeddingResponse<E extends number[] | string = number[] | string> {
  object: 'list';
  data: Embedding<E>[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

/** What embeddings.create needs of the model. */
export interface EmbeddingSource {
  readonly describe: string;
  readonly config: { hiddenSize: number };
  embedWithInfo(texts: string[], opts?: { normalize?: boolean }): Promise<EmbedResult>;
}

function base64(v: Float32Array): string {
  const bytes = new Uint8Array(v.length * 4);
  // Typed arrays are platform-endian; OpenAI's bytes are little-endian: written one by one.
  const dv = new DataView(bytes.buffer);
  v.forEach((x, i) => dv.setFloat32(4 * i, x, true));
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export class Embeddings {
  constructor(
    private readonly model: EmbeddingSource,
    /** Tokens of a text as the model counts them (special tokens included, after truncation). */
    private readonly tokens: (text: string) => number,
  ) {}

  create(req: EmbeddingRequest & { encoding_format: 'base64' }): Promise<EmbeddingResponse<string>>;
  create(req: EmbeddingRequest & { encoding_format?: 'float' }): Promise<EmbeddingResponse<number[]>>;
  create(req: EmbeddingRequest): Promise<EmbeddingResponse>;
  async create(req: EmbeddingRequest): Promise<EmbeddingResponse> {
    if (typeof req !== 'object' || req === null) throw new WebqError('BAD_OPTION', 'embeddings.create needs a request object with input');
    const input = typeof req.input === 'string' ? [req.input] : req.input;
    if (!Array.isArray(input) || input.length === 0 || input.some((t) => typeof t !== 'string')) {
      throw new WebqError('BAD_OPTION', 'embeddings.create: input must be a string or a non-empty array of strings');
    }
    const H = this.model.config.hiddenSize;
    const dims = checkDimensions(req.dimensions, H, 'embeddings.create');
    const format = req.encoding_format ?? 'float';
    if (format !== 'float' && format !== 'base64') throw new WebqError('BAD_OPTION', `embeddings.create: encoding_format must be 'float' or 'base64', got ${JSON.stringify(format)}`);
    const { vectors } = await this.model.embedWithInfo([...input]);
    const data = vectors.map((full, index): Embedding => {
      // OpenAI's shortened embeddings are unit length whatever the model's own normalization.
      const v = dims !== undefined && dims < H ? truncateEmbedding(full, dims, true) : full;
      return { object: 'embedding', index, embedding: format === 'base64' ? base64(v) : Array.from(v) };
    });
    const promptTokens = input.reduce((n, t) => n + this.tokens(t), 0);
    return { object: 'list', data, model: req.model ?? this.model.describe, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } };
  }
}
