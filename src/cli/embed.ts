/**
 * `webq embed [<model>] TEXT...`: sentence embeddings from a BERT checkpoint, as JSON or as a
 * short summary per text plus the cosine-similarity matrix.
 */
import { DEFAULT_EMBED_MODEL } from '../api/bert.ts';
import { EMBEDDING_DTYPES, type EmbeddingDType } from '../models/upload.ts';
import { cosineSimilarity } from '../api/similarity.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { formatBytes } from './info.ts';
import { expandStdin, loadModel, loadOptions, looksLikeModel, parseArgs, shortText, warnTruncated, CACHE_FLAGS } from './model-args.ts';

const USAGE = `usage: webq embed [<model>] [options] TEXT...

Embeds each TEXT with a BERT model and prints one vector per text, in order.

<model> is a local folder, a folder URL (https://host/path/) or a Hugging Face
hub id (org/name or org/name@revision); default ${DEFAULT_EMBED_MODEL}.
The first argument is taken as the model when it is a URL, starts with "/",
"./" or "../", names an existing folder, or has the form org/name; otherwise
every argument is a text. Use --model to say it explicitly (then all the
arguments are texts). A "-" reads more texts from stdin, one per line.

options:
  -m, --model M       the model (instead of the first argument)
  --dtype D           linear-layer weights: f32, f16, q8 (default), q4, w8a8, w4a8
  --activations A     q8/q4 Linears: int8 (activations quantized per block of 32,
                      the default) or float (weight-only; the default for GPTQ,
                      AWQ, compressed-tensors, bitsandbytes); w8a8/w4a8 are int8
  --embeddings E      the word-embedding table under a quantized dtype: int8 (default),
                      int4, f16 or f32 (a pre-quantized model's is as it was written)
  --pooling P         mean or cls (default: what the model's sentence-transformers
                      files say, else mean)
  --normalize         scale each vector to unit length (default: the model's own,
                      i.e. on when its modules.json has a Normalize step)
  --dimensions D      Matryoshka: keep the first D values of each vector (1 to the
                      model's hidden size), normalized again when the vectors are
  --json              print {"dims": D, "embeddings": [[...], ...]} only
  --revision R        hub branch, tag or commit (default main)
  --no-cache          read remote files without the download cache
  --offline           never touch the network (also WEBQ_OFFLINE=1): cached files only
  --refresh           re-check a branch's files on the hub now (default: every 10 minutes)
  --no-truncate       a text longer than the model's limit is an error (default: cut it,
                      with a warning on stderr; the limit is sentence_bert_config.json
                      max_seq_length, else the tokenizer's, at most max_position_embeddings)
  --                  end of options: the rest are texts, even if they start with "-"
  -h, --help

Downloads show progress on stderr; WEBQ_HUB_URL and WEBQ_CACHE_DIR pick the
hub and the cache folder (default ~/.cache/webq).`;

function norm(v: Float32Array): number {
  let s = 0;
  for (const x of v) s += x * x;
  return Math.sqrt(s);
}

/** Fixed width with a sign column, so the columns of the matrix line up. */
function num(x: number): string {
  return (x < 0 ? '' : ' ') + x.toFixed(4);
}

function summary(texts: string[], vectors: Float32Array[]): string {
  const label = (i: number) => `[${i + 1}]`;
  const width = label(texts.length - 1).length;
  const lines = vectors.map((v, i) => {
    const head = Array.from(v.subarray(0, 4), (x) => x.toFixed(4)).join(', ');
    return `${label(i).padEnd(width)}  norm ${norm(v).toFixed(4)}  [${head}${v.length > 4 ? ', ...' : ''}]  ${shortText(texts[i])}`;
  });
  if (vectors.length >= 2) {
    const col = 8;
    lines.push('', 'cosine similarity:', ' '.repeat(width) + vectors.map((_, j) => label(j).padStart(col)).join(''));
    for (let i = 0; i < vectors.length; i++) {
      lines.push(label(i).padEnd(width) + vectors.map((_, j) => num(cosineSimilarity(vectors[i], vectors[j])).padStart(col)).join(''));
    }
  }
  return `${lines.join('\n')}\n`;
}

export const embedCommand: Command = {
  summary: 'embed texts with a BERT model (sentence vectors, cosine similarities)',
  usage: USAGE,
  async run(args, io) {
    const parsed = parseArgs('embed', args, {
      flags: ['--json', '--normalize', ...CACHE_FLAGS, '--no-truncate'],
      values: ['--model', '--dtype', '--activations', '--embeddings', '--pooling', '--revision', '--dimensions'],
      aliases: { '-m': '--model' },
    });
    const load = loadOptions('embed', parsed);
    const embeddings = parsed.values.get('--embeddings') as EmbeddingDType | undefined;
    if (embeddings !== undefined && !EMBEDDING_DTYPES.includes(embeddings)) throw new UsageError(`embed: --embeddings ${JSON.stringify(embeddings)}: expected ${EMBEDDING_DTYPES.join(', ')}`);
    const pooling = parsed.values.get('--pooling');
    if (pooling !== undefined && pooling !== 'mean' && pooling !== 'cls') throw new UsageError(`embed: --pooling ${JSON.stringify(pooling)}: expected mean or cls`);
    const dimText = parsed.values.get('--dimensions');
    const dimensions = dimText === undefined ? undefined : Number(dimText);
    if (dimText !== undefined && !(/^\d+$/.test(dimText) && dimensions! >= 1)) throw new UsageError(`embed: --dimensions ${JSON.stringify(dimText)}: expected a positive integer`);

    let model = parsed.values.get('--model');
    let texts = parsed.positional;
    let inferred = false;
    if (model === undefined && texts.length > 0 && texts[0] !== '-' && (await looksLikeModel(texts[0]))) {
      [model, ...texts] = texts;
      inferred = true;
    }
    texts = await expandStdin('embed', texts, io);
    if (texts.length === 0) {
      const took = inferred ? ` (${JSON.stringify(model)} was taken as the model; use --model to embed it as a text)` : '';
      throw new UsageError(`embed: no texts to embed${took}; pass them as arguments, or "-" to read lines from stdin`);
    }

    const bert = await loadModel(model ?? DEFAULT_EMBED_MODEL, io, { ...load, ...(embeddings && { embeddings }) });
    try {
      const { vectors, truncated } = await bert.embedWithInfo(texts, { pooling, normalize: parsed.flags.has('--normalize') || undefined, dimensions, truncate: !parsed.flags.has('--no-truncate') });
      warnTruncated(io, truncated, bert.maxLength);
      if (parsed.flags.has('--json')) {
        const dims = vectors[0]?.length ?? bert.config.hiddenSize;
        io.stdout(`${JSON.stringify({ dims, embeddings: vectors.map((v) => Array.from(v)) })}\n`);
      } else {
        const c = bert.config;
        const cut = dimensions !== undefined && dimensions < c.hiddenSize ? ` (first ${dimensions} kept)` : '';
        io.stdout(`model ${bert.describe}: ${c.numLayers} layers, hidden ${c.hiddenSize}${cut}, ${bert.dtype} weights (${formatBytes(bert.weightBytes)}), ${bert.activations} activations, ${pooling ?? bert.pooling.pooling} pooling\n`);
        io.stdout(summary(texts, vectors));
      }
      return 0;
    } finally {
      bert.dispose();
    }
  },
};
