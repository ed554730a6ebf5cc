/**
 * `webq quantize <model> --dtype q4 --out DIR`: writes a pre-quantized copy of a BERT or
 * LLaMA-family checkpoint (smaller download, no quantization at load) that the other commands,
 * BertModel.load and LlmModel.load read with no extra options.
 */
import { openModelFiles } from '../io/hub.ts';
import { quantizeCheckpoint } from '../models/quantize-checkpoint.ts';
import { EMBEDDING_DTYPES, type EmbeddingDType } from '../models/upload.ts';
import { LINEAR_DTYPES, type LinearDType } from '../ops/linear.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { formatBytes } from './info.ts';
import { parseArgs } from './model-args.ts';

const USAGE = `usage: webq quantize <model> --dtype q8|q4|w8a8|w4a8 --out DIR [--embeddings int8|int4|f16|f32] [--group 32|64|128|channel] [--asymmetric|--symmetric]

Quantizes every Linear weight of a checkpoint (a folder, folder URL or hub id) and writes
DIR/model.safetensors in webq's pre-quantized format, with config.json, generation_config.json
and the tokenizer and chat-template files.

  BERT                      query/key/value/output, intermediate/output, pooler, classifier
  Llama, Mistral, Qwen2/3   q/k/v/o, gate/up/down, and lm_head unless tied to the embeddings

--embeddings says how the embedding table (a tied LM head too) is stored: int8 (BERT: one scale
per row; LLMs: groups of 32), int4 (the q4 layout: smallest, least exact), f16, or f32 (not
rounded). Default int8, except an LLM table not tied to the head: f16. Norms, biases and
position tables are stored as f16.

The defaults are what loading the float checkpoint with that dtype uses (for LLMs, q8 has groups
of 32), so the result equals quantizing at load. Load it like any model: webq embed DIR ...,
webq generate DIR ..., BertModel.load(DIR), LlmModel.load(DIR).`;

export const quantizeCommand: Command = {
  summary: 'write a pre-quantized copy of a checkpoint (BERT or LLaMA-family)',
  usage: USAGE,
  async run(args, io) {
    const p = parseArgs('quantize', args, { flags: ['--asymmetric', '--symmetric'], values: ['--dtype', '--out', '--group', '--embeddings', '--revision'] });
    const [model, ...rest] = p.positional;
    if (!model || rest.length) throw new UsageError('quantize: expected exactly one model (run "webq quantize --help")');
    const dtype = p.values.get('--dtype') as LinearDType | undefined;
    if (!dtype || dtype === 'f32' || dtype === 'f16' || !LINEAR_DTYPES.includes(dtype)) throw new UsageError('quantize: --dtype must be q8, q4, w8a8 or w4a8');
    const out = p.values.get('--out');
    if (!out) throw new UsageError('quantize: --out DIR is required');
    const g = p.values.get('--group');
    const group = g === undefined ? undefined : g === 'channel' ? 'channel' : Number(g);
    if (group !== undefined && group !== 'channel' && ![32, 64, 128].includes(group)) throw new UsageError(`quantize: --group must be 32, 64, 128 or channel, got ${JSON.stringify(g)}`);
    if (p.flags.has('--asymmetric') && p.flags.has('--symmetric')) throw new UsageError('quantize: --asymmetric and --symmetric exclude each other');
    const symmetric = p.flags.has('--asymmetric') ? false : p.flags.has('--symmetric') ? true : undefined;
    const embeddings = p.values.get('--embeddings') as EmbeddingDType | undefined;
    if (embeddings !== undefined && !EMBEDDING_DTYPES.includes(embeddings)) throw new UsageError(`quantize: --embeddings must be ${EMBEDDING_DTYPES.join(', ')}, got ${JSON.stringify(embeddings)}`);
    const files = await openModelFiles(model, { revision: p.values.get('--revision') });
    const r = await quantizeCheckpoint(files, out, dtype, { group, symmetric, embeddings });
    const how = `group ${r.spec.group}, ${r.spec.symmetric ? 'symmetric' : 'asymmetric'}`;
    const ratio = `${((100 * r.bytesOut) / r.bytesIn).toFixed(1)}%`;
    io.stdout(`${out}: ${r.architecture}, ${r.quantized} linear weights as ${dtype} (${how}), embeddings ${r.embeddings}, ${r.tensors} tensors, ${formatBytes(r.bytesIn)} -> ${formatBytes(r.bytesOut)} (${ratio})\n`);
    return 0;
  },
};
