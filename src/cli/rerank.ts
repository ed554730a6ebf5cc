/**
 * `webq rerank <model> --query Q DOC...`: a cross-encoder's relevance score for each document
 * against the query, highest first (BertModel.rerank, as sentence-transformers' CrossEncoder.rank).
 */
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { expandStdin, loadModel, loadOptions, parseArgs, shortText, CACHE_FLAGS } from './model-args.ts';

const USAGE = `usage: webq rerank <model> --query Q [options] DOC...

Scores each DOC against the query Q with a cross-encoder: a *ForSequenceClassification
checkpoint with one label (bge-reranker-*, ms-marco-MiniLM-*: BERT, RoBERTa, XLM-RoBERTa
or DistilBERT). Each (Q, DOC) pair is encoded together; the score is sigmoid(logit).
Prints the documents sorted by score, highest first, with their position in the input.

<model> is a local folder, a folder URL (https://host/path/) or a Hugging Face
hub id (org/name or org/name@revision); it is always the first argument unless
--model gives it. A "-" reads more documents from stdin, one per line.

options:
  -q, --query Q       the query (required)
  -m, --model M       the model (instead of the first argument)
  --dtype D           linear-layer weights: f32, f16, q8 (default), q4, w8a8, w4a8
  --activations A     q8/q4 Linears: int8 (the default) or float (weight-only)
  --json              print [{"index", "score", "text"}, ...], highest score first
  --revision R        hub branch, tag or commit (default main)
  --no-cache          read remote files without the download cache
  --offline           never touch the network (also WEBQ_OFFLINE=1): cached files only
  --refresh           re-check a branch's files on the hub now (default: every 10 minutes)
  --no-truncate       a pair longer than the model's limit is an error (default: cut the
                      longer of query and document, as the tokenizer's "longest first")
  --                  end of options: the rest are documents, even if they start with "-"
  -h, --help`;

export const rerankCommand: Command = {
  summary: 'rank documents against a query with a cross-encoder',
  usage: USAGE,
  async run(args, io) {
    const parsed = parseArgs('rerank', args, {
      flags: ['--json', ...CACHE_FLAGS, '--no-truncate'],
      values: ['--model', '--query', '--dtype', '--activations', '--revision'],
      aliases: { '-m': '--model', '-q': '--query' },
    });
    const load = loadOptions('rerank', parsed);
    const query = parsed.values.get('--query');
    let model = parsed.values.get('--model');
    let docs = parsed.positional;
    if (model === undefined) {
      if (docs.length === 0) throw new UsageError('rerank: expected a model, --query and documents (run "webq rerank --help")');
      [model, ...docs] = docs;
    }
    if (query === undefined) throw new UsageError('rerank: --query Q is required: the text the documents are ranked against');
    docs = await expandStdin('rerank', docs, io);
    if (docs.length === 0) throw new UsageError(`rerank: no documents to rank after the model ${JSON.stringify(model)}; pass them as arguments, or "-" to read lines from stdin`);

    const bert = await loadModel(model, io, load);
    try {
      const ranked = await bert.rerank(query, docs, { truncate: !parsed.flags.has('--no-truncate') });
      if (parsed.flags.has('--json')) {
        io.stdout(`${JSON.stringify(ranked.map((r) => ({ index: r.index, score: r.score, text: docs[r.index] })), null, 2)}\n`);
      } else {
        const width = String(docs.length - 1).length;
        io.stdout(ranked.map((r) => `${String(r.index).padStart(width)}  ${r.score.toFixed(4)}  ${shortText(docs[r.index])}\n`).join(''));
      }
      return 0;
    } finally {
      bert.dispose();
    }
  },
};
